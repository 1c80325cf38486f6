"""Tiny resumable training runs shared by the damaged-file and interruption tests (toy trainer and SAE trainer)."""

from __future__ import annotations

from pathlib import Path

import torch

from circuitscope import sae as S  # noqa: N812
from circuitscope.toy.model import build_toy
from circuitscope.toy.trainer import LossFn, TrainConfig, TrainResult, seeded_batches, train
from tests.sae.conftest import synthetic

METRICS = {"unembed_norm": lambda m: m.unembed.weight.norm()}


def _make(g: torch.Generator) -> tuple[torch.Tensor, ...]:
    return (torch.randint(0, 20, (8, 10), generator=g),)


def toy_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return model(batch[0], labels=batch[0]).loss


def toy_train(steps: int, out: Path | None = None, loss: LossFn = toy_loss) -> tuple[torch.nn.Module, TrainResult]:
    """A fresh model (as in a new process) trained for ``steps``, checkpointing every 5 steps into ``out``."""
    model = build_toy(seed=0, d_vocab=20, n_ctx=10, d_model=16, n_layers=1, n_heads=2)
    config = TrainConfig(steps=steps, checkpoint_every=5, warmup_steps=3, weight_decay=0.1, seed=1, threads=1)
    return model, train(model, loss, seeded_batches(_make, 1), config, out=out, metrics=METRICS)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    """Bit for bit: every tensor of the state dicts equal."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name, value in sa.items():
        assert torch.equal(value, sb[name]), name


def sae_store(folder: Path) -> S.ActivationStore:
    syn = synthetic(n=4096, d=12, n_features=16, bias=0.5)
    return S.write_store(syn.data, folder, tokens_per_shard=1024)


def sae_config() -> S.TrainConfig:
    """24 steps of 256 activations, a checkpoint every 5 steps."""
    return S.TrainConfig(
        architecture="topk", d_sae=32, k=3, tokens=256 * 24, batch_size=256, lr=2e-3, warmup_steps=4,
        sparsity_warmup_steps=5, log_every=4, dead_after_tokens=256 * 3, shards_in_memory=2, checkpoint_every=5,
    )  # fmt: skip


def sae_train(store: S.ActivationStore, out: Path | None, **kw: object) -> S.TrainResult:
    return S.train_sae(store, sae_config(), out=out, progress_bar=False, **kw)  # type: ignore[arg-type]  # keyword options passed through as **kw: object


def assert_same_sae(a: S.TrainResult, b: S.TrainResult) -> None:
    for name, value in a.sae.state_dict().items():
        assert torch.equal(value, b.sae.state_dict()[name]), name
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes (to show that nothing was changed)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
