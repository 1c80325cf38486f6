"""Evaluating an SAE on a model: reconstruction, sparsity, downstream loss, latent frequencies.

Over held-out contexts, :func:`evaluate_sae` measures

- L0 (active latents per token), MSE (squared error summed over ``d_in``, mean over tokens, in
  the hook's raw activation units; ``to_dict`` also gives it in the units of the trainer's loss,
  on activations scaled by the SAE's ``activation_scale``), explained variance
  ``1 - Σ||x - x̂||² / Σ||x - x̄||²`` and FVU ``= 1 - EV``;
- next-token cross entropy of the clean run, with the SAE spliced in, with the hook
  zero-ablated and mean-ablated (the mean over the evaluation tokens), and the CE loss
  recovered ``(CE_ablated - CE_sae) / (CE_ablated - CE_clean)`` for both ablations;
- the KL divergence from the clean next-token distribution to the spliced one;
- each latent's firing frequency, the dead (never fires) and dense (fires on more than
  ``dense_threshold`` of tokens) fractions, and a log10-frequency histogram: over the evaluation
  tokens, or over a larger window given as ``frequencies`` (see :mod:`circuitscope.sae.frequency`:
  a few thousand tokens are too few to call a latent of a wide SAE dead).

Splices and ablations touch the same positions: all of them except a leading BOS when the SAE
was trained without BOS. Targets that are BOS (document separators) are not scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int

from circuitscope.core.hooked_model import HookedModel
from circuitscope.engine.batching import batch_slices
from circuitscope.engine.loss import next_token_loss
from circuitscope.progress import OnProgress, track
from circuitscope.sae.base import SAE
from circuitscope.sae.errors import SAEShapeError
from circuitscope.sae.frequency import LatentFrequencies
from circuitscope.sae.splice import SAESplice, _skip_mask

# The names this module exports, one per line: the API spelled out on purpose (alike in shape to others').
__all__ = ["SAEEvalResult", "ce_loss_recovered", "evaluate_sae"]


# Fields one per line, a docstring under each (the house style of results): alike in shape only, on purpose.
@dataclass(frozen=True)
class SAEEvalResult:
    """Metrics of one SAE on one model and set of contexts."""

    n_tokens: int
    """Activation vectors evaluated (spliced positions)."""
    l0: float
    """Mean number of active latents per token."""
    mse: float
    """Squared reconstruction error summed over d_in, mean over tokens, on raw activations (``mse_per_token``)."""
    explained_variance: float
    """1 - residual variance / activation variance."""
    fvu: float
    """Fraction of variance unexplained (1 - explained variance)."""
    ce_clean: float
    """Next-token cross entropy of the clean run (nats)."""
    ce_sae: float
    """... with the SAE reconstruction spliced in."""
    ce_zero_ablation: float
    """... with the hook's activation set to zero."""
    ce_mean_ablation: float
    """... with the hook's activation set to its mean."""
    ce_loss_recovered: float
    """(CE_zero - CE_sae) / (CE_zero - CE_clean)."""
    ce_loss_recovered_mean_ablation: float
    """(CE_mean - CE_sae) / (CE_mean - CE_clean)."""
    kl_sae: float
    """Mean KL(clean || spliced) over scored positions (nats)."""
    dead_fraction: float
    """Latents that never fired in the frequency window (``frequency_tokens`` activations)."""
    dense_fraction: float
    """Latents that fired on more than ``dense_threshold`` of the tokens."""
    feature_frequency: Float[torch.Tensor, " d_sae"]
    """Firing frequency of every latent."""
    histogram_counts: Int[torch.Tensor, " bins"]
    """Latents per log10-frequency bin (dead latents are not counted)."""
    histogram_edges: Float[torch.Tensor, " bins_plus_1"]
    """log10-frequency bin edges."""
    frequency_tokens: int = 0
    """Activations the frequencies (and so the dead and dense fractions) were counted on."""
    frequency_source: str = "evaluation tokens"
    """Where those activations came from."""
    activation_scale: float = 1.0
    """The SAE's training input scale: ``mse * activation_scale**2`` is the MSE in the trainer's units."""

    @property
    def mse_normalized(self) -> float:
        """:attr:`mse` on activations scaled by :attr:`activation_scale` (what ``sae train`` reports)."""
        return self.mse * self.activation_scale**2

    def to_dict(self) -> dict[str, Any]:
        """The scalar metrics and the histogram (JSON-ready); the MSE as ``mse_per_token`` (raw activations)
        and ``mse_per_token_normalized`` (scaled by ``activation_scale``, the trainer's units)."""
        out: dict[str, Any] = {"n_tokens": self.n_tokens, "l0": self.l0, "mse_per_token": self.mse,
                               "mse_per_token_normalized": self.mse_normalized,
                               "activation_scale": self.activation_scale}  # fmt: skip
        out |= {
            k: getattr(self, k)
            for k in (
                "explained_variance", "fvu", "ce_clean", "ce_sae", "ce_zero_ablation",
                "ce_mean_ablation", "ce_loss_recovered", "ce_loss_recovered_mean_ablation", "kl_sae",
                "dead_fraction", "dense_fraction", "frequency_tokens", "frequency_source",
            )
        }  # fmt: skip
        out["histogram"] = {"counts": self.histogram_counts.tolist(), "log10_edges": self.histogram_edges.tolist()}
        return out


def ce_loss_recovered(ce_ablated: float, ce_sae: float, ce_clean: float) -> float:
    """``(CE_ablated - CE_sae) / (CE_ablated - CE_clean)``: 1 for a perfect splice, 0 for one as bad as ablation."""
    denom = ce_ablated - ce_clean
    return float("nan") if denom == 0 else (ce_ablated - ce_sae) / denom


@dataclass
class _Reconstruction:
    """Sums of pass 1 (the hook's activations, the forward stopping there) over the evaluation tokens."""

    sum_x: torch.Tensor
    """Sum of the activations [d_in] (float64)."""
    fired: torch.Tensor
    """How often each latent fired [d_sae] (float64)."""
    n: int = 0
    err_sum: float = 0.0
    sq_sum: float = 0.0
    l0_sum: float = 0.0


def _reconstruction_pass(
    model: HookedModel,
    sae: SAE,
    batches: list[torch.Tensor],
    skip_bos: bool | None,
    on_progress: OnProgress | None,
) -> _Reconstruction:
    hook = sae.cfg.hook_name
    sums = _Reconstruction(
        sum_x=torch.zeros(sae.cfg.d_in, dtype=torch.float64), fired=torch.zeros(sae.cfg.d_sae, dtype=torch.float64)
    )
    for ids in track(batches, "SAE: reconstruction", on_progress):
        x = model.cache_activations(ids, hook)[hook]
        if x.shape[-1] != sae.cfg.d_in:
            raise SAEShapeError(
                f"{hook} has width {x.shape[-1]} on this model, but the SAE reads d_in={sae.cfg.d_in}; "
                "use an SAE trained on this model and hook"
            )
        mask = _skip_mask(model, sae, ids, skip_bos)
        keep = torch.ones(ids.shape, dtype=torch.bool, device=ids.device) if mask is None else ~mask
        xs = x[keep].double()
        acts = sae.encode(xs.to(sae.W_enc.dtype))
        recon = sae.decode(acts).double()
        sums.err_sum += float((recon - xs).pow(2).sum())
        sums.sq_sum += float(xs.pow(2).sum())
        sums.sum_x += xs.sum(0)
        sums.n += xs.shape[0]
        active = acts > 0
        sums.l0_sum += float(active.sum())
        sums.fired += active.sum(0).double()
    return sums


def _downstream_pass(
    model: HookedModel,
    sae: SAE,
    batches: list[torch.Tensor],
    mean: torch.Tensor,
    skip_bos: bool | None,
    on_progress: OnProgress | None,
) -> tuple[dict[str, float], float]:
    """Pass 2: mean next-token losses clean, spliced, zero- and mean-ablated, and the mean KL(clean || spliced)."""
    hook = sae.cfg.hook_name
    bos = model.tok.bos_token_id if model.tokenizer is not None else None
    ce = {"clean": 0.0, "sae": 0.0, "zero": 0.0, "mean": 0.0}
    kl_sum = 0.0
    n_targets = 0.0
    for ids in track(batches, "SAE: downstream loss", on_progress):
        scored = None if bos is None else ids != bos  # the tokens scored as targets
        valid = torch.ones(ids[:, 1:].shape, device=ids.device) if scored is None else scored[:, 1:].float()
        n_targets += float(valid.sum())
        mask = _skip_mask(model, sae, ids, skip_bos)
        logits = model(ids)
        ce["clean"] += float(next_token_loss(logits, ids, mask=scored, reduction="none").sum())
        clean_logp = logits[:, :-1].float().log_softmax(-1)
        del logits
        with model.apply(SAESplice(sae, skip_bos=skip_bos)):
            logits = model(ids)
        ce["sae"] += float(next_token_loss(logits, ids, mask=scored, reduction="none").sum())
        sae_logp = logits[:, :-1].float().log_softmax(-1)
        del logits
        kl = (clean_logp.exp() * (clean_logp - sae_logp)).sum(-1)
        kl_sum += float((kl * valid).sum())
        del clean_logp, sae_logp
        for name, value in (("zero", torch.zeros_like(mean)), ("mean", mean)):

            def ablate(x: torch.Tensor, hook: Any, value: torch.Tensor = value, mask: Any = mask) -> torch.Tensor:
                out = value.to(x.dtype).expand_as(x)
                return out if mask is None else torch.where(mask[..., None], x, out)

            with model.hooks([(hook, ablate)]):
                ce[name] += float(next_token_loss(model(ids), ids, mask=scored, reduction="none").sum())
    return {key: value / max(n_targets, 1.0) for key, value in ce.items()}, kl_sum / max(n_targets, 1.0)


@torch.no_grad()
def evaluate_sae(
    model: HookedModel,
    sae: SAE,
    tokens: Int[torch.Tensor, "n_contexts context"],
    batch_size: int = 4,
    dense_threshold: float = 0.1,
    skip_bos: bool | None = None,
    frequencies: LatentFrequencies | None = None,
    on_progress: OnProgress | None = None,
) -> SAEEvalResult:
    """Evaluate ``sae`` spliced into ``model`` at ``sae.cfg.hook_name`` on the contexts ``tokens``.

    ``frequencies`` (e.g. :func:`~circuitscope.sae.frequency.store_frequencies`) replaces the
    latent frequencies counted on ``tokens`` for the dead and dense fractions and the histogram.
    ``on_progress(stage, done, total)`` is told the batches of the two passes (``SAE: reconstruction``,
    ``SAE: downstream loss``).
    """
    if frequencies is not None and frequencies.frequency.shape != (sae.cfg.d_sae,):
        raise SAEShapeError(
            f"frequencies cover {tuple(frequencies.frequency.shape)} latents, the SAE has d_sae={sae.cfg.d_sae}"
        )
    model.hook_point(sae.cfg.hook_name)
    if tokens.ndim != 2 or tokens.shape[1] < 2:
        raise SAEShapeError(f"tokens must be [n_contexts, context >= 2], got {tuple(tokens.shape)}")
    batches = [tokens[rows].to(model.device) for rows in batch_slices(tokens.shape[0], batch_size)]
    sums = _reconstruction_pass(model, sae, batches, skip_bos, on_progress)
    n = sums.n
    mean = (sums.sum_x / n).float()
    variance = sums.sq_sum - float((sums.sum_x * sums.sum_x).sum()) / n
    ce, kl = _downstream_pass(model, sae, batches, mean, skip_bos, on_progress)
    if frequencies is None:
        frequencies = LatentFrequencies((sums.fired / max(n, 1)).float(), n, "evaluation tokens")
    counts, edges = frequencies.histogram()
    ev = 1 - sums.err_sum / variance if variance > 0 else float("nan")
    return SAEEvalResult(
        n_tokens=n,
        l0=sums.l0_sum / max(n, 1),
        mse=sums.err_sum / max(n, 1),
        explained_variance=ev,
        fvu=1 - ev,
        ce_clean=ce["clean"],
        ce_sae=ce["sae"],
        ce_zero_ablation=ce["zero"],
        ce_mean_ablation=ce["mean"],
        ce_loss_recovered=ce_loss_recovered(ce["zero"], ce["sae"], ce["clean"]),
        ce_loss_recovered_mean_ablation=ce_loss_recovered(ce["mean"], ce["sae"], ce["clean"]),
        kl_sae=kl,
        dead_fraction=frequencies.dead_fraction,
        dense_fraction=frequencies.dense_fraction(dense_threshold),
        feature_frequency=frequencies.frequency,
        histogram_counts=counts,
        histogram_edges=edges,
        frequency_tokens=frequencies.n_tokens,
        frequency_source=frequencies.source,
        activation_scale=sae.cfg.activation_scale,
    )
