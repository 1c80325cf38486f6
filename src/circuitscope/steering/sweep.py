"""Layer x coefficient sweeps of a steering vector: its effect on a target metric and the damage it does."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float

from circuitscope.core.hook_points import HookFn
from circuitscope.engine.grid import ScoreGrid
from circuitscope.engine.loss import mean_loss
from circuitscope.progress import SILENT, OnProgress, track
from circuitscope.steering.apply import steering_hooks
from circuitscope.steering.vector import SteeringVector

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel
    from circuitscope.probes.logistic import LinearProbe

__all__ = [
    "EffectFn",
    "SteeringSweep",
    "SweepCell",
    "probe_score_of_generations",
    "steering_sweep",
    "target_logprob",
]

Hooks = list[tuple[str, HookFn]]
EffectFn = Callable[["HookedModel", Hooks], float]
"""``effect(model, hooks) -> float``: a number measured with the steering hooks applied where it chooses."""


def _tokens_of(model: HookedModel, words: Sequence[str]) -> list[int]:
    return [model.to_single_token(w) for w in words]


def target_logprob(prompts: Sequence[str], targets: Sequence[str]) -> EffectFn:
    """Mean over prompts of ``log P(next token is one of targets)`` (each target a single token, e.g. " love")."""
    if not prompts or not targets:
        raise ValueError("target_logprob needs at least one prompt and one target word")

    @torch.no_grad()
    def effect(model: HookedModel, hooks: Hooks) -> float:
        ids, mask = model.tok.to_tokens(list(prompts))
        last = mask.sum(1) - 1
        logits = model.run_with_hooks(ids, hooks, attention_mask=mask if not bool(mask.all()) else None)
        logp = logits[torch.arange(ids.shape[0]), last.to(logits.device)].float().log_softmax(-1)
        tok = torch.tensor(_tokens_of(model, targets), device=logp.device)
        return float(logp[:, tok].logsumexp(-1).mean())

    effect.__qualname__ = f"log P({'|'.join(targets)})"
    return effect


def probe_score_of_generations(
    prompts: Sequence[str], probe: LinearProbe, hook: str, max_new_tokens: int = 20
) -> EffectFn:
    """Generate from each prompt with steering, then read the probe (unsteered) on the generated text.

    Returns the mean probe probability of class 1 over the prompts, at the last token of prompt + continuation.
    """
    from circuitscope.probes.activations import activations_at_position

    @torch.no_grad()
    def effect(model: HookedModel, hooks: Hooks) -> float:
        texts = [p + model.generate(p, max_new_tokens, hooks=hooks).text for p in prompts]
        acts = activations_at_position(model, texts, hook, -1, on_progress=SILENT)[hook]
        return float(torch.sigmoid(probe.logits(acts)).mean())

    effect.__qualname__ = f"probe P(class 1) on generations at {hook}"
    return effect


@dataclass(frozen=True)
class SweepCell:
    """One layer x coefficient cell of a sweep: its effect change and the damage it does."""

    layer: int
    coefficient: float
    effect_change: float
    """The effect metric with steering minus without."""
    damage: float
    """Mean loss on neutral text with steering minus without (nats per token)."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True)
class SteeringSweep(ScoreGrid):
    """Effect and damage of one vector recipe over layers x coefficients.

    A score grid on the axes ``("layer", "coefficient")``: ``scores`` is the effect with steering
    (also ``effect``), ``metric`` its name (``effect_name``), ``clean_value`` the effect without
    steering (``baseline_effect``); there is no corrupted run.
    """

    layers: list[int]
    coefficients: list[float]
    damage: Float[torch.Tensor, "layer coeff"]
    """Mean loss on neutral text with steering minus without (nats per token)."""
    baseline_loss: float
    """Mean loss on the neutral text without steering."""
    hooks: list[str]
    """The hook used at each layer."""

    @property
    def effect(self) -> Float[torch.Tensor, "layer coeff"]:
        """The effect metric with steering (same units as ``baseline_effect``)."""
        return self.scores

    @property
    def baseline_effect(self) -> float:
        """The effect metric without steering."""
        assert self.clean_value is not None  # set by steering_sweep: the unsteered run
        return self.clean_value

    @property
    def effect_name(self) -> str:
        return self.metric

    @property
    def effect_change(self) -> Float[torch.Tensor, "layer coeff"]:
        return self.effect - self.baseline_effect

    def best(self, max_damage: float = 0.5) -> SweepCell | None:
        """The cell with the largest effect change whose damage stays under ``max_damage`` nats/token."""
        ok = self.damage <= max_damage
        if not bool(ok.any()):
            return None
        masked = torch.where(ok, self.effect_change, torch.tensor(-torch.inf))
        li, ci = divmod(int(masked.argmax()), len(self.coefficients))
        return SweepCell(
            self.layers[li], self.coefficients[ci], float(self.effect_change[li, ci]), float(self.damage[li, ci])
        )

    def to_dict(self) -> dict[str, Any]:
        best = self.best(0.5)
        return {
            "layers": self.layers,
            "coefficients": self.coefficients,
            "effect_name": self.effect_name,
            "baseline_effect": self.baseline_effect,
            "baseline_loss": self.baseline_loss,
            "effect": self.effect.tolist(),
            "effect_change": self.effect_change.tolist(),
            "damage": self.damage.tolist(),
            "best_under_0.5_nats_damage": best.to_json() if best else None,
        }


def steering_sweep(
    model: HookedModel,
    make_vector: Callable[[int], SteeringVector],
    layers: Sequence[int],
    coefficients: Sequence[float],
    effect: EffectFn,
    neutral_texts: Sequence[str],
    *,
    on_progress: OnProgress | None = None,
) -> SteeringSweep:
    """For each layer build the vector with ``make_vector(layer)``; for each coefficient measure effect and damage.

    The vector recipe (ActAdd prompts, CAA pairs, ...) stays fixed; only the layer it is read
    and written at and its coefficient change, which answers "at which layers does this
    intervention stop working, and what does it cost?". Progress: stage ``"steering sweep"``, one unit
    a layer x coefficient cell (``on_progress`` as in :func:`circuitscope.progress.track`).
    """
    if not layers or not coefficients:
        raise ValueError("give at least one layer and one coefficient")
    for layer in layers:
        model.check_layer_head(layer)
    if not neutral_texts:
        raise ValueError("give neutral texts to measure the damage on")
    cells = [(li, ci) for li in range(len(layers)) for ci in range(len(coefficients))]
    base_effect = effect(model, [])
    base_loss = mean_loss(model, neutral_texts)
    eff = torch.zeros(len(layers), len(coefficients))
    dmg = torch.zeros(len(layers), len(coefficients))
    hooks_used: list[str] = []
    vectors: dict[int, SteeringVector] = {}
    for li, ci in track(cells, "steering sweep", on_progress):
        if li not in vectors:
            vectors[li] = make_vector(layers[li])
            hooks_used.append(vectors[li].hook)
        v = vectors[li].with_(coefficient=float(coefficients[ci]))
        hooks = steering_hooks(v, model)
        eff[li, ci] = effect(model, hooks)
        dmg[li, ci] = mean_loss(model, neutral_texts, hooks) - base_loss
    coefs = [float(c) for c in coefficients]
    return SteeringSweep(
        scores=eff,
        axes=("layer", "coefficient"),
        labels={"layer": [str(layer) for layer in layers], "coefficient": [f"{c:g}" for c in coefs]},
        metric=getattr(effect, "__qualname__", "effect"),
        clean_value=base_effect,
        corrupted_value=None,
        layers=list(layers),
        coefficients=coefs,
        damage=dmg,
        baseline_loss=base_loss,
        hooks=hooks_used,
    )
