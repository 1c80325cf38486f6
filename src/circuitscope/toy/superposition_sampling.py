"""The superposition toy's features: each uniform on [0, 1), present (non-zero) with its probability.

One uniform ``u`` per entry gives presence and value: ``max(0, 1 - u / p)`` is non-zero exactly when
``u < p`` (probability ``p``) and, given that, uniform on (0, 1]. The draws come from numpy's SFC64 bit
generator (about twice as fast as ``torch.rand`` on a CPU), one generator per instance spawned from the
seed, so an instance's features do not depend on how many other instances train beside it, nor on how
the instances are grouped into chunks or spread over threads. The layout is [instance, feature, batch]:
the batch is the contiguous axis, so the batched matrix products of training read it without a copy.
"""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float

__all__ = ["instance_generators", "sample_features"]


def instance_generators(seed: int, n_instances: int) -> list[np.random.Generator]:
    """One SFC64 generator per instance, spawned from ``seed`` (independent streams)."""
    return [np.random.Generator(np.random.SFC64(s)) for s in np.random.SeedSequence(seed).spawn(n_instances)]


def sample_features(
    generators: list[np.random.Generator],
    batch: int,
    probability: Float[torch.Tensor, "instance feature"],
    out: Float[torch.Tensor, "instance feature batch"] | None = None,
) -> Float[torch.Tensor, "instance feature batch"]:
    """A batch of features per instance, instance i drawn from ``generators[i]``.

    A single instance with one probability for all its features (each chunk of the lab's largest experiment)
    is transformed by scalar operations, others by the column of probabilities broadcast along the batch.
    ``out``: a contiguous float32 tensor of the result's shape to write into (reused between steps).
    """
    n_instances, n_features = probability.shape
    if len(generators) != n_instances:
        raise ValueError(f"{len(generators)} generators for {n_instances} instances")
    if out is None:
        out = torch.empty(n_instances, n_features, batch)
    for generator, rows in zip(generators, out.numpy(), strict=True):
        generator.random(out=rows, dtype=np.float32)
    if n_instances == 1 and bool((probability == probability[0, 0]).all()):  # 1 - u / p in one pass
        torch.add(out.new_ones(()), out, alpha=-1.0 / float(probability[0, 0]), out=out)
    else:  # a binary operation broadcasts a column fast (addcmul's three operands do not)
        out.mul_((-1.0 / probability)[:, :, None]).add_(1.0)
    return out.relu_()
