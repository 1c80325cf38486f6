"""The ``circuitscope`` command."""

from __future__ import annotations

import typer

from circuitscope.cli import info as info_cmd

app = typer.Typer(
    name="circuitscope",
    help="A workbench for mechanistic interpretability on Hugging Face models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("info")(info_cmd.info)
app.command("run")(info_cmd.run)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
