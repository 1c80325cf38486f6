"""Fine-tuning: full and LoRA lower the loss, resume is bit-exact, LoRA merges exactly, the folder loads back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import circuitscope as cs
from circuitscope.core.fingerprint import model_fingerprint
from circuitscope.engine.loss import next_token_loss
from circuitscope.finetune import (
    FinetuneConfig,
    FinetuneError,
    finetune,
    finetune_data,
    merge_lora,
    read_record,
    save_finetuned,
    training_model,
)
from tests.tiny_models import TinyModels

TEXT = "the quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun. " * 40


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def _config(**kw: object) -> FinetuneConfig:
    base: dict[str, object] = dict(
        steps=8, lr=1e-2, batch_size=4, context_size=24, n_contexts=16, n_heldout=4, warmup_steps=2,
        checkpoint_every=4, lora_rank=4,
    )  # fmt: skip
    return FinetuneConfig(**{**base, **kw})  # type: ignore[arg-type]


def _mean_loss(model: cs.HookedModel, tokens: torch.Tensor) -> float:
    with torch.no_grad():
        return float(next_token_loss(model(tokens), tokens))


@pytest.mark.parametrize("method", ["full", "lora"])
def test_finetuning_lowers_the_loss_on_the_training_contexts(tiny: TinyModels, corpus: Path, method: str) -> None:
    model = tiny.text()
    config = _config(method=method)
    data = finetune_data(model, corpus, config)
    before = [p.detach().clone() for p in model.hf_model.parameters()]
    result = finetune(model, data, config, on_progress=lambda *_: None)
    assert len(result.loss) == config.steps
    assert _mean_loss(result.model, data.train) < _mean_loss(model, data.train) - 0.1
    assert all(torch.equal(a, p) for a, p in zip(before, model.hf_model.parameters(), strict=True))  # base unchanged
    n_all = sum(p.numel() for p in model.hf_model.parameters())
    assert (result.n_trainable == n_all) == (method == "full")


@pytest.mark.parametrize("method", ["full", "lora"])
def test_a_resumed_finetune_equals_the_uninterrupted_one_bit_for_bit(
    tiny: TinyModels, corpus: Path, tmp_path: Path, method: str
) -> None:
    model = tiny.text()
    data = finetune_data(model, corpus, _config())
    whole = finetune(model, data, _config(method=method), on_progress=lambda *_: None)
    finetune(model, data, _config(method=method, steps=4), out=tmp_path / "run", on_progress=lambda *_: None)
    resumed = finetune(model, data, _config(method=method), out=tmp_path / "run", on_progress=lambda *_: None)
    assert resumed.resumed_from == 4
    assert resumed.loss == whole.loss
    for a, b in zip(
        whole.model.hf_model.state_dict().values(), resumed.model.hf_model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


def test_lora_merged_gives_the_logits_of_lora_unmerged(tiny: TinyModels) -> None:
    model = tiny.text()
    config = _config(method="lora")
    inner = training_model(model, config)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in inner.named_parameters():
            if "lora_B" in name:  # B starts at zero: give the adapters something to add
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    tokens = model.to_tokens(["the lazy dog sleeps", "a quick brown fox"])
    with torch.no_grad():
        unmerged = inner(input_ids=tokens, use_cache=False).logits
        base = model(tokens)
        merged = cs.HookedModel(merge_lora(inner), model.tokenizer)(tokens)
    assert (unmerged - base).abs().max() > 1e-3  # the adapters change the output
    torch.testing.assert_close(merged, unmerged, rtol=1e-5, atol=1e-5)


def test_the_saved_folder_loads_with_load_model_and_keeps_its_record(
    tiny: TinyModels, corpus: Path, tmp_path: Path
) -> None:
    model = tiny.text()
    config = _config(method="lora", steps=3)
    data = finetune_data(model, corpus, config)
    result = finetune(model, data, config, on_progress=lambda *_: None)
    folder = save_finetuned(result, tmp_path / "tuned")
    loaded = cs.load_model(folder)
    tokens = data.heldout
    with torch.no_grad():
        torch.testing.assert_close(loaded(tokens), result.model(tokens), rtol=0, atol=1e-6)
    record = read_record(folder)
    assert record is not None and torch.equal(record.heldout, data.heldout)
    assert record.base_fingerprint == model_fingerprint(model)
    assert json.loads((folder / "finetune.json").read_text())["loss"] == result.loss
    assert read_record(tmp_path) is None  # not a fine-tuned folder


def test_a_zero_step_finetune_leaves_every_weight_as_it_was(tiny: TinyModels, corpus: Path) -> None:
    model = tiny.text()
    for method in ("full", "lora"):
        config = _config(method=method, steps=0)
        result = finetune(model, finetune_data(model, corpus, config), config)
        assert result.loss == []
        for a, b in zip(model.hf_model.state_dict().values(), result.model.hf_model.state_dict().values(), strict=True):
            assert torch.equal(a, b)


def test_bad_settings_and_too_little_text_are_refused(tiny: TinyModels, corpus: Path) -> None:
    with pytest.raises(FinetuneError, match="batch_size"):
        FinetuneConfig(batch_size=10, n_contexts=4)
    with pytest.raises(FinetuneError, match="method"):
        FinetuneConfig(method="qlora")  # type: ignore[arg-type]
    model = tiny.text()
    with pytest.raises(FinetuneError, match="fewer than"):
        finetune_data(model, corpus, _config(n_contexts=500))
    with pytest.raises(FinetuneError, match="linear modules"):
        training_model(model, _config(lora_targets=("c_attn",)))
