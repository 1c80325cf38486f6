"""The intervene view: zero- or mean-ablate heads and MLPs, or patch them from a second prompt, and compare.

Every intervention is a :class:`~circuitscope.analysis.ablation.Component` (a head's slice of ``attn.hook_z``, or
a layer's ``hook_mlp_out``) replaced by :func:`~circuitscope.analysis.ablation.ablation_values` through
:func:`~circuitscope.analysis.ablation.ablation_hooks`, the machinery behind :func:`~circuitscope.analysis.ablate`:

- ``zero``: the component is set to 0 at every position;
- ``mean``: to its mean over the prompt's own positions in the clean run (one vector for every position, taken
  without the other interventions);
- ``patch``: to its value, position by position, on ``source``, a second prompt of the same token count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import torch

from circuitscope.analysis.ablation import AblationMethod, Component, ablation_hooks, ablation_values
from circuitscope.core.capabilities import require_attention
from circuitscope.core.hooked_model import HookedModel
from circuitscope.serve.errors import ServeInputError
from circuitscope.serve.views._checks import answer_pair, check_head, check_layer, check_top_k, prompt_tokens
from circuitscope.serve.views.prompt import Prediction, predictions, prompt_task

__all__ = ["InterventionKind", "InterventionSpec", "InterventionTarget", "InterventionView", "intervene_view"]

InterventionKind = Literal["zero", "mean", "patch"]
"""How a component is replaced: by zero, by its mean over the prompt's positions, or by its value on ``source``."""
InterventionTarget = Literal["head", "mlp"]
"""What is replaced: one attention head's output (``attn.hook_z``) or a layer's MLP output (``hook_mlp_out``)."""

_METHOD: dict[str, AblationMethod] = {"zero": "zero", "mean": "mean", "patch": "resample"}
"""The library's ablation method for each kind: a patch resamples from its one source prompt."""
_FIELDS = ("kind", "component", "layer", "head", "source", "label")


@dataclass(frozen=True)
class InterventionSpec:
    """One intervention, as the page sends it."""

    kind: InterventionKind
    """``zero``, ``mean`` or ``patch``."""
    component: InterventionTarget
    """``head`` or ``mlp``."""
    layer: int
    """The layer (0-based)."""
    head: int | None = None
    """The head, for ``component="head"``; None for an MLP."""
    source: str | None = None
    """For ``patch``: the prompt whose activation is copied in (same token count as the prompt); else None."""

    def __post_init__(self) -> None:
        if self.kind not in get_args(InterventionKind):
            raise ServeInputError(
                f"unknown intervention kind {self.kind!r}; choose one of {get_args(InterventionKind)}"
            )
        if self.component not in get_args(InterventionTarget):
            raise ServeInputError(
                f"unknown intervention component {self.component!r}; choose one of {get_args(InterventionTarget)}"
            )
        if (self.head is None) != (self.component == "mlp"):
            raise ServeInputError(
                "a head intervention needs a head index and an MLP intervention none: "
                f"got component {self.component!r} with head {self.head!r}"
            )
        if (self.source is None) != (self.kind != "patch"):
            raise ServeInputError(
                "a patch needs a source prompt to copy the activation from, and zero and mean take none: "
                f"got kind {self.kind!r} with source {self.source!r:.40}"
            )

    @classmethod
    def from_json(cls, data: object, model: HookedModel) -> InterventionSpec:
        """A spec from the page's JSON object, its layer and head checked against ``model``."""
        if not isinstance(data, Mapping):
            raise ServeInputError(f"an intervention is a JSON object with fields {_FIELDS[:5]}, got {data!r:.60}")
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise ServeInputError(f"unknown intervention fields {unknown}; an intervention has {list(_FIELDS[:5])}")
        missing = [name for name in ("kind", "component", "layer") if name not in data]
        if missing:
            raise ServeInputError(f"the intervention {dict(data)!r:.80} lacks {missing}: give kind, component, layer")
        spec = cls(data["kind"], data["component"], data["layer"], data.get("head"), data.get("source"))
        spec.check(model)
        return spec

    def check(self, model: HookedModel) -> None:
        """Refuse a layer or head outside ``model``, or a head of a layer without attention."""
        check_layer(model, self.layer)
        if self.head is not None:
            check_head(model, self.head)
            require_attention(model.cfg, f"intervening on head L{self.layer}H{self.head}", [self.layer])
        if self.source is not None and not isinstance(self.source, str):
            raise ServeInputError(f"a patch source is a prompt (text), got {type(self.source).__name__}")

    @property
    def label(self) -> str:
        """``L3H1 zero``, ``L5 MLP patch``."""
        where = f"L{self.layer}H{self.head}" if self.head is not None else f"L{self.layer} MLP"
        return f"{where} {self.kind}"

    @property
    def target(self) -> Component:
        """The library component it replaces."""
        if self.head is not None:
            return Component(f"blocks.{self.layer}.attn.hook_z", (self.head,))
        return Component(f"blocks.{self.layer}.hook_mlp_out")

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"label": self.label}


@dataclass(frozen=True)
class InterventionView:
    """The predictions with and without the interventions."""

    interventions: list[InterventionSpec]
    """What was applied, together, in this order."""
    predictions: list[Prediction]
    """The top next tokens with the interventions."""
    clean_predictions: list[Prediction]
    """The top next tokens without them."""
    logit_diff: float | None
    """Answer minus wrong logit with the interventions (None without an answer pair)."""
    clean_logit_diff: float | None
    """The same without them."""

    def to_json(self) -> dict[str, Any]:
        return {
            "interventions": [s.to_json() for s in self.interventions],
            "predictions": [p.to_json() for p in self.predictions],
            "clean_predictions": [p.to_json() for p in self.clean_predictions],
            "logit_diff": self.logit_diff,
            "clean_logit_diff": self.clean_logit_diff,
        }


def _source_tokens(model: HookedModel, spec: InterventionSpec, tokens: torch.Tensor) -> torch.Tensor | None:
    """The patch source's tokens (None for zero and mean), of the prompt's token count."""
    if spec.source is None:
        return None
    source = prompt_tokens(model, spec.source, f"patch source of {spec.label}")
    if source.shape != tokens.shape:
        raise ServeInputError(
            f"the patch source of {spec.label} is {source.shape[1]} tokens long and the prompt {tokens.shape[1]}: "
            f"patching copies position by position, so make them the same length ({model.to_str_tokens(source[0])})"
        )
    return source


@torch.no_grad()
def intervene_view(
    model: HookedModel,
    prompt: str,
    specs: Sequence[InterventionSpec],
    *,
    answer: str | None = None,
    wrong: str | None = None,
    top_k: int = 10,
) -> InterventionView:
    """The prompt's ``top_k`` predictions (and the answer pair's logit difference) with ``specs`` applied together,
    beside the clean run's."""
    tokens = prompt_tokens(model, prompt)
    pair = answer_pair(model, answer, wrong)
    top_k = check_top_k(top_k)
    if not specs:
        raise ServeInputError("no interventions given: click a head or an MLP to add one")
    for spec in specs:
        spec.check(model)
    sources = [_source_tokens(model, spec, tokens) for spec in specs]
    task = prompt_task(prompt, tokens, pair or (0, 0))  # the values need only the prompt's length and tokens
    hooks = []
    for spec, source in zip(specs, sources, strict=True):
        reference = tokens if source is None else source
        values = ablation_values(
            model, task, [spec.target], _METHOD[spec.kind], reference=reference, per_position=False
        )
        hooks += ablation_hooks([spec.target], values)
    clean = model(tokens)[0, -1].float()
    intervened = model.run_with_hooks(tokens, fwd_hooks=hooks)[0, -1].float()

    def diff(logits: torch.Tensor) -> float | None:
        return None if pair is None else float(logits[pair[0]] - logits[pair[1]])

    return InterventionView(
        list(specs),
        predictions(model, intervened, top_k),
        predictions(model, clean, top_k),
        diff(intervened),
        diff(clean),
    )
