"""A machine without Debian's chromium: make test stops first, the browser checks fail with the install command."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import browser

ROOT = Path(__file__).parents[2]
INSTALL = "sudo apt-get install chromium"


def test_a_missing_chromium_fails_the_browser_check_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser.shutil, "which", lambda _name: None)
    with pytest.raises(pytest.fail.Exception, match=INSTALL):  # a failure, not a skip: CI must not lose the check
        browser.open_in_chromium(ROOT / "README.md")


def _make_chromium(path: Path) -> subprocess.CompletedProcess[str]:
    make = shutil.which("make")
    assert make is not None, "the Makefile checks need GNU make"
    return subprocess.run(
        [make, "--no-print-directory", "-C", str(ROOT), "chromium"],
        env={**os.environ, "PATH": str(path)},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("name", ["chromium", "chromium-browser"])
def test_make_test_checks_for_chromium_first(tmp_path: Path, name: str) -> None:
    missing = _make_chromium(tmp_path)  # an empty PATH: no browser at all
    assert missing.returncode != 0
    assert f"make test needs Debian's chromium for the report checks: {INSTALL}" in missing.stderr
    fake = tmp_path / name
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    found = _make_chromium(tmp_path)
    assert found.returncode == 0, found.stderr
    assert INSTALL not in found.stderr


def test_make_test_runs_the_check_before_any_set_up() -> None:
    test_rule = next(line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("test:"))
    assert test_rule.split(":", 1)[1].split()[0] == "chromium", test_rule
