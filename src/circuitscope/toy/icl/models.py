"""The two models of the in-context regression lab: linear self-attention and a small softmax transformer.

Both read a task as ``n + 1`` tokens of width ``d + 1``: the context pairs ``e_i = (x_i, y_i)`` and
the query ``(x_q, 0)`` last; every position attends to the ``n`` context tokens only (the query is
never a key, so its empty ``y`` cannot leak in), and nothing depends on the positions, so either
model runs on any number of context pairs.

:class:`LinearSelfAttention` is the model of von Oswald et al. (2023): residual layers
``e_j <- e_j + sum_h W_PV[h] (1/n) sum_i e_i (e_i . W_KQ[h] e_j)``, no softmax, no norm, with the
merged matrices ``W_KQ = W_K^T W_Q`` and ``W_PV = P W_V`` as its parameters; its prediction is
minus the query's ``y`` entry after the last layer (the paper's sign, under which the
gradient-descent construction reads ``W_PV = [[0, 0], [0, -eta]]``, ``W_KQ = [[I, 0], [0, 0]]``).
Hook names: ``blocks.L.hook_resid_pre``, ``blocks.L.attn.hook_q`` (``W_KQ e``, [batch pos head d+1]),
``hook_k`` (``e``), ``hook_v`` (``W_PV e``), ``hook_pattern`` ([batch head query key], the scores divided
by ``n``, zero on the query's key), ``hook_z`` (each head's write, [batch pos head d+1]),
``blocks.L.hook_attn_out``, ``blocks.L.hook_resid_post``.

:class:`SoftmaxRegressor` is a pre-LayerNorm softmax transformer: an input projection of
``(x, y, is_query)`` to ``d_model`` (``hook_embed``), blocks of attention (``hook_q``/``hook_k``/``hook_v``
[batch pos head d_head], ``hook_attn_scores``, ``hook_pattern``, ``hook_z``, ``hook_attn_out``,
``hook_resid_mid``) and a GELU MLP (``hook_mlp_out``, ``hook_resid_post``), a final LayerNorm
(``ln_final.hook_normalized``) and a linear readout at the query.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import nn

from circuitscope.toy.icl.hooked import HookedRegressor

__all__ = ["LinearSelfAttention", "SoftmaxRegressor", "context_mask"]


def context_mask(n_tokens: int, device: torch.device | None = None) -> torch.Tensor:
    """[query, key] booleans: True where the key is a context token (every key but the last, the query)."""
    keys = torch.arange(n_tokens, device=device) < n_tokens - 1
    return keys[None, :].expand(n_tokens, n_tokens)


class LinearSelfAttention(HookedRegressor):
    """Residual linear self-attention layers on ``(x, y)`` tokens; see the module docstring."""

    def __init__(self, d: int, n_layers: int = 1, n_heads: int = 1, init_std: float = 0.05) -> None:
        super().__init__()
        self.d, self.n_layers, self.n_heads = d, n_layers, n_heads
        width = d + 1
        self.W_KQ = nn.Parameter(torch.randn(n_layers, n_heads, width, width) * init_std)
        """[layer head d+1 d+1]: the merged key-query matrix ``W_K^T W_Q`` of each head."""
        self.W_PV = nn.Parameter(torch.randn(n_layers, n_heads, width, width) * init_std)
        """[layer head d+1 d+1]: the merged value-output matrix ``P W_V`` of each head."""
        self._layers = []
        for layer in range(n_layers):
            names = ("hook_resid_pre", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_pattern")
            names += ("attn.hook_z", "hook_attn_out", "hook_resid_post")
            self._layers.append({n: self._add_point(f"blocks.{layer}.{n}", layer) for n in names})

    def forward(self, tokens: Float[torch.Tensor, "batch pos d_plus_1"]) -> Float[torch.Tensor, " batch"]:
        n_context = tokens.shape[1] - 1
        mask = context_mask(tokens.shape[1], tokens.device).to(tokens.dtype) / max(n_context, 1)
        resid = tokens
        for layer, points in enumerate(self._layers):
            resid = points["hook_resid_pre"](resid)
            q = points["attn.hook_q"](torch.einsum("bpe,hfe->bphf", resid, self.W_KQ[layer]))
            k = points["attn.hook_k"](resid[:, :, None, :].expand(-1, -1, self.n_heads, -1))
            v = points["attn.hook_v"](torch.einsum("bpe,hfe->bphf", resid, self.W_PV[layer]))
            pattern = points["attn.hook_pattern"](torch.einsum("bkhf,bqhf->bhqk", k, q) * mask)
            z = points["attn.hook_z"](torch.einsum("bhqk,bkhf->bqhf", pattern, v))
            resid = points["hook_resid_post"](resid + points["hook_attn_out"](z.sum(2)))
        return -resid[:, -1, self.d]

    def merged_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W_KQ, W_PV)``, detached, [layer head d+1 d+1]."""
        return self.W_KQ.detach().clone(), self.W_PV.detach().clone()


class _Block(nn.Module):
    """One pre-LayerNorm softmax attention + MLP block with its hook points."""

    def __init__(self, model: SoftmaxRegressor, layer: int, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))
        names = ("hook_resid_pre", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_attn_scores")
        names += ("attn.hook_pattern", "attn.hook_z", "hook_attn_out", "hook_resid_mid", "hook_mlp_out")
        self.points = {n: model._add_point(f"blocks.{layer}.{n}", layer) for n in (*names, "hook_resid_post")}

    def forward(self, resid: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        p = self.points
        resid = p["hook_resid_pre"](resid)
        batch, pos, _ = resid.shape
        q, k, v = self.qkv(self.ln1(resid)).view(batch, pos, 3, self.n_heads, self.d_head).unbind(2)
        q, k, v = p["attn.hook_q"](q), p["attn.hook_k"](k), p["attn.hook_v"](v)
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(self.d_head)
        scores = p["attn.hook_attn_scores"](scores.masked_fill(~mask, float("-inf")))
        pattern = p["attn.hook_pattern"](scores.softmax(-1))
        z = p["attn.hook_z"](torch.einsum("bhqk,bkhe->bqhe", pattern, v))
        resid = p["hook_resid_mid"](resid + p["hook_attn_out"](self.out(z.reshape(batch, pos, -1))))
        return p["hook_resid_post"](resid + p["hook_mlp_out"](self.mlp(self.ln2(resid))))


class SoftmaxRegressor(HookedRegressor):
    """A small softmax-attention transformer on ``(x, y)`` tokens; see the module docstring."""

    def __init__(self, d: int, n_layers: int = 2, d_model: int = 64, n_heads: int = 4) -> None:
        super().__init__()
        self.d = d
        self.embed = nn.Linear(d + 2, d_model)
        self._embed_point = self._add_point("hook_embed")
        self.blocks = nn.ModuleList(_Block(self, layer, d_model, n_heads) for layer in range(n_layers))
        self.ln_final = nn.LayerNorm(d_model)
        self._final_point = self._add_point("ln_final.hook_normalized")
        self.readout = nn.Linear(d_model, 1)

    def forward(self, tokens: Float[torch.Tensor, "batch pos d_plus_1"]) -> Float[torch.Tensor, " batch"]:
        batch, pos, _ = tokens.shape
        is_query = torch.zeros(batch, pos, 1, dtype=tokens.dtype, device=tokens.device)
        is_query[:, -1] = 1.0
        resid = self._embed_point(self.embed(torch.cat([tokens, is_query], -1)))
        mask = context_mask(pos, tokens.device) | torch.eye(pos, dtype=torch.bool, device=tokens.device)
        for block in self.blocks:
            resid = block(resid, mask)
        return self.readout(self._final_point(self.ln_final(resid[:, -1:])))[:, 0, 0]
