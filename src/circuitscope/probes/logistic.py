"""Logistic-regression probes on activations, with held-out accuracy."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int

from circuitscope.errors import ShapeError
from circuitscope.probes.standardise import Standardisation

__all__ = ["LinearProbe", "split_indices", "train_probe"]


@dataclass(frozen=True)
class LinearProbe:
    """``p(y=1 | x) = sigmoid(((x - mean) / std) · weight + bias)``, fit on standardised features."""

    weight: Float[torch.Tensor, " d"]
    """Weights on standardised features."""
    bias: float
    mean: Float[torch.Tensor, " d"]
    """Feature means of the training set."""
    std: Float[torch.Tensor, " d"]
    """Feature standard deviations of the training set (floored at 1e-6); with ``mean``, a :class:`Standardisation`."""
    train_accuracy: float
    test_accuracy: float
    """Accuracy on the held-out split (NaN if none was held out)."""
    n_train: int
    n_test: int
    l2: float
    class_means: Float[torch.Tensor, "2 d"]
    """Mean activation of class 0 and class 1 (training set), in the raw space."""

    def logits(self, x: Float[torch.Tensor, "n d"]) -> Float[torch.Tensor, " n"]:
        if x.shape[-1] != self.weight.shape[0]:
            raise ShapeError(f"the probe takes {self.weight.shape[0]} features, got {x.shape[-1]}")
        return Standardisation(self.mean, self.std)(x) @ self.weight + self.bias

    def predict(self, x: Float[torch.Tensor, "n d"]) -> Int[torch.Tensor, " n"]:
        return (self.logits(x) > 0).long()

    def accuracy(self, x: Float[torch.Tensor, "n d"], y: Int[torch.Tensor, " n"]) -> float:
        return float((self.predict(x) == y.long()).float().mean())

    @property
    def direction(self) -> Float[torch.Tensor, " d"]:
        """The weight vector in the raw activation space (``weight / std``), unit length."""
        w = self.weight / self.std
        return w / w.norm().clamp_min(1e-12)


def split_indices(
    n: int,
    test_fraction: float,
    seed: int,
    labels: torch.Tensor | None = None,
    groups: Sequence[Hashable] | None = None,
) -> tuple[list, list]:
    """A seeded train/test split, stratified by label when given.

    With ``groups`` (one key per item, e.g. the pair id shared by a true statement and its false
    twin), whole groups go to one side, so no group is seen in training and tested on; groups are
    then drawn in a seeded order until the test side holds ``test_fraction`` of the items.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    g = torch.Generator().manual_seed(seed)
    if groups is not None:
        if len(groups) != n:
            raise ValueError(f"{len(groups)} group keys for {n} items")
        members: dict[Hashable, list[int]] = {}
        for i, key in enumerate(groups):
            members.setdefault(key, []).append(i)
        keys = list(members)
        order = torch.randperm(len(keys), generator=g).tolist()
        want = round(n * test_fraction)
        test_set: set[int] = set()
        for j in order:
            if len(test_set) >= want:
                break
            test_set.update(members[keys[j]])
        return sorted(set(range(n)) - test_set), sorted(test_set)
    strata = [torch.arange(n)] if labels is None else [torch.nonzero(labels == c)[:, 0] for c in labels.unique()]
    train: list[int] = []
    test: list[int] = []
    for idx in strata:
        perm = idx[torch.randperm(len(idx), generator=g)].tolist()
        k = round(len(perm) * test_fraction)
        test += perm[:k]
        train += perm[k:]
    return sorted(train), sorted(test)


def train_probe(
    x: Float[torch.Tensor, "n d"],
    y: Int[torch.Tensor, " n"],
    *,
    l2: float = 1e-2,
    test_fraction: float = 0.25,
    seed: int = 0,
    max_iter: int = 200,
    groups: Sequence[Hashable] | None = None,
) -> LinearProbe:
    """Fit L2-regularised logistic regression (L-BFGS, full batch) on a stratified split; report held-out accuracy.

    ``groups`` keeps items that share a key on the same side of the split (see :func:`split_indices`).
    """
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ShapeError(f"expected x [n, d] and y [n], got {tuple(x.shape)} and {tuple(y.shape)}")
    y = y.long()
    if set(y.unique().tolist()) - {0, 1} or len(y.unique()) < 2:
        raise ValueError("labels must be 0 and 1, with both present")
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    train, test = split_indices(len(y), test_fraction, seed, y, groups)
    xf = x.float()
    xt, yt = xf[train], y[train].float()
    scale = Standardisation.fit(xt)
    z = scale(xt)
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, yt) + l2 * (w @ w) / 2
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    class_means = torch.stack([xt[yt == 0].mean(0), xt[yt == 1].mean(0)])
    probe = LinearProbe(
        weight=w.detach(),
        bias=float(b.detach()),
        mean=scale.mean,
        std=scale.std,
        train_accuracy=0.0,
        test_accuracy=float("nan"),
        n_train=len(train),
        n_test=len(test),
        l2=l2,
        class_means=class_means,
    )
    train_acc = probe.accuracy(xf[train], y[train])
    test_acc = probe.accuracy(xf[test], y[test]) if test else float("nan")
    return LinearProbe(**{**probe.__dict__, "train_accuracy": train_acc, "test_accuracy": test_acc})
