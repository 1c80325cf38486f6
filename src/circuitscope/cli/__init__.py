"""The ``circuitscope`` command line (typer). Every command takes ``--json``."""
