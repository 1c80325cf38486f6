"""Q-, K- and V-composition scores between attention heads (Elhage et al. 2021).

With row vectors (``x @ W``), head h's OV circuit is ``OV = W_V W_O`` and its QK circuit is
``QK = W_Q W_K^T`` (both [d_model, d_model]). When head A (earlier layer) writes into the
residual stream that head B (later layer) reads, the composition score is

    C(M_A, M_B) = ||M_A M_B||_F / (||M_A||_F ||M_B||_F)

with ``M_A = OV_A`` and ``M_B = QK_B`` (Q-composition: B's queries read A's output),
``QK_B^T`` (K-composition: B's keys read it) or ``OV_B`` (V-composition). For random matrices
it is about ``1 / sqrt(d_model)``; the result also carries an empirical baseline from Gaussian
matrices of the same shapes.

The scores use the weights as they are (nothing folded; fold LayerNorm first with
:func:`circuitscope.fold_layer_norm` if you want it in). Under grouped-query attention, query
head h uses key/value head ``h // (n_heads / n_kv_heads)``. Everything is computed through
the ``d_head``-sized factors (QR of W_V, W_K, W_Q and W_O^T), never the d_model x d_model
products, in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from jaxtyping import Float

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["CompositionScores", "composition_score", "composition_scores"]

Mode = Literal["q", "k", "v"]


@dataclass(frozen=True)
class CompositionScores:
    """Composition scores of every (earlier head, later head) pair; NaN where the layers do not compose."""

    q: Float[torch.Tensor, "layer_a head_a layer_b head_b"]
    """Q-composition: head b's queries read head a's output."""
    k: Float[torch.Tensor, "layer_a head_a layer_b head_b"]
    """K-composition: head b's keys read head a's output."""
    v: Float[torch.Tensor, "layer_a head_a layer_b head_b"]
    """V-composition: head b's values read head a's output."""
    baseline: dict[str, float]
    """Mean score of Gaussian matrices of the same shapes, per mode (``q``, ``k``, ``v``)."""
    d_model: int
    """Residual width; ``1/sqrt(d_model)`` is the textbook baseline."""

    @property
    def baseline_theory(self) -> float:
        """``1 / sqrt(d_model)``."""
        return 1.0 / math.sqrt(self.d_model)

    def scores(self, mode: Mode) -> Float[torch.Tensor, "layer_a head_a layer_b head_b"]:
        if mode not in ("q", "k", "v"):
            raise ValueError(f"mode must be 'q', 'k' or 'v', got {mode!r}")
        return {"q": self.q, "k": self.k, "v": self.v}[mode]

    def top(self, mode: Mode, n: int = 10) -> list[tuple[int, int, int, int, float]]:
        """The ``n`` strongest pairs as (layer_a, head_a, layer_b, head_b, score)."""
        s = self.scores(mode)
        flat = torch.nan_to_num(s, nan=-1.0).flatten()
        values, index = flat.topk(min(n, int((~s.isnan()).sum())))
        out = []
        for v, i in zip(values, index, strict=True):
            la, ha, lb, hb = torch.unravel_index(i, s.shape)
            out.append((int(la), int(ha), int(lb), int(hb), float(v)))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN entries become null)."""

        def clean(t: torch.Tensor) -> Any:
            return [[[[None if math.isnan(x) else x for x in r] for r in m] for m in h] for h in t.tolist()]

        return {
            "q": clean(self.q),
            "k": clean(self.k),
            "v": clean(self.v),
            "baseline": self.baseline,
            "baseline_theory": self.baseline_theory,
        }


def composition_score(
    left: Float[torch.Tensor, "... d_in d_mid"], right: Float[torch.Tensor, "... d_mid d_out"]
) -> Float[torch.Tensor, "..."]:
    """``||left @ right||_F / (||left||_F ||right||_F)`` for full matrices (the definition, for reference)."""
    num = (left @ right).flatten(-2).norm(dim=-1)
    return num / (left.flatten(-2).norm(dim=-1) * right.flatten(-2).norm(dim=-1))


_GRAM_MAX_D_MODEL = 2048  # above this, per-head [d_model, d_model] Gram matrices take too much memory


def _r(x: torch.Tensor) -> torch.Tensor:
    """R of the reduced QR of ``x`` [..., d_model, d_head]: ``||Q R M||_F = ||R M||_F`` for any M."""
    return torch.linalg.qr(x, mode="r").R


def _all_scores(
    W_Q: torch.Tensor, W_K: torch.Tensor, W_V: torch.Tensor, W_O: torch.Tensor, n_heads: int
) -> dict[str, torch.Tensor]:
    """Scores [layer_a, head_a, layer_b, head_b] for pairs with layer_a < layer_b (zero elsewhere).

    With ``W_V[a] = Q R_V[a]``, ``W_K[b] = Q' R_K[b]``, ``W_Q[b] = Q'' R_Q[b]``, ``W_O[b]^T = Q''' R_Ot[b]``:
    ``||OV_a QK_b|| = ||R_V[a] (W_O[a] W_Q[b]) R_K[b]^T||``, ``||OV_a QK_b^T|| = ||R_V[a] (W_O[a] W_K[b]) R_Q[b]^T||``,
    ``||OV_a OV_b|| = ||R_V[a] (W_O[a] W_V[b]) R_Ot[b]^T||``: products of d_head x d_head matrices only.
    """
    rep = n_heads // W_K.shape[1]
    W_K = W_K.repeat_interleave(rep, dim=1)  # [layer, head, d_model, d_head]
    W_V = W_V.repeat_interleave(rep, dim=1)
    R_Q, R_K, R_V, R_Ot = _r(W_Q), _r(W_K), _r(W_V), _r(W_O.transpose(-1, -2))  # [layer, head, d_head, d_head]
    ov_norm = (R_V @ W_O).flatten(-2).norm(dim=-1)  # ||W_V W_O||_F, [layer, head]
    qk_norm = (R_Q @ R_K.transpose(-1, -2)).flatten(-2).norm(dim=-1)  # ||W_Q W_K^T||_F
    n_layers = W_Q.shape[0]
    out = {m: torch.zeros(n_layers, n_heads, n_layers, n_heads, dtype=W_Q.dtype) for m in ("q", "k", "v")}
    d_model = W_Q.shape[2]
    if d_model <= _GRAM_MAX_D_MODEL:
        # ||OV_a M_b||_F^2 = <(R_V W_O)_a^T (R_V W_O)_a, B_b B_b^T>_F with M_b = W_middle R_right^T = B_b:
        # one [d_model, d_model] Gram matrix per head and one inner product per pair
        writer = R_V @ W_O  # [layer, head, d_head, d_model]
        gram_a = writer.transpose(-1, -2) @ writer  # [layer, head, d_model, d_model]
        for mode, middle, right, norm_b in (
            ("q", W_Q, R_K, qk_norm),
            ("k", W_K, R_Q, qk_norm),
            ("v", W_V, R_Ot, ov_norm),
        ):
            reader = middle @ right.transpose(-1, -2)  # [layer, head, d_model, d_head]
            gram_b = reader @ reader.transpose(-1, -2)
            num = torch.einsum("ahij,bkij->ahbk", gram_a, gram_b).clamp_min(0).sqrt()
            out[mode] = num / (ov_norm[:, :, None, None] * norm_b[None, None])
        layer = torch.arange(n_layers)
        later = (layer[:, None] < layer[None, :])[:, None, :, None]
        return {m: torch.where(later, s, torch.zeros_like(s)) for m, s in out.items()}
    for a in range(n_layers - 1):
        later = slice(a + 1, n_layers)
        for mode, middle, right, norm_b in (
            ("q", W_Q, R_K, qk_norm),
            ("k", W_K, R_Q, qk_norm),
            ("v", W_V, R_Ot, ov_norm),
        ):
            mid = torch.einsum("iem,bjmf->ibjef", W_O[a], middle[later])  # W_O[a] @ middle[b]: [ha, lb, hb, e, f]
            left = torch.einsum("ixe,ibjef->ibjxf", R_V[a], mid)
            full = torch.einsum("ibjxf,bjyf->ibjxy", left, right[later])
            score = full.flatten(-2).norm(dim=-1) / (ov_norm[a][:, None, None] * norm_b[later][None])
            out[mode][a, :, later] = score
    return out


def composition_scores(model: HookedModel, baseline_samples: int = 16, seed: int = 0) -> CompositionScores:
    """Q-, K- and V-composition for every pair of heads in different layers (earlier -> later).

    ``baseline_samples`` Gaussian models of the same shapes give the empirical random baseline.
    """
    cfg = model.cfg
    with torch.no_grad():
        W = [t.detach().double().cpu() for t in (model.W_Q, model.W_K, model.W_V, model.W_O)]
        raw = _all_scores(W[0], W[1], W[2], W[3], cfg.n_heads)
        layer = torch.arange(cfg.n_layers)
        later = (layer[:, None] < layer[None, :])[:, None, :, None].expand(-1, cfg.n_heads, -1, cfg.n_heads)
        nan = torch.tensor(float("nan"), dtype=torch.float64)
        out = {m: torch.where(later, s, nan).float() for m, s in raw.items()}
        gen = torch.Generator().manual_seed(seed)
        sums: dict[str, float] = dict.fromkeys(("q", "k", "v"), 0.0)
        for _ in range(baseline_samples):
            # two layers of one head each, Gaussian, same shapes as a real head
            G = [torch.randn(2, 1, *w.shape[2:], generator=gen, dtype=torch.float64) for w in W]
            rnd = _all_scores(G[0], G[1], G[2], G[3], 1)
            for m in sums:
                sums[m] += float(rnd[m][0, 0, 1, 0]) / baseline_samples
    return CompositionScores(q=out["q"], k=out["k"], v=out["v"], baseline=sums, d_model=cfg.d_model)
