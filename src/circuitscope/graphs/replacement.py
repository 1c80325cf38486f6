"""The local replacement model of one prompt: linear in its active features, error terms and embeddings.

:func:`local_replacement` runs the real model once on the prompt, with the transcoders reading every MLP's
input, and records what the replacement model needs:

- the **active features** (layer, position, index, activation) of every layer's transcoder;
- the **error** of every (layer, position): the true ``hook_mlp_out`` minus the transcoders' estimate;
- the **embeddings** (the residual stream entering block 0) per position;
- every **attention pattern** and every **norm's scale**, to be held fixed (graphs/frozen.py).

:meth:`LocalReplacement.run` then runs the model with the patterns and scales frozen, the embeddings as given
and every MLP output replaced by ``error + b_dec + sum of active features x decoder rows (+ skip of the
input)`` (the MLPs, queries and keys are not computed: graphs/frozen.py): with the recorded values it
reproduces the real model's activations (up to rounding), and it is affine in the embeddings, errors and
feature activations, which :class:`FrozenPass` exposes as tensors that
require gradients (the points where the sources write). Positions holding BOS, when the transcoders were
trained without it, have no features: their MLP output is all error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float, Int

from circuitscope.errors import UnsupportedAnalysisError
from circuitscope.graphs.frozen import frozen_norms, pattern_hooks, record_scales, skipped_projections
from circuitscope.transcoders.errors import TranscoderModelError
from circuitscope.transcoders.modules import TranscoderSet

if TYPE_CHECKING:
    from circuitscope.core.hook_points import HookPoint
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["ActiveFeatures", "FrozenPass", "LocalReplacement", "Sources", "check_replaceable", "local_replacement"]


def check_replaceable(model: HookedModel, transcoders: TranscoderSet) -> None:
    """Refuse, before any work, a model the replacement cannot freeze or transcoders that do not cover it."""
    cfg = model.cfg
    experts = any(getattr(block, "moe", None) is not None for block in model.wiring.blocks)
    if not cfg.causal or cfg.residual != "pre_norm" or cfg.mixer_layers or experts:
        raise UnsupportedAnalysisError(
            f"attribution graphs need a causal pre-norm transformer with dense MLPs; {cfg.family} "
            f"({cfg.residual} residual{', state-space layers' if cfg.mixer_layers else ''}"
            f"{', experts' if experts else ''}) is not one"
        )
    transcoders.check(model)
    if tuple(transcoders.layers) != tuple(range(cfg.n_layers)):
        raise TranscoderModelError(
            f"an attribution graph needs a transcoder on every layer (0..{cfg.n_layers - 1}); these cover "
            f"{list(transcoders.layers)}: train transcoders for all layers of this model"
        )


@dataclass(frozen=True)
class ActiveFeatures:
    """The features active on the prompt, one entry each, ordered by layer, then position, then index
    (the order of the graph's feature nodes)."""

    layer: Int[torch.Tensor, " n"]
    """Each feature's layer."""
    position: Int[torch.Tensor, " n"]
    """Its prompt position."""
    index: Int[torch.Tensor, " n"]
    """Its index in its layer's transcoder."""
    activation: Float[torch.Tensor, " n"]
    """Its activation on the prompt."""

    def __len__(self) -> int:
        return int(self.layer.shape[0])


@dataclass(frozen=True)
class Sources:
    """Values of the replacement model's sources; each may carry a leading batch axis (one row per run)."""

    embed: Float[torch.Tensor, "*batch pos d_model"]
    """The residual stream entering block 0 (token and position embeddings)."""
    errors: Float[torch.Tensor, "*batch layer pos d_model"]
    """Each layer's MLP error term."""
    acts: Float[torch.Tensor, "*batch n"]
    """Each active feature's activation (in :class:`ActiveFeatures` order)."""


@dataclass
class FrozenPass:
    """One forward pass of the replacement model, its graph kept for backward passes."""

    embed: Float[torch.Tensor, "batch pos d_model"]
    """Where the embeddings write (requires grad)."""
    writes: list[torch.Tensor]
    """Per layer, where the features and the error write into ``hook_mlp_out`` (requires grad), [batch pos d]."""
    inputs: list[torch.Tensor]
    """Per layer, what its transcoder reads, [batch pos d_in] (linear in the sources)."""
    final: Float[torch.Tensor, "batch pos d_model"]
    """``ln_final.hook_normalized`` (linear in the sources)."""
    logits: Float[torch.Tensor, "batch pos d_vocab"]
    """The replacement model's logits (empty after ``run(..., logits=False)``)."""


@dataclass(frozen=True)
class LocalReplacement:
    """What one real forward pass on the prompt fixes: the active features, the errors and embeddings, the
    attention patterns and the norms' scales (and the real logits and pre-activations, for checks)."""

    tokens: Int[torch.Tensor, " pos"]
    """The prompt."""
    features: ActiveFeatures
    """The active features."""
    errors: Float[torch.Tensor, "layer pos d_model"]
    """Each layer's error: the true MLP output minus the transcoders' estimate."""
    embed: Float[torch.Tensor, "pos d_model"]
    """The residual stream entering block 0."""
    patterns: list[torch.Tensor]
    """Per layer, the attention pattern [1, head, pos, pos]."""
    scales: list[torch.Tensor]
    """Per norm (graphs/frozen.py ``norm_modules`` order), the scale [1, pos, 1]."""
    logits: Float[torch.Tensor, "pos d_vocab"]
    """The real model's logits."""
    pre_acts: list[torch.Tensor]
    """Per layer, every feature's encoder pre-activation on the real input [pos, d_sae]."""

    @property
    def sources(self) -> Sources:
        return Sources(self.embed, self.errors, self.features.activation)

    def feature_writes(self, transcoders: TranscoderSet, target: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The features writing to layer ``target``'s MLP output: their indices among the active features [k] and
        their decoder rows [k, d_out] (not yet times their activations)."""
        f = self.features
        picked: list[torch.Tensor] = []
        rows: list[torch.Tensor] = []
        for source in transcoders.sources(target):
            decoder = dict(transcoders.decoders(source))[target]
            ids = torch.nonzero(f.layer == source).flatten()
            picked.append(ids)
            rows.append(decoder.detach()[f.index[ids]])
        d_out = transcoders.cfg.d_out
        if not picked:
            return torch.zeros(0, dtype=torch.long), torch.zeros(0, d_out)
        return torch.cat(picked), torch.cat(rows)

    def run(
        self,
        model: HookedModel,
        transcoders: TranscoderSet,
        sources: Sources | None = None,
        *,
        batch: int = 1,
        logits: bool = True,
    ) -> FrozenPass:
        """Run the replacement model on ``batch`` copies of the prompt (``sources``: the recorded ones);
        ``logits=False`` stops after the final norm (no unembedding: ``FrozenPass.logits`` is then empty)."""
        src = self.sources if sources is None else sources
        n_layers, pos = self.errors.shape[0], self.tokens.shape[0]
        dtype = self.embed.dtype
        same = src.acts.dim() == 1 and src.errors.dim() == 3  # one set of sources: the writes computed once
        rows_in = 1 if same else batch
        acts = src.acts.to(dtype).expand(rows_in, -1)
        errors = src.errors.to(dtype).expand(rows_in, n_layers, pos, -1)
        embed = src.embed.to(dtype).expand(batch, pos, -1).clone().requires_grad_(True)
        writes: list[torch.Tensor] = []
        for layer in range(n_layers):
            ids, rows = self.feature_writes(transcoders, layer)
            value = errors[:, layer] + transcoders.decoder_bias(layer).detach().to(dtype)
            if len(ids):
                contrib = acts[:, ids, None] * rows.to(dtype)  # [rows_in, k, d]
                value = value.index_add(1, self.features.position[ids], contrib)
            writes.append(value.expand(batch, -1, -1).clone().requires_grad_(True))
        inputs: list[torch.Tensor] = [torch.empty(0)] * n_layers

        def set_embed(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
            return embed

        def read(layer: int) -> Any:
            def hook(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
                inputs[layer] = x
                return x

            return hook

        def write(layer: int) -> Any:
            skip = transcoders.skip(layer)

            def hook(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
                out = writes[layer]
                return out if skip is None else out + inputs[layer] @ skip.to(dtype)

            return hook

        hooks: list[tuple[str, Any]] = [("blocks.0.hook_resid_pre", set_embed), *pattern_hooks(self.patterns)]
        for layer in range(n_layers):
            hooks += [(transcoders.input_hook(layer), read(layer)), (transcoders.output_hook(layer), write(layer))]
        tokens = self.tokens[None].expand(batch, -1)
        final = "ln_final.hook_normalized"
        with torch.enable_grad(), frozen_norms(model, self.scales), skipped_projections(model):
            out, cache = model.run_with_cache(tokens, final, stop_early=not logits, grad=True, fwd_hooks=hooks)
        return FrozenPass(embed, writes, inputs, cache[final], torch.empty(0) if out is None else out)


def _bos_positions(model: HookedModel, transcoders: TranscoderSet, tokens: torch.Tensor) -> torch.Tensor:
    """Boolean [pos]: the positions with no features (BOS at position 0, for transcoders trained without it)."""
    out = torch.zeros(tokens.shape, dtype=torch.bool)
    bos = model.tokenizer.bos_token_id if model.tokenizer is not None else None
    if transcoders.cfg.exclude_bos and bos is not None and int(tokens[0]) == bos:
        out[0] = True
    return out


def local_replacement(
    model: HookedModel, transcoders: TranscoderSet, tokens: Int[torch.Tensor, " pos"]
) -> LocalReplacement:
    """Run the real model once on ``tokens`` (one prompt) and fix everything the replacement model holds."""
    check_replaceable(model, transcoders)
    n_layers = model.cfg.n_layers
    names = ["blocks.0.hook_resid_pre"]
    for layer in range(n_layers):
        names += [transcoders.input_hook(layer), transcoders.output_hook(layer), f"blocks.{layer}.attn.hook_pattern"]
    with torch.no_grad(), record_scales(model) as scales:
        logits, cache = model.run_with_cache(tokens[None], names=names)
    no_features = _bos_positions(model, transcoders, tokens)
    layer_ids, positions, indices, values, pre_acts = [], [], [], [], []
    inputs = {layer: cache[transcoders.input_hook(layer)][0].detach() for layer in range(n_layers)}
    acts: dict[int, torch.Tensor] = {}
    with torch.no_grad():
        for layer in range(n_layers):
            pre = transcoders.pre_acts(layer, inputs[layer])
            a = transcoders.activation(layer, pre)
            a[no_features] = 0
            acts[layer] = a
            pre_acts.append(pre.detach())
            pos, idx = torch.nonzero(a, as_tuple=True)
            layer_ids.append(torch.full_like(pos, layer))
            positions.append(pos)
            indices.append(idx)
            values.append(a[pos, idx].detach())
        errors = torch.stack(
            [
                cache[transcoders.output_hook(layer)][0].to(transcoders.b_dec.dtype)
                - transcoders.estimate(layer, acts, inputs[layer])
                for layer in range(n_layers)
            ]
        )
    features = ActiveFeatures(torch.cat(layer_ids), torch.cat(positions), torch.cat(indices), torch.cat(values))
    dtype = cache["blocks.0.hook_resid_pre"].dtype
    return LocalReplacement(
        tokens=tokens,
        features=features,
        errors=errors.to(dtype),
        embed=cache["blocks.0.hook_resid_pre"][0].detach(),
        patterns=[cache[f"blocks.{layer}.attn.hook_pattern"].detach() for layer in range(n_layers)],
        scales=list(scales),
        logits=logits[0].detach(),
        pre_acts=pre_acts,
    )
