"""Probe accuracy by layer: supervised logistic probes and CCS, on cached activations."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float

from circuitscope.probes.activations import Position, activations_at_position
from circuitscope.probes.ccs import train_ccs
from circuitscope.probes.logistic import LinearProbe, split_indices, train_probe
from circuitscope.progress import OnProgress

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["CCSSweep", "ProbeSweep", "ccs_sweep", "probe_sweep"]


@dataclass(frozen=True)
class ProbeSweep:
    """One logistic probe per hook, with train and held-out accuracy."""

    hooks: list[str]
    train_accuracy: Float[torch.Tensor, " hook"]
    test_accuracy: Float[torch.Tensor, " hook"]
    probes: list[LinearProbe]
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "hooks": self.hooks,
            "train_accuracy": self.train_accuracy.tolist(),
            "test_accuracy": self.test_accuracy.tolist(),
            "n": self.n,
            "best_hook": self.hooks[int(self.test_accuracy.argmax())],
            "best_test_accuracy": float(self.test_accuracy.max()),
        }


@dataclass(frozen=True)
class CCSSweep:
    """One CCS probe per hook; accuracy on a held-out split (up to sign, decided on the training split)."""

    hooks: list[str]
    test_accuracy: Float[torch.Tensor, " hook"]
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"hooks": self.hooks, "test_accuracy": self.test_accuracy.tolist(), "n": self.n}


def probe_sweep(
    model: HookedModel,
    texts: Sequence[str],
    labels: Sequence[int],
    hooks: Sequence[str],
    *,
    position: Position = -1,
    test_fraction: float = 0.25,
    l2: float = 1e-2,
    seed: int = 0,
    groups: Sequence[Hashable] | None = None,
    on_progress: OnProgress | None = None,
) -> ProbeSweep:
    """Cache ``hooks`` at ``position`` for every text (one pass), fit a probe per hook, report accuracy.

    ``groups``: one key per text; texts sharing a key (a statement and its false twin, say) stay on
    the same side of the train/test split. Progress: the caching, one unit a batch of texts.
    """
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    stage = f"caching {len(hooks)} activations of {len(texts)} texts"
    acts = activations_at_position(model, texts, list(hooks), position, stage=stage, on_progress=on_progress)
    y = torch.tensor(list(labels))
    probes = [train_probe(acts[h], y, l2=l2, test_fraction=test_fraction, seed=seed, groups=groups) for h in hooks]
    return ProbeSweep(
        hooks=list(hooks),
        train_accuracy=torch.tensor([p.train_accuracy for p in probes]),
        test_accuracy=torch.tensor([p.test_accuracy for p in probes]),
        probes=probes,
        n=len(texts),
    )


def ccs_sweep(
    model: HookedModel,
    positive: Sequence[str],
    negative: Sequence[str],
    labels: Sequence[int],
    hooks: Sequence[str],
    *,
    position: Position = -1,
    test_fraction: float = 0.25,
    seed: int = 0,
    n_tries: int = 5,
    epochs: int = 500,
    groups: Sequence[Hashable] | None = None,
    on_progress: OnProgress | None = None,
) -> CCSSweep:
    """CCS per hook; labels are used only to score it (and to fix its sign on the training split).

    Progress: the caching of the positive, then of the negative texts, one unit a batch.
    """
    if not len(positive) == len(negative) == len(labels):
        raise ValueError("positive, negative and labels must have the same length")
    stage = f"caching {len(hooks)} activations of {2 * len(positive)} texts"
    pos = activations_at_position(model, positive, list(hooks), position, stage=stage, on_progress=on_progress)
    neg = activations_at_position(model, negative, list(hooks), position, stage=stage, on_progress=on_progress)
    y = torch.tensor(list(labels))
    train, test = split_indices(len(y), test_fraction, seed, y, groups)
    accs = []
    for h in hooks:
        ccs = train_ccs(pos[h][train], neg[h][train], n_tries=n_tries, epochs=epochs, seed=seed)
        sign_ok = float(((ccs.credence(pos[h][train], neg[h][train]) > 0.5).long() == y[train]).float().mean()) >= 0.5
        pred = (ccs.credence(pos[h][test], neg[h][test]) > 0.5).long()
        if not sign_ok:
            pred = 1 - pred
        accs.append(float((pred == y[test]).float().mean()))
    return CCSSweep(list(hooks), torch.tensor(accs), len(y))
