"""The ``circuitscope`` command line (typer). Every command takes ``--json``.

The entry point is :func:`circuitscope.cli.main.main`; nothing here is a library API.
"""

__all__: list[str] = []
