"""The ``circuitscope`` command.

Each module in ``circuitscope.cli`` that defines ``register(app)`` adds its commands;
adding a command group means adding one module.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

import circuitscope.cli as cli_package

app = typer.Typer(
    name="circuitscope",
    help="A workbench for mechanistic interpretability on Hugging Face models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

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
