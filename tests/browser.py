"""Open an HTML file in headless Chromium (Debian's ``chromium``) and report console errors and the DOM."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["BrowserResult", "chromium", "open_in_chromium"]

_CONSOLE = re.compile(r'CONSOLE\(\d+\)\] "(.*)", source: (.*)|:CONSOLE:.*?\] "?(.*)')


@dataclass(frozen=True)
class BrowserResult:
    console_errors: list[str]
    """Console messages at error level and uncaught exceptions."""
    dom: str
    """The DOM after scripts ran (``--dump-dom``)."""


_INSTALL = "the report checks need Debian's chromium, which is not installed: sudo apt-get install chromium"


def chromium() -> str:
    """The Chromium binary; a missing browser fails the test (a skip would hide a missing check in CI)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(f"{_INSTALL} (.ci/run installs it before make test)", pytrace=False)
    return path


def open_in_chromium(page: Path, budget_ms: int = 8000) -> BrowserResult:
    """Load ``page`` from disk, let its scripts run, and collect what went wrong."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--enable-logging=stderr",
                "--v=0",
                f"--virtual-time-budget={budget_ms}",
                "--dump-dom",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    errors = []
    for line in done.stderr.splitlines():
        if "CONSOLE" not in line and "Uncaught" not in line:
            continue
        if "ERROR" in line or "Uncaught" in line or "error" in line.lower():
            errors.append(line.strip())
    return BrowserResult(console_errors=errors, dom=done.stdout)
