"""``circuitscope info --families``: every family's hook points from its adapter, checked against the tiny models."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from circuitscope.cli.main import app
from circuitscope.core.catalogue import family_capabilities
from circuitscope.models import adapter_for, all_adapters
from tests.tiny_models import TINY, VOCAB, TinyModels

runner = CliRunner()
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")


@pytest.fixture(scope="module")
def listed() -> dict[tuple[str, tuple[str, ...]], dict]:
    result = runner.invoke(app, ["info", "--families", "--json"])
    assert result.exit_code == 0, result.output
    return {(f["family"], tuple(f["model_types"])): f for f in json.loads(result.stdout)["families"]}


def test_families_lists_every_adapter(listed: dict[tuple[str, tuple[str, ...]], dict]) -> None:
    assert set(listed) == {(a.family, a.model_types) for a in all_adapters()}
    for (family, types), row in listed.items():
        assert row["capabilities"] == family_capabilities(adapter_for(types[0])).to_json()
        assert row["hooks"][0]["name"] == "hook_embed", family


@pytest.mark.parametrize("name", [t.name for t in TINY])
def test_listed_hook_points_are_the_models_hooks(
    name: str, tiny: TinyModels, listed: dict[tuple[str, tuple[str, ...]], dict]
) -> None:
    """Every ``always`` hook is on every block of the tiny model; every hook it has is listed, axes and all."""
    model = tiny.hooked(name)
    adapter = adapter_for(model.cfg.model_type)
    hooks = {h["name"]: h for h in listed[adapter.family, adapter.model_types]["hooks"]}
    n_layers = model.cfg.n_layers
    seen: dict[str, set[int]] = {}
    for hook_name in model.hook_names:
        match = _BLOCK.match(hook_name)
        template = f"blocks.{{L}}.{match.group(2)}" if match else hook_name
        assert template in hooks, f"{name}: {hook_name} is not listed by info --families"
        seen.setdefault(template, set()).add(int(match.group(1)) if match else -1)
    for template, hook in hooks.items():
        everywhere = seen.get(template) == (set(range(n_layers)) if template.startswith("blocks.") else {-1})
        if hook["presence"] == "always":
            assert everywhere, (
                f"{name}: {template} is listed as always there, but the model has it on {seen.get(template)}"
            )
        else:
            assert hook["condition"], f"{name}: conditional {template} says when it is there"
    # the axis names match the cached shapes (one axis per dimension, the sizes where a name is a size)
    tokens = torch.randint(1, VOCAB, (2, 5), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    cfg = model.cfg
    sizes = {"batch": 2, "pos": 5, "query_pos": 5, "key_pos": 5, "d_model": cfg.d_model, "d_mlp": cfg.d_mlp}
    sizes |= {"head": cfg.n_heads, "kv_head": cfg.n_kv_heads, "d_head": cfg.d_head}
    for hook_name, value in cache.items():
        match = _BLOCK.match(hook_name)
        axes = hooks[f"blocks.{{L}}.{match.group(2)}" if match else hook_name]["axes"]
        assert len(axes) == value.dim(), f"{name}: {hook_name} has shape {tuple(value.shape)}, listed as {axes}"
        for axis, size in zip(axes, value.shape, strict=True):
            shared = hook_name == "hook_pos_embed" and axis == "batch" and size == 1  # one position table row a pos
            if axis in sizes and not shared:
                assert size == sizes[axis], f"{name}: {hook_name} axis {axis} is {size}"


def test_families_for_people() -> None:
    result = runner.invoke(app, ["info", "--families"])
    assert result.exit_code == 0, result.output
    assert "blocks.{L}.attn.hook_pattern  [batch, head, query_pos, key_pos]" in result.stdout
    assert "llama (llama, mistral, qwen2, qwen3)" in result.stdout and "capabilities: hooks yes" in result.stdout


def test_families_takes_no_model(tiny: TinyModels) -> None:
    result = runner.invoke(app, ["info", str(tiny.folder("llama_gqa")), "--families", "--json"])
    assert result.exit_code == 1
    assert "--families" in json.loads(result.stdout)["message"]


def test_info_of_a_model_shows_its_family_capabilities(tiny: TinyModels) -> None:
    folder: Path = tiny.folder("llama_gqa")
    result = runner.invoke(app, ["info", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["capabilities"] == family_capabilities(adapter_for("llama")).to_json()
    people = runner.invoke(app, ["info", str(folder)])
    assert "capabilities" in people.stdout and "per-head hooks yes" in people.stdout


def test_family_narrows_the_table_by_family_or_model_type() -> None:
    everything = json.loads(runner.invoke(app, ["info", "--families", "--json"]).stdout)["families"]
    by_type = runner.invoke(app, ["info", "--family", "mistral", "--json"])
    assert by_type.exit_code == 0, by_type.output
    assert json.loads(by_type.stdout)["families"] == [f for f in everything if "mistral" in f["model_types"]]
    by_name = json.loads(runner.invoke(app, ["info", "--families", "--family", "gpt2", "--json"]).stdout)["families"]
    assert [f["family"] for f in by_name] == ["gpt2"]
    people = runner.invoke(app, ["info", "--family", "llama"]).stdout
    assert people.startswith("llama (llama, mistral, qwen2, qwen3)") and "gpt2 (" not in people


def test_an_unknown_family_is_refused_with_the_families_listed() -> None:
    result = runner.invoke(app, ["info", "--family", "nosuch", "--json"])
    assert result.exit_code == 1
    message = json.loads(result.stdout)["message"]
    assert "'nosuch'" in message and all(a.family in message for a in all_adapters())
