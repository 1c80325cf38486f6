"""Superposition training: closed-form gradients against autograd, the one-draw sampler's law, the loop."""

from __future__ import annotations

import pytest
import torch

from circuitscope.toy import superposition
from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.superposition import (
    SuperpositionModel,
    TrainingOptions,
    feature_generator,
    loss_and_grads,
    sample_features,
    train_superposition,
)


def test_closed_form_gradients_equal_autograd() -> None:
    torch.manual_seed(0)
    model = SuperpositionModel(7, 3, 4)
    with torch.no_grad():
        model.b_final.normal_(0, 0.3)  # some ReLUs inactive, some active
    importance = torch.rand(4, 7) + 0.1
    probability = torch.rand(4, 7) * 0.9 + 0.1
    x = sample_features(feature_generator(1), 64, probability)  # [instance, batch, feature]
    # the naive reference: the module's forward on [batch, instance, feature] through autograd
    xb = x.transpose(0, 1)
    reference = (importance * (xb - model(xb)) ** 2).mean(0).sum()
    reference.backward()
    with torch.no_grad():
        loss, grad_W, grad_b = loss_and_grads(model.W, model.b_final, x, importance)
    assert loss is not None
    torch.testing.assert_close(loss, reference.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_W, model.W.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(grad_b, model.b_final.grad, rtol=1e-4, atol=1e-6)
    # the same with caller-owned buffers, and without the loss
    buffers = (torch.empty_like(x), torch.empty_like(x))
    none, grad_W2, grad_b2 = loss_and_grads(
        model.W.detach(), model.b_final.detach(), x, importance, with_loss=False, buffers=buffers
    )
    assert none is None
    torch.testing.assert_close(grad_W2, grad_W, atol=0, rtol=0)
    torch.testing.assert_close(grad_b2, grad_b, atol=0, rtol=0)


def test_one_draw_gives_presence_with_probability_p_and_uniform_values() -> None:
    probability = torch.tensor([[1.0, 0.5, 0.1]])
    x = sample_features(feature_generator(0), 200_000, probability)[0]  # [batch, feature]
    present = x > 0
    # presence frequency: binomial standard error sqrt(p(1-p)/n) <= 0.0012; 5 of them
    torch.testing.assert_close(present.float().mean(0), probability[0], atol=6e-3, rtol=0)
    for i in range(3):  # given presence, uniform on (0, 1]: mean 1/2, variance 1/12, within [0, 1]
        v = x[present[:, i], i]
        assert float(v.min()) >= 0 and float(v.max()) <= 1
        assert float(v.mean()) == pytest.approx(0.5, abs=0.01)
        assert float(v.var()) == pytest.approx(1 / 12, abs=0.005)
    # the same seed, the same batch; a buffer is filled in place
    out = torch.empty(1, 200_000, 3)
    again = sample_features(feature_generator(0), 200_000, probability, out=out)
    assert again.data_ptr() == out.data_ptr()
    torch.testing.assert_close(again[0], x, atol=0, rtol=0)


def test_training_is_seeded_logs_every_n_and_restores_threads() -> None:
    importance = torch.ones(2, 4)
    probability = torch.full((2, 4), 0.3)
    threads = torch.get_num_threads()
    seen: list[int] = []
    options = TrainingOptions(steps=25, batch_size=32, lr=1e-2)
    run = train_superposition(
        4, 2, importance, probability, options, log_every=10, on_progress=lambda _s, d, _t: seen.append(d)
    )
    assert torch.get_num_threads() == threads
    assert len(run.losses) == 4  # steps 0, 10, 20 and the last (24)
    assert seen == [0, 1, 11, 21, 25, 25]
    assert run.time.threads == 1 and 0 < run.time.sampling_seconds < run.time.seconds
    again = train_superposition(4, 2, importance, probability, options, log_every=10)
    torch.testing.assert_close(again.model.W, run.model.W, atol=0, rtol=0)
    assert again.losses == run.losses
    with pytest.raises(LabConfigError, match="log_every"):
        train_superposition(4, 2, importance, probability, TrainingOptions(steps=5), log_every=0)
    with pytest.raises(LabConfigError, match="lr"):
        TrainingOptions(lr=0.0)


def test_training_a_chunk_of_instances_at_a_time_equals_all_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    importance = torch.rand(5, 6, generator=torch.Generator().manual_seed(0)) + 0.5
    probability = torch.linspace(0.1, 1.0, 5)[:, None].expand(-1, 6).contiguous()
    options = TrainingOptions(steps=30, batch_size=16, lr=1e-2)
    whole = train_superposition(6, 2, importance, probability, options, log_every=7)
    # 2 instances (2 x 16 x 6 entries) per chunk: chunks of 2, 2 and 1, drawing the same stream in order
    monkeypatch.setattr(superposition, "CHUNK_ENTRIES", 2 * 16 * 6)
    assert superposition.instance_chunks(5, 16, 6) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    chunked = train_superposition(6, 2, importance, probability, options, log_every=7)
    # the same products per instance; float32 sums of the loss over chunks in another order
    torch.testing.assert_close(chunked.model.W, whole.model.W, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(chunked.model.b_final, whole.model.b_final, rtol=1e-5, atol=1e-6)
    assert chunked.losses == pytest.approx(whole.losses, rel=1e-5)
