"""Activation store: collection, resumption after an interruption, validation, the shuffled stream."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import circuitscope as cs
from circuitscope import sae as S  # noqa: N812
from tests.sae.conftest import TEXT

HOOK = "blocks.1.hook_resid_post"


def _cfg(**kw: object) -> S.CollectConfig:
    base: dict[str, object] = dict(hook=HOOK, tokens=1500, context_size=16, batch_size=8, tokens_per_shard=300)
    base.update(kw)
    return S.CollectConfig(**base)  # type: ignore[arg-type]  # config fields passed through as a dict of objects


@pytest.fixture(scope="module")
def corpus() -> S.Corpus:
    return S.Corpus("sonnet", [TEXT])


def test_collect_stores_exactly_the_hook_activations(
    tiny_model: cs.HookedModel, corpus: S.Corpus, tmp_path: Path
) -> None:
    store = S.collect_activations(tiny_model, corpus, tmp_path, _cfg(), model_name="tiny")
    assert store.n_tokens == 1500 and store.d_in == tiny_model.cfg.d_model
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["version"] == 1 and manifest["complete"] and manifest["hook"] == HOOK
    assert manifest["corpus"]["sha256"] == corpus.sha256
    # the first rows are context 0 without its BOS, exactly as a cached forward pass gives them
    contexts = S.build_contexts(tiny_model, corpus, 16, seed=0)
    assert bool((contexts.tokens[:, 0] == 1).all())
    acts, toks = store.load_shard(0)
    _, cache = tiny_model.run_with_cache(contexts.tokens[:2], HOOK)
    # collected in the store's own batches vs these two contexts: another GEMM shape, float32 rounding
    torch.testing.assert_close(acts[:30], cache[HOOK][:, 1:].reshape(-1, store.d_in), atol=1e-5, rtol=0)
    assert toks[:15].tolist() == contexts.tokens[0, 1:].tolist()


def test_interrupted_collection_resumes_to_the_same_files(
    tiny_model: cs.HookedModel, corpus: S.Corpus, tmp_path: Path
) -> None:
    full = S.collect_activations(tiny_model, corpus, tmp_path / "full", _cfg())
    part = tmp_path / "part"
    S.collect_activations(tiny_model, corpus, part, _cfg(), stop_after_shards=2)
    manifest = json.loads((part / "manifest.json").read_text())
    assert len(manifest["shards"]) == 2 and not manifest["complete"]
    (part / "shard_00002.safetensors").write_bytes(b"half a shard")  # a write cut short, never in the manifest
    resumed = S.collect_activations(tiny_model, corpus, part, _cfg())
    assert resumed.n_tokens == full.n_tokens and len(resumed.shards) == len(full.shards)
    for a, b in zip(full.shards, resumed.shards, strict=True):
        assert a["sha256"] == b["sha256"]


def test_a_corrupted_shard_is_reported_and_recollected(
    tiny_model: cs.HookedModel, corpus: S.Corpus, tmp_path: Path
) -> None:
    store = S.collect_activations(tiny_model, corpus, tmp_path, _cfg())
    good = store.shards[1]["sha256"]
    path = tmp_path / store.shards[1]["file"]
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(S.ActivationStoreError, match=r"shard_00001\.safetensors"):
        S.ActivationStore(tmp_path)
    kept = (tmp_path / "shard_00000.safetensors").read_bytes()
    repaired = S.collect_activations(tiny_model, corpus, tmp_path, _cfg())
    assert repaired.shards[1]["sha256"] == good
    assert (tmp_path / "shard_00000.safetensors").read_bytes() == kept


def test_manifest_that_does_not_match_its_shards(tiny_model: cs.HookedModel, corpus: S.Corpus, tmp_path: Path) -> None:
    S.collect_activations(tiny_model, corpus, tmp_path, _cfg())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["shards"][0]["n_tokens"] += 1
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(S.ActivationStoreError, match="manifest says"):
        S.ActivationStore(tmp_path)
    with pytest.raises(S.ActivationStoreError, match=r"no manifest\.json"):
        S.ActivationStore(tmp_path / "nowhere")


def test_resuming_with_other_settings_is_refused(tiny_model: cs.HookedModel, corpus: S.Corpus, tmp_path: Path) -> None:
    S.collect_activations(tiny_model, corpus, tmp_path, _cfg(), stop_after_shards=1)
    before = (tmp_path / "manifest.json").read_text()
    with pytest.raises(S.ActivationStoreError, match="context_size"):
        S.collect_activations(tiny_model, corpus, tmp_path, _cfg(context_size=32))
    assert (tmp_path / "manifest.json").read_text() == before


def test_unknown_hook_is_a_clear_error_before_writing(
    tiny_model: cs.HookedModel, corpus: S.Corpus, tmp_path: Path
) -> None:
    with pytest.raises(cs.HookNameError, match="closest valid names"):
        S.collect_activations(tiny_model, corpus, tmp_path / "x", _cfg(hook="blocks.1.hook_resid_pst"))
    assert not (tmp_path / "x").exists()


def test_stream_is_a_shuffled_permutation_and_resumable(tmp_path: Path) -> None:
    data = torch.arange(1000, dtype=torch.float32)[:, None].repeat(1, 3)
    store = S.write_store(data, tmp_path, tokens_per_shard=100)
    stream = store.batches(50, seed=3, shards_in_memory=4)
    epoch = torch.cat([next(stream) for _ in range(store.batches_per_epoch(50, 4, seed=3))])
    assert sorted(epoch[:, 0].tolist()) == list(range(1000))  # every row once per epoch
    assert epoch[:, 0].tolist() != list(range(1000))  # shuffled
    later = store.batches(50, seed=3, start=13, shards_in_memory=4)
    stream = store.batches(50, seed=3, shards_in_memory=4)
    reference = [next(stream) for _ in range(30)]
    for i in range(13, 30):
        assert torch.equal(next(later), reference[i])


def test_corpus_sources(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello world")
    (tmp_path / "b.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n')
    corpus = S.load_corpus(tmp_path)
    assert sorted(corpus.documents) == ["hello world", "one", "two"]
    (tmp_path / "c.jsonl").write_text('{"body": "x"}\n')
    with pytest.raises(S.SAEConfigError, match="text_field"):
        S.load_corpus(tmp_path / "c.jsonl")
    with pytest.raises(S.SAEConfigError, match="does not exist"):
        S.load_corpus(tmp_path / "missing.txt")
