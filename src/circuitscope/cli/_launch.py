"""A command that also runs as every process of a ``torchrun`` launch.

``@across_ranks`` around a command joins the launch's process group
(:func:`~circuitscope.engine.distributed.process_group`; in one process nothing changes) and,
before the command does any work (before the model loads), refuses a launch whose ranks were
given different options (:func:`~circuitscope.engine.distributed.check_same_arguments`, the
error naming each option by its command-line spelling, ``--steps``). The library functions the
command calls split their work across the ranks and give every rank the whole result; the
command writes its files and prints only where :func:`is_main` (rank 0).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, get_type_hints

from typer.models import ArgumentInfo, OptionInfo

from circuitscope.cli._output import reporting_errors
from circuitscope.engine.distributed import check_same_arguments, current_world, process_group

__all__ = ["across_ranks", "is_main"]

P = ParamSpec("P")


def _spellings(command: Callable[..., None]) -> dict[str, str]:
    """Each option's command-line spelling (``n_prompts`` -> ``--n-prompts``, an argument its metavar), from the
    command's annotations."""
    spelled: dict[str, str] = {}
    for name, hint in get_type_hints(command, include_extras=True).items():
        info = next((m for m in getattr(hint, "__metadata__", ()) if isinstance(m, OptionInfo | ArgumentInfo)), None)
        if isinstance(info, ArgumentInfo):
            spelled[name] = info.metavar or name.upper()
        elif info is not None:
            # in ``Annotated[..., typer.Option("--json")]`` the first spelling sits in ``default``
            given = [info.default, *(info.param_decls or ())]
            decls = [d for d in given if isinstance(d, str) and d.startswith("--")]
            spelled[name] = decls[0].split("/")[0] if decls else "--" + name.replace("_", "-")
    return spelled


def across_ranks(command: Callable[P, None]) -> Callable[P, None]:
    """``command`` run inside the launch's process group, after every rank is shown to have the same options."""

    @functools.wraps(command)
    def run(*args: P.args, **options: P.kwargs) -> None:
        with process_group() as world:
            with reporting_errors(bool(options.get("as_json", False))):
                spelled = _spellings(command)
                check_same_arguments({spelled.get(k, k): v for k, v in options.items()}, world)
            command(*args, **options)

    return run


def is_main() -> bool:
    """True in one process and on rank 0 of a launch: the process that writes files and prints."""
    return current_world().is_main
