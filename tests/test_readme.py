"""Every ```python block of README.md and of docs/*.md runs as written, each in a fresh namespace.

A block that loads the embedded ``gemma-3-270m`` runs in the real tier; a block whose first line is
``# tiny model`` runs in the fast tier; any other block runs in the real tier.

Each ``load_model("gemma-3-270m")`` of a block loads the model from its cache as written, weights and all,
except that the cache's tokenizer (a 33 MB ``tokenizer.json``, most of a load's time) is parsed once per test
process and handed to every later load; after each block it must be as parsed.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from circuitscope.core import loading

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
TINY = "# tiny model"
REAL_MODEL = "gemma-3-270m"


@dataclass(frozen=True)
class Block:
    line: int
    """The line of its markdown file the code starts on (1-based)."""
    source: str
    path: Path = README
    """The markdown file."""

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def readme_blocks(text: str, path: Path = README) -> list[Block]:
    """The ```python blocks of a markdown text, in order."""
    blocks = []
    for match in re.finditer(r"^```python[ \t]*\n(.*?)^```[ \t]*$", text, flags=re.MULTILINE | re.DOTALL):
        line = text.count("\n", 0, match.start(1)) + 1
        blocks.append(Block(line=line, source=match.group(1), path=path))
    return blocks


def _tier(block: Block) -> list[pytest.MarkDecorator]:
    is_tiny = block.source.lstrip().startswith(TINY) and REAL_MODEL not in block.source
    return [] if is_tiny else [pytest.mark.real]


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
DOC_BLOCKS = [block for doc in DOCS for block in readme_blocks(doc.read_text(encoding="utf-8"), doc)]


def test_readme_and_docs_have_python_blocks() -> None:
    assert BLOCKS, "README.md has no ```python blocks"
    assert DOCS and DOC_BLOCKS, "docs/*.md has no ```python blocks"
    assert {b.path for b in DOC_BLOCKS} <= set(DOCS)


def test_block_extraction() -> None:
    text = "intro\n```python\nx = 1\n```\n\n```bash\nls\n```\n```python\n# tiny model\ny = 2\n```\n"
    blocks = readme_blocks(text)
    assert [b.source for b in blocks] == ["x = 1\n", "# tiny model\ny = 2\n"]
    assert [b.line for b in blocks] == [3, 10]
    assert [len(_tier(b)) for b in blocks] == [1, 0]
    assert [b.id for b in readme_blocks(text, ROOT / "docs" / "x.md")] == ["docs/x.md:3", "docs/x.md:10"]


def _tokenizer_state(tokenizer: Any) -> tuple[object, ...]:
    """What a block could change on a shared tokenizer."""
    t = tokenizer
    return len(t), t.padding_side, t.truncation_side, t.model_max_length, str(t.special_tokens_map), t.pad_token_id


@pytest.fixture(scope="session")
def _parsed() -> dict[tuple[str, int, int], tuple[Any, tuple[object, ...]]]:
    """The cached model's tokenizers parsed so far, by (folder, size and mtime of tokenizer.json), with their state."""
    return {}


@pytest.fixture
def tokenizer_once(
    _parsed: dict[tuple[str, int, int], tuple[Any, tuple[object, ...]]], monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """``load_model`` of a cached model takes its tokenizer parsed once (see the module); any other load is as is."""
    real = loading._folder_tokenizer

    def folder_tokenizer(folder: Path, what: str) -> Any:
        file = folder / "tokenizer.json"
        if what != "cached model" or not file.is_file():
            return real(folder, what)
        stat = file.stat()
        key = (str(folder.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _parsed:
            tokenizer = real(folder, what)
            _parsed[key] = tokenizer, _tokenizer_state(tokenizer)
        return _parsed[key][0]

    monkeypatch.setattr(loading, "_folder_tokenizer", folder_tokenizer)
    yield
    for tokenizer, state in _parsed.values():
        assert _tokenizer_state(tokenizer) == state, "the block changed the shared tokenizer"


@pytest.mark.parametrize("block", [pytest.param(b, marks=_tier(b), id=b.id) for b in BLOCKS + DOC_BLOCKS])
@pytest.mark.usefixtures("tokenizer_once")
def test_readme_block_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a block that writes a file writes it here
    code = compile(block.source, f"{block.path}:{block.line}", "exec", dont_inherit=True)  # not this file's __future__
    module = types.ModuleType("__readme__")  # a real module, as a script's __main__ is (dataclasses look it up)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(code, module.__dict__)
