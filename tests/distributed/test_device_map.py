"""A tiny model split by ``device_map`` (on a CPU-only machine: layer 1 offloaded to disk, the rest on the CPU).

accelerate keeps an offloaded module's weights on the meta device and loads them only for that module's
forward pass. Analyses that run the modules (a forward pass with hooks, the activation cache, patching,
block replay) give the unsplit model's numbers bit for bit; EAP, which reads the heads' weights outside
the modules' forward passes, is refused before it runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import circuitscope as cs
from circuitscope.analysis import activation_patching, head_ablation_scan
from circuitscope.circuits import CircuitError, eap
from tests.tiny_models import TinyModels, random_task

SPLIT = {"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
         "model.norm": "cpu", "lm_head": "cpu"}  # fmt: skip
NAMES = ["blocks.*.hook_resid_post", "blocks.*.attn.hook_z", "blocks.*.attn.hook_pattern", "blocks.*.hook_mlp_out"]


@pytest.fixture(scope="module")
def models(tiny: TinyModels) -> tuple[cs.HookedModel, cs.HookedModel]:
    folder: Path = tiny.folder("llama_gqa")
    before = sorted(p.name for p in folder.iterdir())
    split = cs.load_model(str(folder), device_map=SPLIT)
    assert sorted(p.name for p in folder.iterdir()) == before  # offloading wrote nothing into the shared folder
    return cs.load_model(str(folder)), split


def test_the_model_is_split(models: tuple[cs.HookedModel, cs.HookedModel]) -> None:
    _, split = models
    assert split.hf_model.hf_device_map == SPLIT
    where = {n: p.device.type for n, p in split.hf_model.named_parameters()}
    assert {d for n, d in where.items() if n.startswith("model.layers.1.")} == {"meta"}  # not in memory
    assert {d for n, d in where.items() if not n.startswith("model.layers.1.")} == {"cpu"}


def test_hooks_cache_patching_and_replay_equal_the_unsplit_model(models: tuple[cs.HookedModel, cs.HookedModel]) -> None:
    whole, split = models
    task = random_task(4, 7, seed=3, corrupt=(1, 4), name="t")
    logits, cache = split.run_with_cache(task.clean_tokens, names=NAMES)
    want_logits, want = whole.run_with_cache(task.clean_tokens, names=NAMES)
    hooks = sorted(want.keys())
    assert torch.equal(logits, want_logits) and sorted(cache.keys()) == hooks and len(hooks) == 8
    assert all(torch.equal(cache[k], want[k]) for k in hooks)
    assert torch.equal(activation_patching(split, task, "head_out").scores,
                       activation_patching(whole, task, "head_out").scores)  # fmt: skip
    assert torch.equal(head_ablation_scan(split, task).raw, head_ablation_scan(whole, task).raw)  # block replay


def test_eap_on_offloaded_weights_is_refused(models: tuple[cs.HookedModel, cs.HookedModel]) -> None:
    _, split = models
    with pytest.raises(CircuitError, match=r"model.layers.1.* offloaded .*W_Q"):
        eap(split, random_task(2, 5, seed=0, corrupt=(1, 3)))
