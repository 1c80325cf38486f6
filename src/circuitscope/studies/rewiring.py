"""Study: is fine-tuning rewiring and re-weighting circuits that already exist, rather than building new ones?

The hypothesis (issue 18, from the seed documents): fine-tuning up- and down-weights existing circuits.
Method, on a model before and after fine-tuning (or two checkpoints of one run), each comparison with
the library's own tool: per-token loss on held-out in-domain and on out-of-domain text (the change per
context with a 95% bootstrap interval, and the tokens that changed most); head-ablation importance on
both (:func:`~circuitscope.analysis.head_ablation_importance`, the one head-ablation engine) and how it
moved; attention-pattern distance and residual-stream CKA per layer (:mod:`circuitscope.diffing`);
the IOI circuit found on both, the Jaccard overlap of its edges and the old circuit's faithfulness on
the new model (:mod:`circuitscope.studies.rewiring_circuit`); the weight change per component
(:func:`~circuitscope.diffing.weight_diff`). A comparison a pair cannot support is skipped and named in
``notes``: a model without a tokenizer (a toy checkpoint) has no text, so no attention or CKA over text
and no IOI; its loss and head ablations run on the token contexts given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
from jaxtyping import Int

from circuitscope.analysis import HeadAblation, head_ablation_importance
from circuitscope.circuits.discover import METHODS, Method
from circuitscope.diffing import (
    AttentionDiff,
    LayerCKA,
    WeightDiff,
    attention_diff,
    check_same_architecture,
    layer_cka,
    weight_diff,
)
from circuitscope.errors import CircuitscopeError, require_at_least
from circuitscope.progress import OnProgress, stage
from circuitscope.studies.errors import StudyConfigError
from circuitscope.studies.items import study_statements
from circuitscope.studies.rewiring_circuit import CircuitComparison, compare_circuits
from circuitscope.studies.rewiring_loss import LossChange, loss_change
from circuitscope.studies.threads import forward_threads, torch_threads

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = [
    "HYPOTHESIS",
    "HeadChange",
    "RewiringConfig",
    "RewiringPreset",
    "RewiringResult",
    "Verdict",
    "out_of_domain_contexts",
    "rewiring_study",
]

HYPOTHESIS = (
    "Fine-tuning is just rewiring and up/down-weighting circuits that already exist, rather than building new circuits."
)
RETAINED = 0.1
"""A drop of the old circuit's faithfulness by more than this (the whole interval below -0.1) counts as lost."""
SHARED = 0.5
"""A Jaccard overlap of at least this counts as the same edges."""
RewiringPreset = Literal["default", "thorough"]
"""``default``: minutes on 2 CPU cores (16 contexts, 4 of them head-ablated, 16 IOI prompts, EAP);
``thorough``: the larger setting (32 contexts, 8 head-ablated, 32 IOI prompts, EAP-IG), several times slower."""
_PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "thorough": {"n_contexts": 32, "n_ood": 32, "n_ablation": 8, "ioi_prompts": 32, "circuit_method": "eap-ig"},
}
Verdict = Literal["unchanged", "re-weighted", "re-routed", "new", "not measured"]
"""The circuit after: the same edges and faithfulness; the old circuit still faithful (its faithfulness did not
drop by more than :data:`RETAINED`) with at least :data:`SHARED` of its edges shared, or with fewer; the old circuit
no longer faithful; or no IOI comparison."""


# Same shape as src/circuitscope/toy/lab_config.py:LabConfig on purpose: a config's counts, each with its docstring
# (the house style), alike also with analysis/copying.py:CopyingConfig and toy/addition_lab.py:AdditionConfig;
# the fields are different facts, and their checks share circuitscope.errors.require_at_least.
@dataclass(frozen=True)
class RewiringConfig:
    """What the rewiring study measures, and on how much data."""

    n_contexts: int = 16
    """In-domain held-out contexts used (the first of those given)."""
    n_ood: int = 16
    """Out-of-domain contexts (generated statements, for a model with a tokenizer)."""
    ood_context_size: int = 32
    """Tokens per out-of-domain context."""
    n_ablation: int = 4
    """In-domain contexts the head ablations run on."""
    ioi_prompts: int = 16
    """IOI prompts the circuits are found and evaluated on."""
    circuit_method: Method = "eap"
    """How the circuits are found: eap, eap-ig or acdc."""
    circuit_target: float = 0.8
    """Normalized faithfulness the circuit before must reach (its size fixes the circuit after's)."""
    top_k: int = 10
    """Tokens listed as most improved and most worsened."""
    batch_size: int = 8
    """Rows of one forward pass."""
    n_boot: int = 1000
    """Bootstrap resamples of every 95% interval (at least 100)."""
    seed: int = 0
    """Seed of the generated text, the IOI prompts, the circuits and the bootstrap."""
    threads: int | None = None
    """torch CPU threads the study runs under (None: 1 or 2, whichever runs a forward of the model before
    faster, measured at the start; on a busy machine a second thread can make every pass several times slower)."""

    def __post_init__(self) -> None:
        counts = ("n_contexts", "n_ood", "n_ablation", "ioi_prompts", "top_k", "batch_size")
        require_at_least(self, counts, StudyConfigError)
        require_at_least(self, ("ood_context_size",), StudyConfigError, minimum=2)
        if self.circuit_method not in METHODS:
            raise StudyConfigError(f"circuit_method must be one of {', '.join(METHODS)}, got {self.circuit_method!r}")
        # The end of a config's checks, alike in shape to toy/trainer.py:TrainConfig's (different fields, on purpose).
        if not 0 < self.circuit_target <= 1:
            raise StudyConfigError(f"circuit_target must lie in (0, 1], got {self.circuit_target}")
        if self.n_boot < 100:
            raise StudyConfigError(f"n_boot must be at least 100 for a stable 95% interval, got {self.n_boot}")
        if self.threads is not None and self.threads < 1:
            raise StudyConfigError(f"threads must be at least 1 (or None: measured), got {self.threads}")

    @classmethod
    def preset(cls, name: str) -> RewiringConfig:
        """The settings of a :data:`RewiringPreset` (``default``: the field defaults)."""
        if name not in _PRESETS:
            raise StudyConfigError(f"unknown rewiring config {name!r}; choose one of {', '.join(_PRESETS)}")
        return cls(**_PRESETS[name])


# Same shape as src/circuitscope/analysis/heads_analysis.py:HeadExample on purpose: the end of a config's checks and
# a small result's documented fields; nothing in them to share.
@dataclass(frozen=True)
class HeadChange:
    """Head-ablation importance (loss increase when the head is mean-ablated) before and after."""

    before: HeadAblation
    """Each head's importance on the model before (nats per token)."""
    after: HeadAblation
    """The same on the model after, on the same contexts."""

    @property
    def change(self) -> torch.Tensor:
        """After minus before, ``[layer, head]``."""
        return self.after.loss_increase - self.before.loss_increase

    @property
    def correlation(self) -> float:
        """Pearson correlation of the importances over the heads (1 when both are identical)."""
        x, y = self.before.loss_increase.flatten().double(), self.after.loss_increase.flatten().double()
        x, y = x - x.mean(), y - y.mean()
        denominator = float(x.norm() * y.norm())
        return float((x * y).sum()) / denominator if denominator > 0 else 1.0

    def top(self, k: int = 5) -> list[tuple[int, int, float, float]]:
        """The ``k`` heads whose importance moved most: (layer, head, before, after)."""
        n_heads = self.change.shape[1]
        order = self.change.abs().flatten().argsort(descending=True)[:k]
        b, a = self.before.loss_increase, self.after.loss_increase
        return [(int(i) // n_heads, int(i) % n_heads, float(b.flatten()[i]), float(a.flatten()[i])) for i in order]

    def to_json(self) -> dict[str, Any]:
        return {
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "correlation": self.correlation,
            "top_changes": [{"head": f"L{la}H{h}", "before": b, "after": a} for la, h, b, a in self.top()],
        }


@dataclass(frozen=True)
class RewiringResult:
    """Every comparison of the models before and after, and the answer they give."""

    config: RewiringConfig
    """What was measured."""
    in_domain: LossChange
    """Loss on the held-out contexts of the fine-tuning data."""
    out_of_domain: LossChange | None
    """Loss on other text (None: none given for a model without a tokenizer)."""
    heads: HeadChange
    """Head-ablation importance before and after."""
    weights: WeightDiff
    """The weight change per component (A: before, B: after)."""
    attention: AttentionDiff | None
    """Attention-pattern distance per head on the in-domain text (None without a tokenizer)."""
    cka: LayerCKA | None
    """Residual-stream CKA per layer on the in-domain text (None without a tokenizer)."""
    circuit: CircuitComparison | None
    """The IOI circuit before and after (None when the models cannot run IOI prompts)."""
    notes: list[str] = field(default_factory=list)
    """The comparisons this pair could not make, and why."""
    threads: int = 1
    """torch CPU threads the study ran on (the config's, or the faster of 1 and 2 as measured)."""

    def top_components(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` components with the largest relative weight change."""
        pairs = sorted(zip(self.weights.components, self.weights.relative, strict=True), key=lambda p: -p[1])
        return pairs[:k]

    def circuit_verdict(self) -> Verdict:
        """What the IOI comparison says about the circuit after (see :data:`Verdict`)."""
        c = self.circuit
        if c is None:
            return "not measured"
        if c.jaccard == 1 and c.faithfulness_change.mean == 0:
            return "unchanged"
        if c.faithfulness_change.high < -RETAINED:
            return "new"
        return "re-weighted" if c.jaccard >= SHARED else "re-routed"

    def answer(self) -> str:
        """One paragraph: what the numbers and their intervals say about the hypothesis for this pair."""
        if self.weights.total_relative == 0:
            return "The two models have identical weights: nothing was fine-tuned, so nothing was rewired."
        ind = self.in_domain.change
        words = {"lower": "fell", "higher": "rose", "no detectable difference": "did not change detectably"}
        parts = [f"On held-out in-domain text the loss {words[ind.direction]} ({ind.text()} nats per token)"]
        if self.out_of_domain is not None:
            ood = self.out_of_domain.change
            parts[0] += f"; out of domain it {words[ood.direction]} ({ood.text()})"
        parts[0] += "."
        top = ", ".join(f"{name} ({rel:.2%})" for name, rel in self.top_components())
        parts.append(f"The weights changed most in {top} (relative change; {self.weights.total_relative:.2%} overall).")
        la, h, b, a = self.heads.top(1)[0]
        parts.append(
            f"Head importance before and after correlates at {self.heads.correlation:.2f}; L{la}H{h} moved most "
            f"({b:.3f} -> {a:.3f} nats when ablated)."
        )
        if self.cka is not None and self.attention is not None:
            low = int(self.cka.cka.argmin())
            flat = self.attention.distance.flatten()
            i, n_heads = int(flat.argmax()), self.attention.distance.shape[1]
            parts.append(
                f"Residual-stream CKA is lowest after layer {low} ({float(self.cka.cka[low]):.3f}); attention moved "
                f"most in L{i // n_heads}H{i % n_heads} (distance {float(flat[i]):.3f})."
            )
        parts.append(self._circuit_sentence())
        return " ".join(parts)

    def _circuit_sentence(self) -> str:
        c = self.circuit
        if c is None:
            return "The IOI circuit was not compared (" + "; ".join(self.notes) + ")."
        head = (
            f"The IOI circuit of {c.before.n_edges} edges keeps {c.retained:.2f} of its faithfulness on the new model "
            f"({c.faithfulness_before.text()} before, {c.faithfulness_after.text()} after, paired change "
            f"{c.faithfulness_change.text()}), and the circuit found after shares a Jaccard {c.jaccard:.2f} of its "
            f"edges (edge scores correlate at {c.score_correlation:.2f})"
        )
        tail = {
            "unchanged": ": the circuit is the old one, unchanged.",
            "re-weighted": ": the circuit after is the old one re-weighted, as the hypothesis says.",
            "re-routed": (
                ": the old circuit still explains the new model, but its strongest edges are largely others, so "
                "the circuit after is the old one re-weighted along partly different routes."
            ),
            "new": (
                ": the old circuit no longer explains the new model, against the hypothesis: fine-tuning built "
                "new wiring for IOI."
            ),
        }[self.circuit_verdict()]
        return head + tail

    def to_json(self) -> dict[str, Any]:
        return {
            "hypothesis": HYPOTHESIS,
            "config": {**self.config.__dict__},
            "in_domain": self.in_domain.to_json(),
            "out_of_domain": None if self.out_of_domain is None else self.out_of_domain.to_json(),
            "heads": self.heads.to_json(),
            "weights": self.weights.to_dict(),
            "attention": None if self.attention is None else self.attention.to_dict(),
            "cka": None if self.cka is None else self.cka.to_dict(),
            "circuit": None if self.circuit is None else self.circuit.to_json(),
            "circuit_verdict": self.circuit_verdict(),
            "notes": self.notes,
            "threads": self.threads,
            "answer": self.answer(),
        }


def out_of_domain_contexts(model: HookedModel, config: RewiringConfig) -> Int[torch.Tensor, "n pos"]:
    """Contexts of generated plain statements ("A week has seven days.", capitals, months), unlike most corpora."""
    from circuitscope.sae.corpus import Corpus, build_contexts

    statements = [s.text for s in study_statements(24, config.seed)]
    corpus = Corpus("generated statements (circuitscope.studies.items)", [" ".join(statements)] * 8)
    size = config.ood_context_size
    return build_contexts(model, corpus, size, seed=config.seed, max_contexts=config.n_ood).tokens


def _texts(model: HookedModel, tokens: torch.Tensor) -> list[str]:
    """The contexts as text (BOS left out: the tokenizer adds it again)."""
    skip = 1 if model.tok.default_prepend_bos else 0
    return [str(model.to_string(row[skip:])) for row in tokens]


def _ioi(
    before: HookedModel, after: HookedModel, config: RewiringConfig, on_progress: OnProgress | None, notes: list[str]
) -> CircuitComparison | None:
    from circuitscope.tasks.ioi import IOIConfig, ioi_task

    if before.tokenizer is None:
        notes.append("no IOI circuit: the models have no tokenizer, so there are no IOI prompts")
        return None
    try:
        task = ioi_task(before, IOIConfig(n_prompts=config.ioi_prompts, seed=config.seed))
    except CircuitscopeError as err:
        notes.append(f"no IOI circuit: {err}")
        return None
    return compare_circuits(
        before, after, task, method=config.circuit_method, target=config.circuit_target,
        batch_size=config.batch_size, n_boot=config.n_boot, seed=config.seed, on_progress=on_progress,
    )  # fmt: skip


def rewiring_study(
    before: HookedModel,
    after: HookedModel,
    in_domain: Int[torch.Tensor, "n pos"],
    config: RewiringConfig | None = None,
    *,
    out_of_domain: Int[torch.Tensor, "m pos"] | None = None,
    on_progress: OnProgress | None = None,
) -> RewiringResult:
    """Compare ``before`` and ``after`` (see the module docstring).

    ``in_domain``: held-out contexts of the fine-tuning data (token ids; a fine-tuned folder keeps them);
    ``out_of_domain``: other contexts (default: generated statements, for models with a tokenizer).
    """
    config = config or RewiringConfig()
    check_same_architecture(before, after)
    if in_domain.ndim != 2 or in_domain.shape[1] < 2:
        raise StudyConfigError(f"in_domain must be contexts [n, pos >= 2] of token ids, got {tuple(in_domain.shape)}")
    tokens = in_domain[: config.n_contexts]
    threads = config.threads or forward_threads(before, tokens[:2], before.cfg.n_layers // 2)
    with torch_threads(threads):
        return _compare(before, after, tokens, config, out_of_domain, on_progress)


def _compare(
    before: HookedModel,
    after: HookedModel,
    tokens: Int[torch.Tensor, "n pos"],
    config: RewiringConfig,
    out_of_domain: Int[torch.Tensor, "m pos"] | None,
    on_progress: OnProgress | None,
) -> RewiringResult:
    """Every comparison of :func:`rewiring_study`, under the thread count it chose."""
    notes: list[str] = []
    if out_of_domain is None and before.tokenizer is not None:
        out_of_domain = out_of_domain_contexts(before, config)
    if out_of_domain is None:
        notes.append("no out-of-domain loss: give out-of-domain token contexts for a model without a tokenizer")
    common = {"batch_size": config.batch_size, "top_k": config.top_k, "n_boot": config.n_boot, "seed": config.seed}
    with stage("per-token loss", on_progress):
        ind = loss_change(before, after, tokens, "in-domain", **common)
        ood = None if out_of_domain is None else loss_change(before, after, out_of_domain, "out-of-domain", **common)
    ablate = tokens[: config.n_ablation]
    heads = HeadChange(
        head_ablation_importance(before, ablate, "mean", batch_size=config.batch_size * 4, on_progress=on_progress),
        head_ablation_importance(after, ablate, "mean", batch_size=config.batch_size * 4, on_progress=on_progress),
    )
    attention = cka = None
    if before.tokenizer is not None:
        with stage("attention patterns and CKA", on_progress):
            texts = _texts(before, tokens)
            attention, cka = attention_diff(before, after, texts), layer_cka(before, after, texts)
    else:
        notes.append("no attention or CKA comparison: diffing compares models on text, and these have no tokenizer")
    circuit = _ioi(before, after, config, on_progress, notes)
    return RewiringResult(
        config=config, in_domain=ind, out_of_domain=ood, heads=heads, weights=weight_diff(before, after),
        attention=attention, cka=cka, circuit=circuit, notes=notes, threads=torch.get_num_threads(),
    )  # fmt: skip
