"""Running a CLI command as one process at the ranks' thread count, and as a 2-rank ``torchrun`` launch,
so that a test can compare the two (the CLI tests of patch and trace --facts)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import torch
import typer
from typer.testing import CliRunner


def one_thread(app: typer.Typer, args: list[str]) -> Any:
    """``args`` run in this process at one thread (the ranks' thread count: the same kernels, the same rounding)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return CliRunner().invoke(app, args, env={"CIRCUITSCOPE_NO_PROGRESS": "1"})
    finally:
        torch.set_num_threads(before)


def torchrun(args: list[str], ranks: int = 2) -> subprocess.CompletedProcess[str]:
    """``circuitscope ARGS`` launched by torchrun as ``ranks`` processes of one thread each."""
    env = {**os.environ, "CIRCUITSCOPE_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
               "-m", "circuitscope.cli.main", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
