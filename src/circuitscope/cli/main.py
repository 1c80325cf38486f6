"""The ``circuitscope`` command.

Each module in ``circuitscope.cli`` that defines ``register(app)`` adds its commands;
adding a command group means adding one module.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

import circuitscope.cli as cli_package
from circuitscope._version import __version__
from circuitscope.cli._output import emit_json, fail
from circuitscope.errors import CircuitscopeError

# click's UsageError (BadParameter, NoSuchOption, MissingParameter...): typer >= 0.2x vendors click,
# older typer uses the click package, so it is found from typer.BadParameter either way
_UsageError: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


class _Group(TyperGroup):
    """The top-level group: under ``--json`` a bad option is JSON too, and no CircuitscopeError is a traceback.

    Typer reports option errors (``typer.BadParameter``, a value outside ``min``/``max``, an
    unknown option) with exit code 2; under ``--json`` they are printed as
    ``{"error": ..., "message": ...}``. A :class:`~circuitscope.errors.CircuitscopeError` that
    escapes a command becomes the usual clear message and exit code 1.
    """

    json_output = False

    def main(self, args: Sequence[str] | None = None, *rest: Any, **kwargs: Any) -> Any:
        self.json_output = "--json" in (sys.argv[1:] if args is None else list(args))
        return super().main(args, *rest, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except _UsageError as err:
            if not self.json_output:
                raise
            emit_json({"error": type(err).__name__, "message": err.format_message()})  # type: ignore[attr-defined]
            raise typer.Exit(code=err.exit_code) from err  # type: ignore[attr-defined]
        except CircuitscopeError as err:
            raise fail(err, self.json_output) from err


app = typer.Typer(
    name="circuitscope",
    help="A workbench for mechanistic interpretability on Hugging Face models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Group,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"circuitscope {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    pass


for _info in sorted(pkgutil.iter_modules(cli_package.__path__), key=lambda i: i.name):
    if _info.name in ("main", "output") or _info.name.startswith("_"):
        continue
    _module = importlib.import_module(f"{cli_package.__name__}.{_info.name}")
    _register = getattr(_module, "register", None)
    if callable(_register):
        _register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
