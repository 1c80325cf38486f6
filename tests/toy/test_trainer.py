"""The trainer: bit-for-bit resumption, metric curves, checkpoint folders of another run."""

from __future__ import annotations

import json

import pytest
import torch

from circuitscope.toy.checkpoint import checkpoint_steps_on_disk, load_model_weights
from circuitscope.toy.errors import CheckpointError, LabConfigError
from circuitscope.toy.model import build_toy
from circuitscope.toy.trainer import TrainConfig, seeded_batches, shuffled_batches, train


def _make(g: torch.Generator) -> tuple[torch.Tensor, ...]:
    return (torch.randint(0, 20, (8, 10), generator=g),)


def _loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return model(batch[0], labels=batch[0]).loss


def _model() -> torch.nn.Module:
    return build_toy(seed=0, d_vocab=20, n_ctx=10, d_model=16, n_layers=1, n_heads=2)


METRICS = {"unembed_norm": lambda m: m.unembed.weight.norm(), "first_row": lambda m: m.embed.weight[0, :3]}


def _config(steps: int, **kw) -> TrainConfig:
    return TrainConfig(steps=steps, checkpoint_every=5, warmup_steps=3, weight_decay=0.1, seed=1, **kw)


def test_resumed_run_equals_uninterrupted_run_bit_for_bit(tmp_path) -> None:
    uninterrupted = _model()
    reference = train(uninterrupted, _loss, seeded_batches(_make, 1), _config(20), metrics=METRICS)

    interrupted = _model()
    train(interrupted, _loss, seeded_batches(_make, 1), _config(10), out=tmp_path, metrics=METRICS)
    resumed_model = _model()  # a fresh process: new model, state only from disk
    resumed = train(resumed_model, _loss, seeded_batches(_make, 1), _config(20), out=tmp_path, metrics=METRICS)

    assert resumed.resumed_from == 10
    assert resumed.loss == reference.loss
    assert resumed.metrics == reference.metrics
    assert resumed.metric_steps == [0, 5, 10, 15, 20]
    for (name, a), b in zip(uninterrupted.state_dict().items(), resumed_model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert checkpoint_steps_on_disk(tmp_path) == [0, 5, 10, 15, 20]
    assert checkpoint_steps_on_disk(tmp_path, resumable=True) == [15, 20]  # optimizer state: the two latest
    assert torch.equal(
        load_model_weights(tmp_path, 20)["unembed.weight"], uninterrupted.get_parameter("unembed.weight")
    )
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["format"] == "circuitscope.toy.run" and run["version"] == 1


def test_metric_curve_is_measured_at_checkpoints() -> None:
    model = _model()
    result = train(model, _loss, seeded_batches(_make, 0), TrainConfig(steps=7, checkpoint_every=3), metrics=METRICS)
    assert result.metric_steps == [0, 3, 6, 7]
    assert result.curve("first_row").shape == (4, 3)
    assert result.curve("unembed_norm")[-1].item() == pytest.approx(
        float(model.get_parameter("unembed.weight").detach().norm())
    )
    assert len(result.loss) == 7


def test_warmup_schedule() -> None:
    config = TrainConfig(steps=10, lr=1e-2, warmup_steps=4)
    assert [config.lr_at(s) for s in range(5)] == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2, 1e-2])


def test_a_folder_of_another_configuration_is_refused(tmp_path) -> None:
    train(_model(), _loss, seeded_batches(_make, 1), _config(5), out=tmp_path)
    with pytest.raises(CheckpointError, match="another configuration"):
        train(_model(), _loss, seeded_batches(_make, 2), _config(5, lr=5e-3), out=tmp_path)
    other = build_toy(seed=0, d_vocab=20, n_ctx=10, d_model=32, n_layers=1, n_heads=2)
    with pytest.raises(CheckpointError, match="d_model"):
        train(other, _loss, seeded_batches(_make, 1), _config(5), out=tmp_path)


def test_shuffled_batches_cover_each_epoch_once() -> None:
    data = torch.arange(12)
    batches = shuffled_batches(data, batch_size=4, seed=0)
    epoch = torch.cat([batches(s)[0] for s in range(3)])
    assert sorted(epoch.tolist()) == list(range(12))
    assert torch.equal(batches(4)[0], shuffled_batches(data, batch_size=4, seed=0)(4)[0])


@pytest.mark.parametrize("kwargs", [{"steps": 0}, {"steps": 5, "lr": 0.0}, {"steps": 5, "betas": (0.9, 1.0)}])
def test_bad_training_config(kwargs: dict) -> None:
    with pytest.raises(LabConfigError):
        TrainConfig(**kwargs)
