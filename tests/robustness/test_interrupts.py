"""Interrupted training: Ctrl-C between steps, or a crash half-way through writing a checkpoint.

Either way the newest complete checkpoint stays intact, nothing half-written is taken for a
checkpoint, and resuming ends with the same weights, bit for bit, as a run never interrupted
(pytest turns warnings into errors, so these resumptions also skip no damaged checkpoint).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch

from circuitscope import sae as S  # noqa: N812
from circuitscope.sae import io as sae_io
from circuitscope.toy import checkpoint
from circuitscope.toy.checkpoint import checkpoint_steps_on_disk, load_model_weights
from tests.robustness.checkpoint_runs import (
    assert_same_sae,
    assert_same_weights,
    sae_store,
    sae_train,
    toy_loss,
    toy_train,
)

REAL_SAVE_FILE = safetensors.torch.save_file
REAL_JSON_DUMP = json.dump


def _half_written_save_file(fail: Any) -> Any:
    """A ``save_file`` that, when ``fail(tensors, metadata)``, writes half the file and then raises (a full disk)."""

    def save_file(tensors: dict[str, torch.Tensor], filename: str, metadata: dict[str, str] | None = None) -> None:
        REAL_SAVE_FILE(tensors, filename, metadata=metadata)
        if fail(tensors, metadata or {}):
            data = Path(filename).read_bytes()
            Path(filename).write_bytes(data[: len(data) // 2])
            raise OSError(28, "No space left on device")

    return save_file


# ------------------------------------------------------------------------------ toy trainer
def test_ctrl_c_in_a_toy_run_keeps_the_newest_checkpoint_and_resumes_bit_for_bit(tmp_path: Path) -> None:
    reference, expected = toy_train(20)
    steps = [0]

    def interrupted_at_12(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if steps[0] == 12:
            raise KeyboardInterrupt
        steps[0] += 1
        return toy_loss(model, batch)

    with pytest.raises(KeyboardInterrupt):
        toy_train(20, tmp_path, loss=interrupted_at_12)

    assert checkpoint_steps_on_disk(tmp_path, resumable=True) == [5, 10]
    assert set(load_model_weights(tmp_path, 10)) == set(reference.state_dict())
    model, resumed = toy_train(20, tmp_path)
    assert resumed.resumed_from == 10
    assert resumed.loss == expected.loss and resumed.metrics == expected.metrics
    assert_same_weights(reference, model)


@pytest.mark.parametrize("file", ["model.safetensors", "optimizer.safetensors", "state.json"])
def test_a_crash_while_writing_a_toy_checkpoint_keeps_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file: str
) -> None:
    reference, _ = toy_train(20)
    if file == "state.json":

        def dump(payload: Any, handle: Any, **kw: Any) -> None:
            if isinstance(payload, dict) and payload.get("step") == 10:
                handle.write(json.dumps(payload)[:40])
                raise OSError(28, "No space left on device")
            REAL_JSON_DUMP(payload, handle, **kw)

        monkeypatch.setattr(checkpoint.json, "dump", dump)
    else:
        weights = file == "model.safetensors"
        fail = lambda tensors, meta: meta.get("step") == "10" and weights == ("unembed.weight" in tensors)  # noqa: E731
        monkeypatch.setattr(checkpoint, "save_file", _half_written_save_file(fail))

    with pytest.raises(OSError, match="No space left"):
        toy_train(20, tmp_path)
    monkeypatch.undo()

    assert checkpoint_steps_on_disk(tmp_path) == [0, 5]  # the half-written step 10 is not a checkpoint
    assert not (tmp_path / "checkpoints" / "step_0000010").exists()
    assert not list((tmp_path / "checkpoints").rglob("*.tmp"))  # the half-written file itself was removed
    model, resumed = toy_train(20, tmp_path)
    assert resumed.resumed_from == 5
    assert_same_weights(reference, model)


# ------------------------------------------------------------------------------ SAE trainer
@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> S.ActivationStore:
    return sae_store(tmp_path_factory.mktemp("acts"))


@pytest.mark.slow
def test_ctrl_c_in_sae_training_keeps_the_newest_checkpoint_and_resumes_bit_for_bit(
    store: S.ActivationStore, tmp_path: Path
) -> None:
    full = sae_train(store, None)

    def interrupt_at_step_12(metrics: dict[str, float]) -> None:
        if metrics["step"] == 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sae_train(store, tmp_path, on_log=interrupt_at_step_12)

    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert checkpoints == ["step_00000005", "step_00000010"]
    assert json.loads((tmp_path / "checkpoints" / "step_00000010" / "trainer.json").read_text())["step"] == 10
    assert not (tmp_path / "cfg.json").exists()
    assert_same_sae(full, sae_train(store, tmp_path))


def test_a_crash_while_writing_an_sae_checkpoint_keeps_the_previous_one(
    store: S.ActivationStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = sae_train(store, None)
    written = []

    def second_checkpoint(tensors: dict[str, torch.Tensor], _meta: dict[str, str]) -> bool:
        written.append("trainer.last_fired" in tensors)
        return sum(written) == 2

    monkeypatch.setattr(sae_io, "save_file", _half_written_save_file(second_checkpoint))
    with pytest.raises(OSError, match="No space left"):
        sae_train(store, tmp_path)
    monkeypatch.undo()

    root = tmp_path / "checkpoints"
    assert (root / "step_00000005" / "trainer.json").is_file()
    assert not (root / "step_00000010").exists()  # only step_00000010.partial, which resume ignores
    assert not list(root.rglob("*.tmp"))
    assert_same_sae(full, sae_train(store, tmp_path))
