"""A command's options generated from a config dataclass, and the config built from their values.

A library config is a frozen dataclass with a docstring under each field, validated in its
``__post_init__``. :func:`config_options` turns the fields a command exposes into its options:
the option is ``--field-name`` (or the spelling given in ``flags``), its type the field's (a
``Literal`` field is a string option, so the config's own check refuses a bad value with the
library's message), its default the field's (or the one in ``defaults``), its help the field's
docstring. The command receives the parsed values as one :class:`Configured` and calls
:meth:`Configured.build` where it wants the config checked, so ``__post_init__`` stays the one
validation and its errors are reported like any other::

    @config_options(CollectConfig, "hook tokens>=1 context_size>=2")
    def collect(out: OutDirOpt, options: Configured[CollectConfig], as_json: JsonFlag = False) -> None:
        with reporting_errors(as_json):
            cfg = options.build()
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import typer

__all__ = ["Configured", "config_options", "field_docs"]

C = TypeVar("C")

_ROLE = re.compile(r":[a-z]+:`~?(?:[\w.]+\.)?([^`]+)`")


def field_docs(config: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (and of its dataclass bases), read from the source."""
    docs: dict[str, str] = {}
    for cls in reversed([c for c in config.__mro__ if dataclasses.is_dataclass(c)]):
        body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
        assert isinstance(body, ast.ClassDef)
        for field, doc in itertools.pairwise(body.body):
            if (
                isinstance(field, ast.AnnAssign)
                and isinstance(field.target, ast.Name)
                and isinstance(doc, ast.Expr)
                and isinstance(doc.value, ast.Constant)
                and isinstance(doc.value.value, str)
            ):
                docs[field.target.id] = doc.value.value
    return docs


def _help(doc: str) -> str:
    """A field docstring as command-line help: Sphinx roles and double backquotes dropped, one line."""
    return " ".join(_ROLE.sub(r"\1", doc).replace("``", "").split())


def _cli_type(hint: Any) -> Any:
    """The type typer parses a field as: a ``Literal`` becomes ``str`` (the config checks the value)."""
    if get_origin(hint) is Literal:
        return str
    args = get_args(hint)
    if args and type(None) in args:
        rest = tuple(_cli_type(a) for a in args if a is not type(None))
        return Union[(*rest, None)]
    return hint


@dataclass(frozen=True)
class Configured(Generic[C]):
    """The values a command was given for a config's fields; :meth:`build` makes (and so checks) the config."""

    config: type[C]
    """The config dataclass."""
    values: Mapping[str, Any]
    """The parsed option of each exposed field, by field name."""

    def build(self, **more: Any) -> C:
        """The config from the options and ``more`` (fields the command sets itself); ``__post_init__`` checks it."""
        return self.config(**self.values, **more)


def _number(text: str) -> float | None:
    return None if not text else float(text) if "." in text else int(text)


def _parse(fields: str) -> dict[str, tuple[float | None, float | None]]:
    """``"tokens>=1 lr p>=0.0<=1.0 hook"`` -> each field's lower and upper bound (None: unbounded), in order."""
    bounds: dict[str, tuple[float | None, float | None]] = {}
    for word in fields.split():
        name, _, rest = word.partition(">=")
        name, _, high = name.partition("<=")
        low, _, upper = rest.partition("<=")
        bounds[name] = (_number(low), _number(high or upper))
    return bounds


def _options(
    config: type, fields: str, flags: Mapping[str, str], defaults: Mapping[str, Any], helps: Mapping[str, str]
) -> list[inspect.Parameter]:
    """One keyword parameter per exposed field, annotated with its ``typer.Option``."""
    known = {f.name: f for f in dataclasses.fields(config)}
    hints = get_type_hints(config)
    docs = field_docs(config)
    bounds = _parse(fields)
    unknown = [n for n in (*bounds, *flags, *defaults, *helps) if n not in known]
    if unknown:
        raise TypeError(f"{config.__name__} has no field {unknown[0]!r}")
    params = []
    for name, (low, high) in bounds.items():
        if name not in helps and name not in docs:
            raise TypeError(f"{config.__name__}.{name} has no docstring to be its --help; write one")
        hint = _cli_type(hints[name])
        dashed = name.replace("_", "-")
        flag = flags.get(name) or (f"--{dashed}/--no-{dashed}" if hint is bool else f"--{dashed}")
        option = typer.Option(flag, help=helps.get(name) or _help(docs[name]), min=low, max=high)
        default = defaults.get(name, known[name].default)
        if default is dataclasses.MISSING:  # a field without a default is a required option
            default = inspect.Parameter.empty
        params.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[hint, option])
        )
    return params


def config_options(
    config: type[C],
    fields: str,
    *,
    into: str = "options",
    flags: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    helps: Mapping[str, str] | None = None,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A decorator: the command's parameter ``into`` replaced by an option for each of ``fields`` of ``config``.

    ``fields`` names the exposed fields, space-separated, in the order ``--help`` lists them; a
    field written ``tokens>=1`` has that lower bound (``p>=0.0<=1.0``: and that upper one), which
    typer checks (a bad value: exit code 2, before the command runs). Only what differs from the
    field is given: ``flags`` (the option's spelling, e.g. ``--arch``), ``defaults`` (the
    command's own default) and ``helps`` (help other than the docstring). The command gets a :class:`Configured`.
    """

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        generated = _options(config, fields, flags or {}, defaults or {}, helps or {})
        names = [p.name for p in generated]
        signature = inspect.signature(command)
        if into not in signature.parameters:
            raise TypeError(f"{command.__name__} has no parameter {into!r} to receive {config.__name__}")
        clash = [n for n in names if n in signature.parameters]
        if clash:
            raise TypeError(f"{command.__name__} already has a parameter {clash[0]!r}")
        namespace = getattr(inspect.unwrap(command), "__globals__", {})
        params: list[inspect.Parameter] = []
        for param in signature.parameters.values():
            if param.name == into:
                params += generated
                continue
            annotation = param.annotation
            if isinstance(annotation, str):
                annotation = eval(annotation, namespace)  # the module's own annotation, as typer would read it
            params.append(param.replace(annotation=annotation, kind=inspect.Parameter.KEYWORD_ONLY))

        @functools.wraps(command)
        def run(*args: Any, **options: Any) -> None:
            values = {name: options.pop(name) for name in names if name in options}
            command(*args, **options, **{into: Configured(config, values)})

        run.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
        return run

    return decorate
