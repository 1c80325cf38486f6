"""Trainer: exact resumption, schedules, checkpoints, and DDP equal to single-process training."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from circuitscope import sae as S  # noqa: N812
from tests.sae.conftest import synthetic


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> S.ActivationStore:
    syn = synthetic(n=8192, d=12, n_features=16, bias=0.5)
    return S.write_store(syn.data, tmp_path_factory.mktemp("acts"), tokens_per_shard=1024)


def _cfg(arch: str = "topk", **kw: object) -> S.TrainConfig:
    base: dict[str, object] = dict(
        architecture=arch, d_sae=32, k=3, tokens=256 * 24, batch_size=256, lr=2e-3, warmup_steps=4,
        sparsity_warmup_steps=5, log_every=4, dead_after_tokens=256 * 3, shards_in_memory=3,
    )  # fmt: skip
    base.update(kw)
    return S.TrainConfig(**base)  # type: ignore[arg-type]  # config fields passed through as a dict of objects


@pytest.mark.parametrize("arch", ["topk", "relu", "jumprelu", "batchtopk"])
def test_interrupted_run_resumes_bit_for_bit(arch: str, store: S.ActivationStore, tmp_path: Path) -> None:
    cfg = _cfg(arch, checkpoint_every=5)
    full = S.train_sae(store, cfg, out=tmp_path / "full", progress_bar=False)
    S.train_sae(store, cfg, out=tmp_path / "cut", stop_after_steps=9, progress_bar=False)
    assert (tmp_path / "cut" / "checkpoints" / "step_00000009" / "trainer.json").is_file()
    assert not (tmp_path / "cut" / "cfg.json").exists()  # no final SAE until the run is complete
    resumed = S.train_sae(store, cfg, out=tmp_path / "cut", progress_bar=False)
    for name, value in full.sae.state_dict().items():
        assert torch.equal(value, resumed.sae.state_dict()[name]), name
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    assert S.load_sae(tmp_path / "cut").cfg.d_sae == 32


def test_resuming_with_other_settings_is_refused(store: S.ActivationStore, tmp_path: Path) -> None:
    S.train_sae(store, _cfg(), out=tmp_path, stop_after_steps=3, progress_bar=False)
    with pytest.raises(S.SAEConfigError, match="lr"):
        S.train_sae(store, _cfg(lr=1e-3), out=tmp_path, progress_bar=False)


def test_schedules() -> None:
    cfg = _cfg(tokens=256 * 100, warmup_steps=10, decay_fraction=0.2, sparsity_coefficient=2.0, sparsity_warmup_steps=4)
    assert cfg.lr_at(0) == pytest.approx(cfg.lr / 10)
    assert cfg.lr_at(50) == pytest.approx(cfg.lr)
    assert cfg.lr_at(90) == pytest.approx(cfg.lr * 0.5)
    assert cfg.sparsity_at(0) == pytest.approx(0.5) and cfg.sparsity_at(10) == pytest.approx(2.0)
    with pytest.raises(S.SAEConfigError, match="batch_size"):
        S.TrainConfig(batch_size=0)


def test_dead_latents_are_tracked_and_revived_by_auxk(store: S.ActivationStore) -> None:
    result = S.train_sae(store, _cfg(d_sae=64, tokens=256 * 40), progress_bar=False)
    assert all("dead_fraction" in h for h in result.history)
    assert result.history[-1]["aux"] >= 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ddp_worker(rank: int, world: int, port: int, folder: str, out: str, cfg: S.TrainConfig) -> None:
    os.environ.update(
        {"RANK": str(rank), "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    )
    torch.set_num_threads(1)
    S.train_sae(S.ActivationStore(folder), cfg, out=out, progress_bar=False)


@pytest.mark.slow
def test_ddp_on_two_processes_equals_single_process(store: S.ActivationStore, tmp_path: Path) -> None:
    cfg = _cfg("topk", tokens=256 * 12, dead_after_tokens=10**9)
    single = S.train_sae(store, cfg, progress_bar=False)
    mp.start_processes(
        _ddp_worker,
        args=(2, _free_port(), str(store.folder), str(tmp_path), cfg),
        nprocs=2,
        start_method="spawn",
    )
    ddp = S.load_sae(tmp_path)
    for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
        # gradients all-reduced over ranks vs one process: summed in another order, compounded over the steps
        torch.testing.assert_close(getattr(ddp, name), getattr(single.sae, name), atol=2e-5, rtol=1e-4)
    meta = json.loads((tmp_path / "checkpoints" / "step_00000012" / "trainer.json").read_text())
    assert meta["step"] == 12


def test_resuming_a_run_of_another_hook_or_model_is_refused(store: S.ActivationStore, tmp_path: Path) -> None:
    S.train_sae(store, _cfg(), out=tmp_path / "run", stop_after_steps=3, progress_bar=False)
    other = S.write_store(
        store.sample(4096), tmp_path / "other", hook="blocks.3.hook_resid_post", tokens_per_shard=1024
    )
    before = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    with pytest.raises(
        S.SAEConfigError, match=r"another model or hook.*hook='external', not 'blocks\.3\.hook_resid_post'"
    ):
        S.train_sae(other, _cfg(), out=tmp_path / "run", progress_bar=False)
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == before
