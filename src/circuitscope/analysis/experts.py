"""Expert-level analyses of mixture-of-experts models: DLA and ablation per expert, routing statistics.

- :func:`expert_dla`: each chosen expert's weighted output (``weight * mlp.hook_expert_out``) at the answer
  position, pushed through the final norm with its scale frozen (as :func:`direct_logit_attribution` does)
  and projected on the answer direction ``W_U[:, correct] - W_U[:, incorrect]``. Per layer the experts plus
  the shared expert add up to that layer's MLP contribution.
- :func:`expert_ablation_scan`: the task metric with each expert of each MoE layer ablated alone
  (:class:`~circuitscope.interventions.experts.ExpertAblation`, ``zero`` or ``drop``).
- :func:`routing_statistics`: over a corpus, per MoE layer, how often each expert is chosen (counts and
  fractions of the ``n_tokens * k`` choices), the load balance (entropy of those fractions), and the tokens
  that choose each expert with the highest router probability (``softmax`` of the router logits over every
  expert, whatever the family's own top-k rule).
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int

from circuitscope.core.hooked_model import HookedModel
from circuitscope.core.moe import expert_layout
from circuitscope.engine.grid import MetricGrid
from circuitscope.errors import OptionError, UnsupportedAnalysisError
from circuitscope.interventions.experts import AblationMode, ExpertAblation
from circuitscope.progress import OnProgress
from circuitscope.tasks.metrics import MetricName, evaluate_metric
from circuitscope.tasks.task import Task

__all__ = [
    "ExpertAblationScan",
    "ExpertDLA",
    "ExpertTopToken",
    "LayerRouting",
    "RoutingStats",
    "expert_ablation_scan",
    "expert_dla",
    "routing_statistics",
]


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, tuple):
        return list(value)
    return value


@dataclass(frozen=True)
class ExpertDLA:
    """Mean direct contributions to the logit difference at the answer positions, per expert."""

    layers: tuple[int, ...]
    """The MoE layers (the rows below)."""
    experts: Float[torch.Tensor, "layer expert"]
    """Each expert's weighted output along the answer direction (0 for a prompt that did not choose it),
    times the family's residual multiplier if it has one (GraniteMoE)."""
    shared: Float[torch.Tensor, " layer"]
    """The shared expert's contribution (zeros for a family without one)."""
    mlp: Float[torch.Tensor, " layer"]
    """The layer's MLP output (``hook_mlp_out``): ``experts.sum(1) + shared``, up to float32 rounding."""
    chosen: Int[torch.Tensor, "layer expert"]
    """How many prompts chose each expert at their answer position."""

    def to_json(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


@torch.no_grad()
def expert_dla(model: HookedModel, task: Task) -> ExpertDLA:
    """Direct logit attribution of every expert of every MoE layer, on the task's clean prompts."""
    layout = expert_layout(model)
    wiring = model.wiring
    if wiring.final_norm is None or wiring.unembed is None or model.cfg.residual == "post_norm":
        raise UnsupportedAnalysisError(
            f"expert DLA needs a pre-norm LM with an unembedding ({model.cfg.family} has none)"
        )
    n, rows, pos = model.cfg.n_layers, torch.arange(len(task)), task.answer_pos
    wanted = {f"blocks.{n - 1}.hook_resid_post"}
    for layer in layout.layers:
        wanted |= {f"blocks.{layer}.{name}" for name in ("hook_mlp_out", "mlp.hook_expert_out")}
        wanted |= {f"blocks.{layer}.mlp.hook_expert_{name}" for name in ("weights", "indices")}
        if layout.shared_expert:
            wanted.add(f"blocks.{layer}.mlp.hook_shared_expert_out")
    _, cache = model.run_with_cache(task.clean_tokens, names=sorted(wanted))
    final_norm = wiring.frozen(wiring.final_norm)
    scale = final_norm.scale(cache["resid_post", n - 1][rows, pos])  # [batch 1]
    direction = (model.W_U[:, task.correct] - model.W_U[:, task.incorrect]).T.float()  # [batch d_model]

    def attribute(x: torch.Tensor) -> torch.Tensor:
        """x: [batch, ..., d_model] at the answer positions -> each part's contribution [batch, ...]."""
        s = scale.view(len(task), *[1] * (x.ndim - 2), 1)
        d = direction.view(len(task), *[1] * (x.ndim - 2), -1)
        return (final_norm.apply(x, s).float() * d).sum(-1)

    k_res = model.cfg.residual_multiplier  # what the stream gets is the MoE output times it (GraniteMoE)
    experts, shared, mlp, chosen = [], [], [], []
    for layer in layout.layers:
        pre = f"blocks.{layer}.mlp."
        weights = cache[pre + "hook_expert_weights"][rows, pos]  # [batch k]
        index = cache[pre + "hook_expert_indices"][rows, pos]  # [batch k]
        outs = cache[pre + "hook_expert_out"][rows, pos]  # [batch k d_model]
        per_slot = attribute(outs * weights[..., None].to(outs.dtype) * k_res)  # [batch k]
        per_expert = torch.zeros(len(task), layout.n_experts).scatter_add_(1, index, per_slot)
        experts.append(per_expert.mean(0))
        chosen.append(torch.bincount(index.flatten(), minlength=layout.n_experts))
        mlp.append(attribute(cache["mlp_out", layer][rows, pos]).mean(0))
        if layout.shared_expert:
            shared.append(attribute(cache[pre + "hook_shared_expert_out"][rows, pos] * k_res).mean(0))
        else:
            shared.append(torch.zeros(()))
    return ExpertDLA(layout.layers, torch.stack(experts), torch.stack(shared), torch.stack(mlp), torch.stack(chosen))


@dataclass(frozen=True, kw_only=True)
class ExpertAblationScan(MetricGrid):
    """The metric with each expert ablated alone: ``raw`` [layer, expert] the mean metric so ablated, ``scores``
    (and ``change``) that minus the clean run's. The ``layer`` axis holds the MoE layers (``labels["layer"]``)."""

    mode: AblationMode
    """``zero`` (its weight set to 0) or ``drop`` (re-routed to the next-best expert)."""


@torch.no_grad()
def expert_ablation_scan(
    model: HookedModel,
    task: Task,
    mode: AblationMode = "zero",
    *,
    metric: MetricName | None = None,
    on_progress: OnProgress | None = None,
) -> ExpertAblationScan:
    """Ablate every expert of every MoE layer on its own and measure the task metric (one pass each)."""
    layout = expert_layout(model)
    metric = metric or task.metric
    rows = torch.arange(len(task))

    def measure(logits: torch.Tensor, clean: torch.Tensor | None) -> float:
        at = logits[rows, task.answer_pos]
        return float(evaluate_metric(metric, at, task.correct, task.incorrect, clean).mean())

    clean_logits = model(task.clean_tokens)[rows, task.answer_pos]
    clean_value = measure(model(task.clean_tokens), clean_logits)
    corrupted_value = measure(model(task.corrupted_tokens), clean_logits)
    raw = torch.zeros(len(layout.layers), layout.n_experts)
    total = raw.numel()
    for i, layer in enumerate(layout.layers):
        for expert in range(layout.n_experts):
            logits = model(task.clean_tokens, interventions=[ExpertAblation(layer, expert, mode)])
            raw[i, expert] = measure(logits, clean_logits)
            if on_progress is not None:
                on_progress(f"{mode}-ablating experts", i * layout.n_experts + expert + 1, total)
    return ExpertAblationScan(
        mode=mode,
        scores=raw - clean_value,
        raw=raw,
        axes=("layer", "expert"),
        labels={"layer": [str(layer) for layer in layout.layers], "expert": [str(e) for e in range(layout.n_experts)]},
        metric=metric,
        clean_value=clean_value,
        corrupted_value=corrupted_value,
    )


@dataclass(frozen=True)
class ExpertTopToken:
    """One token that chose an expert, and the router's probability for that expert there."""

    token: str
    """The token as text."""
    text: int
    """Which text of the corpus (its index)."""
    position: int
    """Its position in that text's tokens (BOS, where the model prepends one, is position 0)."""
    probability: float
    """``softmax(router logits)[expert]`` at that token."""


# Fields one per line, a docstring under each (the house style of results): alike in shape only, on purpose.
@dataclass(frozen=True)
class LayerRouting:
    """How one MoE layer routed the corpus."""

    layer: int
    """The layer."""
    counts: list[int]
    """Per expert: how many tokens had it among their top k (they sum to ``n_tokens * k``)."""
    fractions: list[float]
    """``counts / (n_tokens * k)``: each expert's share of the routing choices (they sum to 1)."""
    entropy: float
    """Entropy of ``fractions`` in nats: ``log(n_experts)`` when every expert is chosen equally often."""
    balance: float
    """``entropy / log(n_experts)``: 1 for a perfectly balanced load, 0 when one expert takes every choice."""
    mean_probability: list[float]
    """Per expert, the mean router probability over every token (chosen or not)."""
    top_tokens: list[list[ExpertTopToken]]
    """Per expert, the tokens that chose it, highest router probability first (at most ``top``)."""


@dataclass(frozen=True)
class RoutingStats:
    """Routing statistics of a corpus, per MoE layer."""

    n_texts: int
    """Texts in the corpus."""
    n_tokens: int
    """Token positions routed per layer (every position of every text, BOS included)."""
    n_experts: int
    """Experts per MoE layer."""
    top_k: int
    """Experts chosen per token."""
    layers: list[LayerRouting]
    """The MoE layers asked for, in order."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _entropy(fractions: torch.Tensor) -> float:
    nonzero = fractions[fractions > 0]
    return float(-(nonzero * nonzero.log()).sum())


@torch.no_grad()
def routing_statistics(
    model: HookedModel,
    texts: Sequence[str],
    *,
    layers: Sequence[int] | None = None,
    top: int = 10,
    on_progress: OnProgress | None = None,
) -> RoutingStats:
    """How each MoE layer routes ``texts`` (one forward pass per text); ``layers`` default to every MoE layer."""
    layout = expert_layout(model)
    chosen_layers = list(layout.layers if layers is None else layers)
    for layer in chosen_layers:
        layout.check(layer)
    if not texts or not any(t.strip() for t in texts):
        raise OptionError("routing statistics need some text: give at least one non-empty text")
    if top < 1:
        raise OptionError(f"top must be at least 1, got {top}")
    e, k = layout.n_experts, layout.top_k
    counts = {layer: torch.zeros(e, dtype=torch.long) for layer in chosen_layers}
    prob_sums = {layer: torch.zeros(e, dtype=torch.float64) for layer in chosen_layers}
    heaps: dict[tuple[int, int], list[_Candidate]] = {}
    names = [
        f"blocks.{layer}.mlp.hook_{what}" for layer in chosen_layers for what in ("router_logits", "expert_indices")
    ]
    n_tokens = 0
    for t, text in enumerate(texts):
        tokens = model.to_tokens(text)
        _, cache = model.run_with_cache(tokens, names=names)
        ids = tokens[0].tolist()
        n_tokens += len(ids)
        for layer in chosen_layers:
            probs = torch.softmax(cache["router_logits", layer][0].float(), dim=-1)  # [pos expert]
            index = cache["expert_indices", layer][0]  # [pos k]
            counts[layer] += torch.bincount(index.flatten(), minlength=e).cpu()
            prob_sums[layer] += probs.sum(0).double().cpu()
            for pos, experts in enumerate(index.tolist()):
                for expert in experts:
                    heap = heaps.setdefault((layer, expert), [])
                    item = (float(probs[pos, expert]), -t, -pos, ids[pos])
                    (heapq.heappush if len(heap) < top else heapq.heappushpop)(heap, item)
        if on_progress is not None:
            on_progress("routing texts", t + 1, len(texts))
    results = [
        _layer_routing(model, layer, counts[layer], prob_sums[layer], heaps, n_tokens, k) for layer in chosen_layers
    ]
    return RoutingStats(len(texts), n_tokens, e, k, results)


_Candidate = tuple[float, int, int, int]
"""(router probability, -text, -position, token id): a heap entry, largest probability (then earliest) first."""


def _layer_routing(
    model: HookedModel,
    layer: int,
    counts: torch.Tensor,
    prob_sums: torch.Tensor,
    heaps: dict[tuple[int, int], list[_Candidate]],
    n_tokens: int,
    k: int,
) -> LayerRouting:
    e = counts.numel()
    fractions = counts.double() / (n_tokens * k)
    entropy = _entropy(fractions)
    tops = [
        [
            ExpertTopToken(str(model.to_string(token)), -nt, -npos, p)
            for p, nt, npos, token in sorted(heaps.get((layer, expert), []), reverse=True)
        ]
        for expert in range(e)
    ]
    return LayerRouting(
        layer=layer,
        counts=counts.tolist(),
        fractions=fractions.tolist(),
        entropy=entropy,
        balance=entropy / math.log(e) if e > 1 else 1.0,
        mean_probability=(prob_sums / n_tokens).tolist(),
        top_tokens=tops,
    )
