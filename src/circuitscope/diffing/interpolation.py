"""Weight interpolation: loss and activations along ``(1 - a) * theta_A + a * theta_B``, and cross-task linearity.

Cross-task linearity (Zhou et al. 2024): the features of the interpolated model are close to
the same interpolation of the two models' features, ``f_L((1 - a) theta_A + a theta_B) ≈
(1 - a) f_L(theta_A) + a f_L(theta_B)``. We report, per layer and ``a``, the mean cosine
similarity between the two sides over every token (1 = perfectly linear).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float

from circuitscope.diffing.pairing import check_same_architecture, check_same_tokenizer
from circuitscope.engine.loss import mean_loss
from circuitscope.progress import OnProgress, track

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["Interpolation", "interpolate", "interpolated_model"]


@torch.no_grad()
def interpolated_model(a: HookedModel, b: HookedModel) -> tuple[HookedModel, Callable[[float], None]]:
    """A fresh copy of A's architecture and a setter ``set_alpha(a)`` loading ``(1 - a) theta_A + a theta_B``."""
    from circuitscope.core.hooked_model import HookedModel

    check_same_architecture(a, b)
    hf = type(a.hf_model)(a.hf_model.config)
    hf.to(a.device)  # type: ignore[arg-type]
    hf.eval()
    model = HookedModel(hf, a.tokenizer, adapter=a.adapter)
    pa = dict(a.hf_model.named_parameters())
    pb = dict(b.hf_model.named_parameters())
    targets = dict(hf.named_parameters())
    if pa.keys() != pb.keys() or pa.keys() != targets.keys():
        from circuitscope.diffing.pairing import ModelMismatchError

        raise ModelMismatchError(
            "the models' parameters differ in names; interpolate two checkpoints of one architecture"
        )

    def set_alpha(alpha: float) -> None:
        with torch.no_grad():
            for name, p in targets.items():
                p.copy_(torch.lerp(pa[name].float(), pb[name].float().to(pa[name].device), alpha).to(p.dtype))

    return model, set_alpha


@dataclass(frozen=True)
class Interpolation:
    alphas: list[float]
    loss: Float[torch.Tensor, " alpha"]
    """Mean next-token loss of the interpolated model on the texts."""
    linearity: Float[torch.Tensor, "alpha layer"]
    """Mean cosine between f_L(interpolated weights) and the interpolation of the endpoint features."""
    loss_a: float
    loss_b: float

    @property
    def barrier(self) -> float:
        """Largest excess of the path's loss over the straight line between the endpoint losses."""
        line = torch.tensor([(1 - x) * self.loss_a + x * self.loss_b for x in self.alphas])
        return float((self.loss - line).max())

    def to_dict(self) -> dict[str, Any]:
        return {
            "alphas": self.alphas,
            "loss": self.loss.tolist(),
            "loss_a": self.loss_a,
            "loss_b": self.loss_b,
            "loss_barrier": self.barrier,
            "linearity": self.linearity.tolist(),
            "min_linearity": float(self.linearity.min()),
        }


@torch.no_grad()
def _layer_features(model: HookedModel, ids_list: list[torch.Tensor], names: list[str]) -> list[torch.Tensor]:
    per_name: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    for ids in ids_list:
        _, cache = model.run_with_cache(ids, names=names, stop_early=True)
        for n in names:
            per_name[n].append(cache[n][0].float().cpu())
    return [torch.cat(per_name[n]) for n in names]


@torch.no_grad()
def interpolate(
    a: HookedModel,
    b: HookedModel,
    texts: Sequence[str],
    alphas: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    hook: str = "hook_resid_post",
    max_tokens: int = 256,
    on_progress: OnProgress | None = None,
) -> Interpolation:
    """Loss and cross-task linearity of ``blocks.L.{hook}`` at each ``alpha`` (0 = A, 1 = B).

    Progress: stage ``"interpolating"``, one unit an ``alpha``.
    """
    check_same_tokenizer(a, b)
    if not texts:
        raise ValueError("give at least one text")
    names = [f"blocks.{i}.{hook}" for i in range(a.cfg.n_layers)]
    ids_list = [a.to_tokens(t, truncate=True)[:, :max_tokens] for t in texts]
    fa = _layer_features(a, ids_list, names)
    fb = _layer_features(b, ids_list, names)
    model, set_alpha = interpolated_model(a, b)
    losses, lin = [], []
    for alpha in track(list(alphas), "interpolating", on_progress):
        set_alpha(float(alpha))
        losses.append(mean_loss(model, list(texts)))
        fc = _layer_features(model, ids_list, names)
        row = []
        for x, ya, yb in zip(fc, fa, fb, strict=True):
            target = (1 - alpha) * ya + alpha * yb
            row.append(float(torch.nn.functional.cosine_similarity(x, target, dim=-1).mean()))
        lin.append(row)
    return Interpolation(
        alphas=[float(x) for x in alphas],
        loss=torch.tensor(losses),
        linearity=torch.tensor(lin),
        loss_a=mean_loss(a, list(texts)),
        loss_b=mean_loss(b, list(texts)),
    )
