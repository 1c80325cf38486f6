"""Superposition training: closed-form gradients against autograd, the one-draw sampler's law, the loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from circuitscope.toy import superposition_step
from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.superposition import SuperpositionModel, TrainingOptions, train_superposition
from circuitscope.toy.superposition_sampling import instance_generators, sample_features
from circuitscope.toy.superposition_step import loss_and_grads


def test_closed_form_gradients_equal_autograd() -> None:
    torch.manual_seed(0)
    model = SuperpositionModel(7, 3, 4)
    with torch.no_grad():
        model.b_final.normal_(0, 0.3)  # some ReLUs inactive, some active
    importance = torch.rand(4, 7) + 0.1
    probability = torch.rand(4, 7) * 0.9 + 0.1
    x = sample_features(instance_generators(1, 4), 64, probability)  # [instance, feature, batch]
    # the naive reference: the module's forward on [batch, instance, feature] through autograd
    xb = x.permute(2, 0, 1)
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
    x = sample_features(instance_generators(0, 1), 200_000, probability)[0]  # [feature, batch]
    present = x > 0
    # presence frequency: binomial standard error sqrt(p(1-p)/n) <= 0.0012; 5 of them
    torch.testing.assert_close(present.float().mean(1), probability[0], atol=6e-3, rtol=0)
    for i in range(3):  # given presence, uniform on (0, 1]: mean 1/2, variance 1/12, within [0, 1]
        v = x[i, present[i]]
        assert float(v.min()) >= 0 and float(v.max()) <= 1
        assert float(v.mean()) == pytest.approx(0.5, abs=0.01)
        assert float(v.var()) == pytest.approx(1 / 12, abs=0.005)
    # the same seed, the same batch; a buffer is filled in place
    out = torch.empty(1, 3, 200_000)
    again = sample_features(instance_generators(0, 1), 200_000, probability, out=out)
    assert again.data_ptr() == out.data_ptr()
    torch.testing.assert_close(again[0], x, atol=0, rtol=0)
    # an instance's features do not depend on the instances beside it; other instances' do differ
    two = sample_features(instance_generators(0, 2), 1000, probability.expand(2, -1).contiguous())
    alone = sample_features(instance_generators(0, 1), 1000, probability)
    torch.testing.assert_close(two[0], alone[0], atol=0, rtol=0)
    assert not torch.equal(two[1], two[0])


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
    assert run.time.threads == 1  # one chunk of instances: one thread, not timed
    assert 0 < run.time.sampling_seconds < run.time.seconds
    again = train_superposition(4, 2, importance, probability, options, log_every=10)
    torch.testing.assert_close(again.model.W, run.model.W, atol=0, rtol=0)
    assert again.losses == run.losses
    with pytest.raises(LabConfigError, match="log_every"):
        train_superposition(4, 2, importance, probability, TrainingOptions(steps=5), log_every=0)
    with pytest.raises(LabConfigError, match="lr"):
        TrainingOptions(lr=0.0)


def test_chunks_and_threads_do_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    importance = torch.rand(5, 6, generator=torch.Generator().manual_seed(0)) + 0.5
    probability = torch.linspace(0.1, 1.0, 5)[:, None].expand(-1, 6).contiguous()
    options = TrainingOptions(steps=30, batch_size=16, lr=1e-2, threads=1)
    whole = train_superposition(6, 2, importance, probability, options, log_every=7)
    # 2 instances (2 x 6 x 16 entries) per chunk: chunks of 2, 2 and 1, each instance drawing its own stream
    monkeypatch.setattr(superposition_step, "CHUNK_ENTRIES", 2 * 16 * 6)
    assert superposition_step.instance_chunks(5, 16, 6) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    chunked = train_superposition(6, 2, importance, probability, options, log_every=7)
    # the same products per instance; float32 sums of the loss over chunks in another order
    torch.testing.assert_close(chunked.model.W, whole.model.W, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(chunked.model.b_final, whole.model.b_final, rtol=1e-5, atol=1e-6)
    assert chunked.losses == pytest.approx(whole.losses, rel=1e-5)
    # two threads share the chunks: the same computations, bit for bit
    threaded = train_superposition(6, 2, importance, probability, TrainingOptions(**{**options.__dict__, "threads": 2}))
    assert threaded.time.threads == 2
    torch.testing.assert_close(threaded.model.W, chunked.model.W, atol=0, rtol=0)
    torch.testing.assert_close(threaded.model.b_final, chunked.model.b_final, atol=0, rtol=0)
    # measured (threads None): 1 or 2, the same model either way
    measured = train_superposition(6, 2, importance, probability, TrainingOptions(steps=30, batch_size=16, lr=1e-2))
    assert measured.time.threads in (1, 2)
    torch.testing.assert_close(measured.model.W, chunked.model.W, atol=0, rtol=0)


@pytest.mark.parametrize("row", [[0.3, 0.3, 0.3], [0.3, 0.05, 1.0]])  # one probability (scalar path), several
def test_features_are_the_formula_on_the_generators_uniforms(row: list[float]) -> None:
    probability = torch.tensor([row, [0.5, 0.5, 0.5]])
    x = sample_features(instance_generators(5, 2), 1000, probability)
    for i, generator in enumerate(instance_generators(5, 2)):  # the same streams, drawn by hand
        u = torch.from_numpy(generator.random((3, 1000), dtype=np.float32))
        torch.testing.assert_close(x[i], (1 - u / probability[i][:, None]).clamp_min(0), rtol=1e-6, atol=1e-6)
