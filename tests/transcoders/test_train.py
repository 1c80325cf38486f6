"""Training transcoders from one forward pass: it learns, resumes bit for bit, folds its scales, refuses other runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import circuitscope as cs
from circuitscope.sae import Corpus
from circuitscope.transcoders import TranscoderConfig, TranscoderConfigError, TranscoderSet
from circuitscope.transcoders.io import load_transcoders
from circuitscope.transcoders.objective import step_loss
from circuitscope.transcoders.train import fold_scales, train_transcoders
from circuitscope.transcoders.train_config import TranscoderTrainConfig
from tests.ranks import run_ranks
from tests.tiny_models import TinyModels

TEXT = ("the quick brown fox jumps over the lazy dog. pack my box with five dozen liquor jugs! " * 30).strip()


@pytest.fixture(scope="module")
def text_model(tiny: TinyModels) -> cs.HookedModel:
    return tiny.text()


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus("pangrams", [TEXT, TEXT[::-1]])


def _cfg(**kw: object) -> TranscoderTrainConfig:
    base: dict[str, object] = dict(
        d_sae=64, k=4, tokens=31 * 4 * 12, context_size=32, batch_contexts=4, warmup_steps=2, log_every=2,
        sparsity_warmup_steps=3, dead_after_tokens=31 * 4 * 3,
    )  # fmt: skip
    base.update(kw)
    return TranscoderTrainConfig(**base)  # type: ignore[arg-type]  # config fields passed through as a dict


@pytest.mark.parametrize(
    ("kind", "architecture", "skip"),
    [("per_layer", "topk", False), ("cross_layer", "jumprelu", True), ("per_layer", "relu", False)],
)
def test_interrupted_run_resumes_bit_for_bit(
    kind: str, architecture: str, skip: bool, text_model: cs.HookedModel, corpus: Corpus, tmp_path: Path
) -> None:
    cfg = _cfg(kind=kind, architecture=architecture, skip=skip, checkpoint_every=5)
    full = train_transcoders(text_model, cfg, corpus, tmp_path / "full", on_progress=lambda *_: None)
    train_transcoders(text_model, cfg, corpus, tmp_path / "cut", stop_after_steps=7, on_progress=lambda *_: None)
    assert (tmp_path / "cut" / "checkpoints" / "step_00000007" / "trainer.json").is_file()
    assert not (tmp_path / "cut" / "transcoders.json").exists()  # no final set until the run is complete
    resumed = train_transcoders(text_model, cfg, corpus, tmp_path / "cut", on_progress=lambda *_: None)
    assert full.steps == resumed.steps == 12
    for name, value in full.transcoders.state_dict().items():
        assert torch.equal(value, resumed.transcoders.state_dict()[name]), name
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    loaded = load_transcoders(tmp_path / "cut", model=text_model)
    assert torch.equal(loaded.W_enc, full.transcoders.W_enc)


def test_training_lowers_the_error(text_model: cs.HookedModel, corpus: Corpus) -> None:
    result = train_transcoders(text_model, _cfg(tokens=31 * 4 * 40, lr=3e-3), corpus, on_progress=lambda *_: None)
    first, last = result.history[0], result.history[-1]
    assert last["fvu"] < 0.6 * first["fvu"], (first, last)
    assert 0 < last["l0"] <= 4  # TopK: at most k per token and layer
    assert result.tokens == 31 * 4 * 40 and result.to_json()["steps"] == 40


def test_folded_scales_give_the_same_estimates() -> None:
    cfg = TranscoderConfig("cross_layer", "jumprelu", 5, 7, 5, (0, 1, 2), skip=True)
    tc = TranscoderSet(cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in tc.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
        assert tc.threshold is not None
        tc.threshold.abs_().mul_(0.3)
    s_in, s_out = torch.tensor([0.5, 2.0, 3.0]), torch.tensor([4.0, 0.25, 1.5])
    folded = fold_scales(tc, s_in, s_out)
    xs = {layer: torch.randn(6, 5, generator=g) for layer in cfg.layers}
    trained = tc.reconstruct({layer: x * s_in[layer] for layer, x in xs.items()})
    raw = folded.reconstruct(xs)
    for layer in cfg.layers:
        torch.testing.assert_close(raw[layer], trained[layer] / s_out[layer])


def test_step_loss_matches_a_dense_reference() -> None:
    cfg = TranscoderConfig("cross_layer", "topk", 5, 9, 5, (0, 1), k=2, skip=True)
    tc = TranscoderSet(cfg)
    tc.initialize(torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(2, 8, 5, generator=g), torch.randn(2, 8, 5, generator=g)
    out = step_loss(tc, x, y, 0.0, 0.1)
    est = tc.reconstruct({0: x[0], 1: x[1]})
    ref = sum((est[t] - y[t]).pow(2).sum(-1).mean() for t in (0, 1))
    torch.testing.assert_close(out.loss, ref)
    out.loss.backward()
    sparse_grad = tc.W_enc.grad.clone()  # type: ignore[union-attr]
    tc.zero_grad()
    ref.backward()  # type: ignore[union-attr]
    torch.testing.assert_close(sparse_grad, tc.W_enc.grad)


def test_bad_settings_and_other_runs_are_refused(text_model: cs.HookedModel, corpus: Corpus, tmp_path: Path) -> None:
    with pytest.raises(TranscoderConfigError, match=r"layers \[9\] do not exist"):
        train_transcoders(text_model, _cfg(layers=(0, 9)), corpus)
    with pytest.raises(TranscoderConfigError, match="k=80 is more than"):
        train_transcoders(text_model, TranscoderTrainConfig(k=80, expansion=1), corpus)
    with pytest.raises(TranscoderConfigError, match="invalid transcoder training settings"):
        TranscoderTrainConfig(tokens=0)
    train_transcoders(text_model, _cfg(), corpus, tmp_path, stop_after_steps=2, on_progress=lambda *_: None)
    with pytest.raises(TranscoderConfigError, match="other settings"):
        train_transcoders(text_model, _cfg(lr=5e-3), corpus, tmp_path)


def train_on_rank(folder: str, out: str) -> dict[str, torch.Tensor]:
    """One rank of a 2-process launch: the same run as in one process (module level, for tests/ranks.py)."""
    model = cs.load_model(folder)
    result = train_transcoders(model, _cfg(), Corpus("pangrams", [TEXT, TEXT[::-1]]), out, on_progress=lambda *_: None)
    return {k: v.clone() for k, v in result.transcoders.state_dict().items()}


@pytest.mark.slow  # two spawned ranks import torch and circuitscope (20-40 s on a loaded 2-core machine)
def test_two_processes_train_what_one_does(tiny: TinyModels, corpus: Corpus, tmp_path: Path) -> None:
    folder = tiny.text_folder()
    alone = train_transcoders(cs.load_model(str(folder)), _cfg(), corpus, on_progress=lambda *_: None)
    ranks = run_ranks(train_on_rank, 2, str(folder), str(tmp_path / "ddp"))
    for name, value in alone.transcoders.state_dict().items():
        # each rank runs the model on half the contexts; the averaged gradients equal the whole batch's up to
        # the order of float32 sums (the all-reduce adds the two halves' partial sums)
        torch.testing.assert_close(ranks[0][name], value, rtol=1e-4, atol=1e-5)
        assert torch.equal(ranks[0][name], ranks[1][name])
    assert torch.equal(load_transcoders(tmp_path / "ddp").W_enc, ranks[0]["W_enc"])
