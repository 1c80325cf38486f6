"""What each rank of the distributed CLI tests runs: commands invoked in this rank, in one process group."""

from __future__ import annotations

from circuitscope.engine.distributed import process_group

__all__ = ["commands_on_rank"]


def commands_on_rank(runs: list[list[list[str]]]) -> list[tuple[int, str]]:
    """Each run's command line for this rank (``run[rank]``), invoked in turn: (exit code, stdout) of each.

    The group is joined once here, so every command finds it joined and leaves it alone.
    """
    from typer.testing import CliRunner

    from circuitscope.cli.main import app

    runner = CliRunner()
    with process_group() as world:
        results = [runner.invoke(app, run[world.rank]) for run in runs]
        return [(r.exit_code, r.stdout) for r in results]
