"""Activation collection on 2 gloo ranks writes the store one process writes, byte for byte, and resumes per rank.

One launch (spawned ranks import torch once) runs every check: a collection interrupted on both
ranks (each leaves its own record of the shards it finished) and resumed on 2 ranks, a fresh
2-rank collection through the CLI, and a launch whose ranks disagree on ``--tokens``. The
reference is one process at the ranks' thread count (1), so every shard is the same computation.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import circuitscope as cs
from circuitscope import sae as S  # noqa: N812
from circuitscope.core.fingerprint import model_fingerprint
from circuitscope.engine.distributed import all_gather, process_group
from tests.distributed.commands import commands_on_rank
from tests.ranks import run_ranks

HOOK = "blocks.1.hook_resid_post"


def _cfg() -> S.CollectConfig:
    # 100 contexts of 15 stored tokens in batches of 8: five shards (4 x 360 rows, then 60); rank 0 has 0-2, rank 1 3-4
    return S.CollectConfig(hook=HOOK, tokens=1500, context_size=16, batch_size=8, tokens_per_shard=300)


class _InterruptedError(Exception):
    """The launch stopped mid-collection (as a killed torchrun would leave it)."""


def _cli(model: str, corpus: str, out: str, tokens: int = 1500) -> list[str]:
    return ["sae", "collect", "--model", model, "--corpus", corpus, "--out-dir", out, "--hook", HOOK,
            "--tokens", str(tokens), "--context-size", "16", "--batch-size", "8", "--tokens-per-shard", "300",
            "--json"]  # fmt: skip


def collect_on_rank(model_dir: str, corpus_file: str, folder: str) -> dict[str, Any]:
    """On each rank: a collection interrupted after 4 batches, then resumed; then the CLI's runs."""
    model, corpus = cs.load_model(model_dir), S.load_corpus(corpus_file)
    batches: list[int] = []

    def stop_after_four(stage: str, done: int, total: int) -> None:
        batches.append(done)
        if done == 4:
            raise _InterruptedError

    part = Path(folder) / "part"
    with process_group() as world:
        with contextlib.suppress(_InterruptedError):
            S.collect_activations(model, corpus, part, _cfg(), model_name="tiny", on_progress=stop_after_four)
        all_gather(None, world)  # both ranks stopped before either lists the folder
        left = sorted(p.name for p in part.iterdir())
        resumed: list[int] = []
        S.collect_activations(
            model, corpus, part, _cfg(), model_name="tiny", on_progress=lambda s, d, t: resumed.append(t)
        )
        disagree = [_cli(model_dir, corpus_file, f"{folder}/never", t) for t in (1500, 1200)]
        runs = [[_cli(model_dir, corpus_file, f"{folder}/cli")] * 2, disagree]
        return {"left": left, "resumed_batches": resumed[0], "cli": commands_on_rank(runs)}


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.slow  # two spawned ranks import torch and circuitscope (about 20 s on a loaded 2-core machine)
def test_two_ranks_write_the_one_process_store_and_resume_per_rank(
    tiny_folder: Path, corpus_file: Path, tmp_path: Path
) -> None:
    model = cs.load_model(str(tiny_folder))
    alone = S.collect_activations(model, S.load_corpus(corpus_file), tmp_path / "alone", _cfg(), model_name="tiny")
    assert len(alone.shards) == 5
    ranks = run_ranks(collect_on_rank, 2, str(tiny_folder), str(corpus_file), str(tmp_path))
    reference = _files(tmp_path / "alone")
    # interrupted: rank 0 had finished shard 0 (3 batches), rank 1 shards 3 and 4 (4 batches); each kept a record
    assert ranks[0]["left"] == [
        "collect.rank-00000.json", "collect.rank-00001.json", "shard_00000.safetensors", "shard_00003.safetensors",
        "shard_00004.safetensors",
    ]  # fmt: skip
    assert [r["resumed_batches"] for r in ranks] == [6, 0]  # only rank 0's shards 1 and 2 were left to collect
    assert _files(tmp_path / "part") == reference  # the same shards and manifest, the records removed
    (code0, out0), (code1, out1) = ranks[0]["cli"][0], ranks[1]["cli"][0]
    assert code0 == 0 and code1 == 0 and out1 == ""  # rank 1 collected its shards and printed nothing
    assert json.loads(out0)["shards"] == 5
    cli_files = _files(tmp_path / "cli")
    one = json.loads(cli_files["manifest.json"])
    assert one["model"] == str(tiny_folder) and one["model_fingerprint"] == model_fingerprint(model)
    assert {k: v for k, v in cli_files.items() if k != "manifest.json"} == {
        k: v for k, v in reference.items() if k != "manifest.json"
    }  # the same shards (the manifest names the model by its folder here)
    for rank in ranks:
        code, out = rank["cli"][1]
        error = json.loads(out)
        assert (
            code == 1
            and error["error"] == "DistributedError"
            and "--tokens: rank 0=1500, rank 1=1200" in error["message"]
        )
    assert not (tmp_path / "never").exists()  # refused before any work


def test_a_folder_of_another_model_or_hook_is_refused_before_any_work(
    tiny_model: cs.HookedModel, tiny: Any, tmp_path: Path
) -> None:
    from tests.sae.conftest import TEXT, char_tokenizer

    corpus = S.Corpus("sonnet", [TEXT])
    cfg = S.CollectConfig(hook=HOOK, tokens=300, context_size=16, batch_size=8, tokens_per_shard=300)
    S.collect_activations(tiny_model, corpus, tmp_path, cfg, model_name="tiny")
    before = _files(tmp_path)
    other = tiny.hooked("gpt2", char_tokenizer())  # another model under the same name: its weights differ
    with pytest.raises(S.ActivationStoreError, match="model_fingerprint"):
        S.collect_activations(other, corpus, tmp_path, cfg, model_name="tiny")
    with pytest.raises(S.ActivationStoreError, match="hook"):
        S.collect_activations(
            tiny_model, corpus, tmp_path, replace(cfg, hook="blocks.0.hook_resid_post"), model_name="tiny"
        )
    assert _files(tmp_path) == before
