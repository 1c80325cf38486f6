"""Feature dashboard data: what makes each latent fire, and what it writes (the dashboard page draws it).

For each chosen feature: its top-activating contexts with the activation shaded on every
token, examples from quantile bands of its nonzero activations, the activation histogram,
the tokens whose logits its decoder direction boosts and suppresses most (``W_dec[f] @ W_U``,
the direct path, without the final norm), and its density (firing frequency). The page opens
with an index of the features that can be searched by token (top-activating tokens and
boosted logits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int

from circuitscope.core.hooked_model import HookedModel
from circuitscope.engine.batching import batch_slices
from circuitscope.progress import OnProgress, track
from circuitscope.sae.base import SAE
from circuitscope.sae.errors import SAEConfigError
from circuitscope.sae.splice import _skip_mask

__all__ = [
    "Example",
    "FeatureDashboardData",
    "dashboard_summary",
    "feature_dashboard_data",
    "logit_effects",
    "parse_features",
]


@dataclass(frozen=True)
class Example:
    """One token where a feature fired, with the context around it."""

    context: int
    """Row of the evaluated tokens."""
    position: int
    """Position of the token in its context."""
    activation: float
    """The feature's activation there."""
    tokens: list[str]
    """The window of tokens around it."""
    values: list[float]
    """The feature's activation on each token of the window."""


# Fields one per line, a docstring under each (the house style of results): alike in shape only, on purpose.
@dataclass(frozen=True)
class FeatureDashboardData:
    """Everything a dashboard shows, for a list of features."""

    features: list[int]
    """Latent indices."""
    density: Float[torch.Tensor, " feature"]
    """Firing frequency over the evaluated tokens."""
    max_activation: Float[torch.Tensor, " feature"]
    """Largest activation seen."""
    top_examples: list[list[Example]]
    """Per feature: top-activating tokens (at most one per context), in context."""
    quantile_examples: list[list[tuple[str, list[Example]]]]
    """Per feature: (band label, examples) for quantile bands of its nonzero activations."""
    activation_samples: list[Float[torch.Tensor, " n"]]
    """Per feature: its nonzero activations (for the histogram)."""
    top_logits: list[list[tuple[str, float]]]
    """Per feature: tokens whose logits its decoder direction raises most."""
    bottom_logits: list[list[tuple[str, float]]]
    """... and lowers most."""
    n_tokens: int
    """Token positions evaluated."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary (for ``--json``): densities, maxima, top logits and each top example's token."""
        return {
            "features": self.features,
            "n_tokens": self.n_tokens,
            "density": self.density.tolist(),
            "max_activation": self.max_activation.tolist(),
            "top_logits": [[t for t, _ in row] for row in self.top_logits],
            "top_tokens": [[ex.tokens[ex.values.index(max(ex.values))] for ex in exs] for exs in self.top_examples],
        }


def parse_features(spec: str, d_sae: int) -> list[int]:
    """``"0-99"``, ``"3,17,40-42"`` -> indices, checked against ``d_sae``."""
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(p) for p in part.split("-", 1))
                out += list(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError as err:
            raise SAEConfigError(f"cannot read feature list {spec!r}; use e.g. '0-99' or '3,17,40-42'") from err
    bad = [f for f in out if not 0 <= f < d_sae]
    if bad or not out:
        raise SAEConfigError(f"features must lie in 0..{d_sae - 1}; got {bad[:5] or spec!r}")
    return out


def _window(
    model: HookedModel, ids: torch.Tensor, acts: torch.Tensor, pos: int, before: int, after: int
) -> tuple[list[str], list[float]]:
    lo, hi = max(0, pos - before), min(ids.shape[0], pos + after + 1)
    return model.to_str_tokens(ids[lo:hi]), [float(v) for v in acts[lo:hi]]


@torch.no_grad()
def feature_dashboard_data(
    model: HookedModel,
    sae: SAE,
    tokens: Int[torch.Tensor, "n_contexts context"],
    features: list[int],
    n_top: int = 8,
    n_bands: int = 4,
    per_band: int = 3,
    n_logits: int = 10,
    window: tuple[int, int] = (16, 4),
    batch_size: int = 8,
    on_progress: OnProgress | None = None,
) -> FeatureDashboardData:
    """Run ``model`` over ``tokens`` up to the SAE's hook and gather each feature's examples and logit effects.

    ``on_progress(stage, done, total)`` is told the batches run (``Dashboard: activations``).
    """
    model.hook_point(sae.cfg.hook_name)
    if not features:
        raise SAEConfigError("choose at least one feature")
    idx = torch.tensor(features, dtype=torch.long)
    acts_all = _feature_acts(model, sae, tokens, idx, batch_size, on_progress)  # [n, pos, feature]
    top_examples: list[list[Example]] = []
    quantiles: list[list[tuple[str, list[Example]]]] = []
    samples: list[torch.Tensor] = []
    for j in range(len(features)):
        a = acts_all[..., j]
        best_per_ctx, best_pos = a.max(dim=1)
        order = [c for c in best_per_ctx.argsort(descending=True)[:n_top].tolist() if best_per_ctx[c] > 0]
        top_examples.append([_example(model, tokens, a, c, int(best_pos[c]), window) for c in order])
        nz = a.flatten()
        samples.append(nz[nz > 0])
        bands = _band_rows(a, j, n_bands, per_band)
        quantiles.append([(label, [_example(model, tokens, a, c, p, window) for c, p in at]) for label, at in bands])
    top_logits, bottom_logits = logit_effects(model, sae, idx, n_logits)
    return FeatureDashboardData(
        features=list(features),
        density=(acts_all > 0).float().mean((0, 1)),
        max_activation=acts_all.amax((0, 1)),
        top_examples=top_examples,
        quantile_examples=quantiles,
        activation_samples=samples,
        top_logits=top_logits,
        bottom_logits=bottom_logits,
        n_tokens=acts_all.shape[0] * acts_all.shape[1],
    )


def _feature_acts(
    model: HookedModel,
    sae: SAE,
    tokens: Int[torch.Tensor, "n_contexts context"],
    idx: Int[torch.Tensor, " feature"],
    batch_size: int,
    on_progress: OnProgress | None,
) -> Float[torch.Tensor, "n_contexts context feature"]:
    """The chosen features' activations on every token (zero where the SAE skips a token, e.g. BOS), on the CPU."""
    hook = sae.cfg.hook_name
    chunks = []
    for rows in track(batch_slices(tokens.shape[0], batch_size), "Dashboard: activations", on_progress):
        ids = tokens[rows].to(model.device)
        x = model.cache_activations(ids, hook)[hook]
        acts = sae.encode(x)[..., idx].float().cpu()
        mask = _skip_mask(model, sae, ids, None)
        if mask is not None:
            acts = acts.masked_fill(mask[..., None].cpu(), 0.0)
        chunks.append(acts)
    return torch.cat(chunks)


def _example(
    model: HookedModel, tokens: torch.Tensor, a: torch.Tensor, c: int, p: int, window: tuple[int, int]
) -> Example:
    """The example at context ``c``, position ``p`` of one feature's activations ``a`` [context, pos]."""
    toks, vals = _window(model, tokens[c], a[c], p, *window)
    return Example(c, p, float(a[c, p]), toks, vals)


def _band_rows(a: torch.Tensor, seed: int, n_bands: int, per_band: int) -> list[tuple[str, list[tuple[int, int]]]]:
    """Up to ``per_band`` seeded random (context, position) in each quantile band of the nonzero activations,
    highest band first, with the band's range as its label (no bands when the feature never fires)."""
    positive = a[a > 0]
    if not positive.numel():
        return []
    qs = torch.quantile(positive, torch.linspace(0, 1, n_bands + 1))
    flat_idx = (a > 0).nonzero()
    gen = torch.Generator().manual_seed(seed)
    bands = []
    for b in range(n_bands - 1, -1, -1):
        lo, hi = float(qs[b]), float(qs[b + 1])
        vals_at = a[flat_idx[:, 0], flat_idx[:, 1]]
        inside = flat_idx[(vals_at >= lo) & (vals_at <= hi)]
        pick = inside[torch.randperm(inside.shape[0], generator=gen)[:per_band]]
        bands.append((f"{lo:.3g} – {hi:.3g}", [(c, p) for c, p in pick.tolist()]))
    return bands


def logit_effects(
    model: HookedModel, sae: SAE, idx: Int[torch.Tensor, " feature"], n_logits: int
) -> tuple[list[list[tuple[str, float]]], list[list[tuple[str, float]]]]:
    """Per feature, the tokens whose logits its decoder direction boosts and suppresses most (``W_dec[f] @ W_U``)."""
    effects = sae.W_dec.detach()[idx].float() @ model.W_U.detach().float()  # [feature, d_vocab]
    top = effects.topk(n_logits, dim=-1)
    bottom = (-effects).topk(n_logits, dim=-1)
    decode = lambda i: str(model.to_string(int(i)))  # noqa: E731
    top_logits = [[(decode(i), float(v)) for v, i in zip(vs, ix, strict=True)] for vs, ix in zip(*top, strict=True)]
    bottom_logits = [
        [(decode(i), -float(v)) for v, i in zip(vs, ix, strict=True)] for vs, ix in zip(*bottom, strict=True)
    ]
    return top_logits, bottom_logits


def dashboard_summary(data: FeatureDashboardData) -> dict[str, Any]:
    """JSON-ready summary (for ``--json``): :meth:`FeatureDashboardData.to_json`, kept under its older name."""
    return data.to_json()
