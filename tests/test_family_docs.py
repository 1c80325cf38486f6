"""The family pages cannot go stale: docs/adapters.md quotes a real adapter file, docs/models.md is generated.

Also the error for a model type no adapter covers: it lists the families and points at the pages.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from circuitscope.errors import UnsupportedModelError
from circuitscope.models import adapter_for, all_adapters, families

ROOT = Path(__file__).resolve().parents[1]
_QUOTED = re.compile(r"<!-- adapter: (?P<path>\S+) -->\n```python\n(?P<body>.*?)```\n<!-- end adapter -->", re.DOTALL)


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("supported_models", ROOT / "scripts" / "supported_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_adapters_page_quotes_a_complete_adapter_file_as_it_stands() -> None:
    page = (ROOT / "docs" / "adapters.md").read_text(encoding="utf-8")
    quoted = list(_QUOTED.finditer(page))
    assert quoted, "docs/adapters.md quotes no adapter file between its markers"
    for match in quoted:
        source = (ROOT / match["path"]).read_text(encoding="utf-8")
        assert match["body"] == source, f"docs/adapters.md's copy of {match['path']} is stale: paste the file again"
        assert "ADAPTER = Adapter(" in source


def test_models_page_is_the_generators_output() -> None:
    page = (ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    assert page == _generator().render(), "docs/models.md is stale: run python scripts/supported_models.py --write"


def test_models_page_has_a_row_per_adapter() -> None:
    rows = [line for line in _generator().render().splitlines() if line.startswith("| ") and " | yes | " in line]
    assert len(rows) == len(all_adapters())
    for adapter in all_adapters():
        assert any(row.startswith(f"| {adapter.family} | {', '.join(adapter.model_types)} |") for row in rows)


def test_readme_links_the_family_pages() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/models.md)" in readme and "(docs/adapters.md)" in readme


def test_an_unknown_model_type_lists_the_families_and_how_to_add_one() -> None:
    with pytest.raises(UnsupportedModelError) as info:
        adapter_for("no_such_family")
    message = str(info.value)
    assert "'no_such_family'" in message
    for family, types in families().items():
        assert f"{family} ({', '.join(types)})" in message
    assert "src/circuitscope/models/" in message and "tests/families/" in message
    assert "docs/adapters.md" in message and "docs/models.md" in message


def test_families_groups_model_types_by_family() -> None:
    grouped = families()
    assert grouped["llama"] == ("llama", "mistral", "qwen2", "qwen3")
    assert grouped["gemma"] == ("gemma", "gemma2", "gemma3", "gemma3_text")  # two adapters, one family
    assert sorted(t for types in grouped.values() for t in types) == sorted(
        t for a in all_adapters() for t in a.model_types
    )
