"""The options the commands share, each defined once, and the one check of a string choice.

One spelling per concept: ``--model`` names the model (``info``, ``run`` and ``heads`` also take
it as their old positional argument, see :func:`pick_model`); ``--out`` is a file (an HTML
report, a JSON file) and ``--out-dir`` a folder (``--out`` still works there, as its old
spelling); ``--batch-size`` is the rows of one forward pass (``--batch-rows`` is its old
spelling, where a command took it); ``--json`` prints machine-readable JSON.

A string option whose values are a library ``Literal`` type is checked by :func:`check_choice`,
which reads the values with :func:`typing.get_args`, so the command line and the library never
disagree on them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, get_args

import typer

from circuitscope.core.loading import DEFAULT_MODEL
from circuitscope.errors import OptionError

__all__ = [
    "BatchOpt",
    "BatchRowsOpt",
    "HtmlOpt",
    "JsonFlag",
    "LayersOpt",
    "ModelArg",
    "ModelOpt",
    "OptionalModelOpt",
    "OutDirOpt",
    "OutOpt",
    "SeedOpt",
    "TrainBatchOpt",
    "check_choice",
    "choice_names",
    "pick_model",
]

_MODEL_HELP = f"Hub id, model folder, .gguf file, or {DEFAULT_MODEL!r} (the embedded default)."

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout.")]
ModelOpt = Annotated[str, typer.Option("--model", help=_MODEL_HELP)]
OptionalModelOpt = Annotated[str | None, typer.Option("--model", help=_MODEL_HELP, show_default=False)]
"""``--model`` of a command that also takes the model as its old positional argument (:func:`pick_model`)."""
ModelArg = Annotated[
    str | None, typer.Argument(metavar="MODEL", help="The model, as --model (the older spelling).", show_default=False)
]
OutOpt = Annotated[Path, typer.Option("--out", help="Where to write the HTML report.")]
OutDirOpt = Annotated[
    Path,
    typer.Option("--out-dir", "--out", help="Folder to write into (created if missing; --out is its older spelling)."),
]
HtmlOpt = Annotated[Path | None, typer.Option("--html", help="Also write a self-contained HTML report here.")]
BatchOpt = Annotated[
    int, typer.Option("--batch-size", min=1, help="Rows of one forward pass (prompts, or patched copies of them).")
]
BatchRowsOpt = Annotated[
    int,
    typer.Option(
        "--batch-size",
        "--batch-rows",
        min=1,
        help="Rows of one forward pass (prompts, or patched copies of them); --batch-rows is its older spelling.",
    ),
]
"""``--batch-size`` of a command that also took the older spelling ``--batch-rows``."""
TrainBatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Training examples per optimiser step.")]
SeedOpt = Annotated[
    int, typer.Option("--seed", help="Seed of everything random (prompts, data, noise, initialisation).")
]
LayersOpt = Annotated[str, typer.Option("--layers", help="Layers: '2-12', '0,4,8', 'all' or a mix ('0-3,8').")]


def pick_model(option: str | None, argument: str | None) -> str:
    """The model of a command that takes ``--model`` and the older positional ``MODEL``: whichever is given."""
    if option is not None and argument is not None and option != argument:
        raise OptionError(
            f"the model is given twice, as {argument!r} and as --model {option!r}: give it once, with --model"
        )
    return option or argument or DEFAULT_MODEL


def choice_names(choices: Any) -> tuple[str, ...]:
    """The names of a ``Literal`` type (also those of a union such as ``Literal[...] | int``), or a tuple as is."""
    if isinstance(choices, (tuple, list)):
        return tuple(choices)
    names: list[str] = []
    for arg in get_args(choices):
        names += [arg] if isinstance(arg, str) else choice_names(arg)
    return tuple(names)


def check_choice(
    value: str,
    choices: Any,
    option: str,
    *,
    error: type[Exception] = typer.BadParameter,
    quote: bool = True,
    expected: str | None = None,
) -> str:
    """``value`` if it is one of ``choices`` (a ``Literal`` type or a tuple of names), else ``error``.

    The message reads ``OPTION must be 'a' or 'b', got 'c'`` (``one of ...`` for other counts;
    names unquoted with ``quote=False``; ``expected`` replaces the list).
    """
    names = choice_names(choices)
    if value in names:
        return value
    if expected is None:
        shown = [repr(n) if quote else n for n in names]
        expected = " or ".join(shown) if len(shown) == 2 else f"one of {', '.join(shown)}"
    raise error(f"{option} must be {expected}, got {value!r}")
