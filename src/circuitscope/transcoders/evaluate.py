"""How good a set of transcoders is: per layer (FVU, L0, dead features) and as a replacement for every MLP.

Per layer, each transcoder reads the real model's MLP input and is compared with the real MLP
output (open loop): the fraction of variance unexplained, the mean number of active features per
token, and the fraction of features that never fire on the evaluation tokens. For the whole
replacement, every covered MLP's output is replaced by its estimate (:class:`MLPReplacement`), so
errors compound through the layers: the next-token cross-entropy, the KL divergence from the real
model's next-token distribution and the top-1 agreement with it, without and with the error terms
(with them the replaced model is the real model, up to float rounding).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Int

from circuitscope.engine.batching import batch_slices
from circuitscope.engine.loss import next_token_loss
from circuitscope.progress import OnProgress, track
from circuitscope.transcoders.modules import TranscoderSet
from circuitscope.transcoders.replacement import MLPReplacement

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["LayerEval", "ReplacementEval", "TranscoderEvalResult", "evaluate_transcoders"]


@dataclass(frozen=True)
class LayerEval:
    """One layer's transcoder on the real model's activations."""

    layer: int
    """The model layer."""
    fvu: float
    """Fraction of the MLP output's variance the estimate leaves unexplained (0 is perfect)."""
    l0: float
    """Active features per token."""
    dead_fraction: float
    """Fraction of the layer's features that never fired on the evaluation tokens."""


@dataclass(frozen=True)
class ReplacementEval:
    """The model with every covered MLP replaced, against the real model."""

    ce: float
    """Mean next-token cross-entropy (nats)."""
    kl: float
    """Mean KL divergence of its next-token distribution from the real model's,
    ``KL(real || replaced)`` in nats per position."""
    agreement: float
    """Fraction of positions where its most likely next token is the real model's."""


@dataclass(frozen=True)
class TranscoderEvalResult:
    """Per-layer quality and the replacement model's, on ``tokens`` evaluation tokens."""

    layers: list[LayerEval]
    """One entry per covered layer."""
    ce_real: float
    """The real model's mean next-token cross-entropy."""
    replaced: ReplacementEval
    """Every covered MLP replaced by its estimate."""
    replaced_with_error: ReplacementEval
    """The same with the error terms added back (equal to the real model up to rounding)."""
    tokens: int
    """Evaluation tokens (positions) seen."""

    def to_json(self) -> dict[str, Any]:
        return {
            "layers": [asdict(e) for e in self.layers],
            "ce_real": self.ce_real,
            "replaced": asdict(self.replaced),
            "replaced_with_error": asdict(self.replaced_with_error),
            "tokens": self.tokens,
        }


class _Sums:
    """Running sums over batches: per layer error, output moments, firing; per replacement CE, KL, agreement."""

    def __init__(self, n: int, d_sae: int, d_out: int) -> None:
        z = torch.zeros
        self.err, self.sq, self.l0 = z(n, dtype=torch.float64), z(n, dtype=torch.float64), z(n, dtype=torch.float64)
        self.mean = z(n, d_out, dtype=torch.float64)
        self.fired = z(n, d_sae, dtype=torch.bool)
        self.rows = 0
        self.ce = {"real": 0.0, "replaced": 0.0, "error": 0.0}
        self.kl = {"replaced": 0.0, "error": 0.0}
        self.agree = {"replaced": 0.0, "error": 0.0}
        self.targets = 0
        self.positions = 0


def evaluate_transcoders(
    model: HookedModel,
    transcoders: TranscoderSet,
    tokens: Int[torch.Tensor, "n pos"],
    *,
    on_progress: OnProgress | None = None,
    batch_size: int = 4,
) -> TranscoderEvalResult:
    """Evaluate ``transcoders`` on ``tokens`` (contexts, e.g. from :func:`~circuitscope.sae.build_contexts`).

    Positions holding BOS are left out of the per-layer figures when the transcoders exclude BOS.
    ``batch_size`` bounds the contexts of one forward pass (the logits are ``[batch, pos, d_vocab]``).
    """
    transcoders.check(model)
    with torch.no_grad():
        return _evaluate(model, transcoders, tokens, on_progress, batch_size)


def _evaluate(
    model: HookedModel, tc: TranscoderSet, tokens: torch.Tensor, on_progress: OnProgress | None, batch_size: int
) -> TranscoderEvalResult:
    c = tc.cfg
    sums = _Sums(len(tc.layers), c.d_sae, c.d_out)
    bos = model.tok.bos_token_id if c.exclude_bos and model.tokenizer is not None else None
    names = [h for layer in tc.layers for h in (tc.input_hook(layer), tc.output_hook(layer))]
    slices = batch_slices(int(tokens.shape[0]), batch_size)
    for part in track(slices, "evaluating transcoders", on_progress):
        ids = tokens[part]
        real, cache = model.run_with_cache(ids, names)
        keep = torch.ones(ids.shape, dtype=torch.bool)
        if bos is not None:
            keep[:, 0] = ids[:, 0] != bos
        _layer_sums(sums, tc, cache, keep)
        replaced = model(ids, interventions=[MLPReplacement(tc)])
        with_error = model(ids, interventions=[MLPReplacement(tc, keep_error=True)])
        _model_sums(sums, ids, real, replaced, with_error)
    return _result(sums, tc)


def _layer_sums(sums: _Sums, tc: TranscoderSet, cache: Any, keep: torch.Tensor) -> None:
    inputs = {layer: cache[tc.input_hook(layer)][keep] for layer in tc.layers}
    acts = {layer: tc.encode(layer, x) for layer, x in inputs.items()}
    for i, layer in enumerate(tc.layers):
        y = cache[tc.output_hook(layer)][keep].double()
        est = tc.estimate(layer, acts, inputs[layer]).double()
        sums.err[i] += (est - y).pow(2).sum()
        sums.sq[i] += y.pow(2).sum()
        sums.mean[i] += y.sum(0)
        active = acts[layer] > 0
        sums.l0[i] += active.sum()
        sums.fired[i] |= active.any(0)
    sums.rows += int(keep.sum())


def _model_sums(
    sums: _Sums, ids: torch.Tensor, real: torch.Tensor, replaced: torch.Tensor, with_error: torch.Tensor
) -> None:
    sums.ce["real"] += float(next_token_loss(real, ids, reduction="sum"))
    for row in range(ids.shape[0]):  # one context at a time: [pos, d_vocab] temporaries, whatever the vocabulary
        logp_real = real[row].float().log_softmax(-1)
        top_real = real[row].argmax(-1)
        for key, logits in (("replaced", replaced[row]), ("error", with_error[row])):
            logp = logits.float().log_softmax(-1)
            sums.kl[key] += float((logp_real.exp() * (logp_real - logp)).sum())
            sums.agree[key] += float((logits.argmax(-1) == top_real).sum())
    for key, logits in (("replaced", replaced), ("error", with_error)):
        sums.ce[key] += float(next_token_loss(logits, ids, reduction="sum"))
    sums.targets += ids.shape[0] * (ids.shape[1] - 1)
    sums.positions += ids.numel()


def _result(sums: _Sums, tc: TranscoderSet) -> TranscoderEvalResult:
    rows = max(sums.rows, 1)
    variance = sums.sq - sums.mean.pow(2).sum(-1) / rows  # Σ ||y - mean||² over the rows
    layers = [
        LayerEval(
            layer=layer,
            fvu=float(sums.err[i] / variance[i].clamp_min(1e-12)),
            l0=float(sums.l0[i] / rows),
            dead_fraction=float((~sums.fired[i]).float().mean()),
        )
        for i, layer in enumerate(tc.layers)
    ]
    t, p = max(sums.targets, 1), max(sums.positions, 1)

    def replacement(key: str) -> ReplacementEval:
        return ReplacementEval(ce=sums.ce[key] / t, kl=sums.kl[key] / p, agreement=sums.agree[key] / p)

    return TranscoderEvalResult(
        layers=layers,
        ce_real=sums.ce["real"] / t,
        replaced=replacement("replaced"),
        replaced_with_error=replacement("error"),
        tokens=sums.positions,
    )
