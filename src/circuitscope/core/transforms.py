"""Explicit weight transforms: folding norms, centring writing weights, centring the unembedding.

circuitscope never applies these on its own: a loaded model has the Hugging Face
weights. Each function edits the model in place (under ``torch.no_grad``) and says what
it preserves:

- :func:`fold_layer_norm`: the norms' elementwise weight (and LayerNorm bias) move into
  the linear maps that read the normed stream. Logits are unchanged (up to float rounding);
  ``ln*.hook_normalized`` becomes the bare normalised stream.
- :func:`center_writing_weights`: everything written into the residual stream gets zero
  mean over ``d_model``. Logits are unchanged for LayerNorm families (their norms centre
  anyway); refused for RMSNorm families, where it would change the model.
- :func:`center_unembed`: the unembedding gets zero mean over the vocabulary. Logits shift
  by a constant per position; log-probabilities are unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from circuitscope.core.hooked_model import HookedModel
from circuitscope.core.norms import frozen_norm
from circuitscope.core.readout import require_linear_readout
from circuitscope.errors import UnsupportedModelError

__all__ = ["center_unembed", "center_writing_weights", "fold_layer_norm"]


def _weight(module: nn.Module) -> torch.Tensor:
    w = module.weight
    assert isinstance(w, torch.Tensor)
    return w


def _fold_into(reader: nn.Module, scale: torch.Tensor, shift: torch.Tensor | None, conv1d: bool) -> None:
    """reader(w * x + b) == reader'(x): scale its input rows by w, absorb b into its bias."""
    w = _weight(reader)
    as_in_out = w if conv1d else w.T  # [d_in, d_out] view
    if shift is not None and bool(shift.any()):
        extra = shift.to(w.dtype) @ as_in_out
        bias = getattr(reader, "bias", None)
        if isinstance(bias, torch.Tensor):
            bias.add_(extra)
        else:
            reader.bias = nn.Parameter(extra.clone())  # type: ignore[assignment]
    as_in_out.mul_(scale.to(w.dtype)[:, None])


def _set_identity(norm: nn.Module) -> None:
    """Make a norm's elementwise weight the identity (and its bias zero), whatever its parametrisation."""
    if getattr(norm, "weight", None) is None and getattr(norm, "bias", None) is None:
        return  # a norm without parameters (OLMo's LayerNorm) is the identity's already
    w = _weight(norm)
    if isinstance(norm, nn.LayerNorm):
        w.fill_(1.0)
        if norm.bias is not None:
            norm.bias.zero_()
        return
    for value in (1.0, 0.0):  # Llama-style w, then Gemma-style (1 + w)
        w.fill_(value)
        if torch.allclose(frozen_norm(norm).weight, torch.ones_like(w, dtype=torch.float32), atol=1e-6):
            return
    raise UnsupportedModelError(f"cannot set {type(norm).__name__}'s weight to the identity")


def _untie_unembed(model: HookedModel) -> nn.Module:
    unembed = model.wiring.unembed
    if unembed is None:
        raise UnsupportedModelError("this model has no unembedding")
    w = _weight(unembed)
    if w.data_ptr() == model.W_E.data_ptr():
        unembed.weight = nn.Parameter(w.detach().clone())  # type: ignore[assignment]
        text = model.hf_model.config
        text.tie_word_embeddings = False
    return unembed


def _require_pre_norm(model: HookedModel, what: str) -> None:
    if model.cfg.residual == "post_norm":
        raise UnsupportedModelError(
            f"{what} needs norms that read the residual stream (pre-norm); the {model.cfg.family} family is post-norm"
        )
    if any(getattr(block, "moe", None) is not None for block in model.wiring.blocks):
        raise UnsupportedModelError(
            f"{what} is not implemented for mixture-of-experts MLPs (the {model.cfg.family} family): its router and "
            "experts' 3-D weights would need folding too; use the model's weights as they are"
        )


@torch.no_grad()
def fold_layer_norm(model: HookedModel) -> HookedModel:
    """Fold every pre-norm's weight (and bias) into the layers that read it. Logits are unchanged."""
    _require_pre_norm(model, "fold_layer_norm")
    require_linear_readout(model, "fold_layer_norm (the final norm folded into W_U)")
    conv1d = model.adapter.conv1d
    for block in model.wiring.blocks:
        attn_readers = (block.q, block.k, block.v, block.qkv)
        mlp_readers = (block.mlp_in, block.mlp_in_linear)
        if block.ln2 is None and model.cfg.residual == "parallel":  # one norm feeds both sublayers (GPT-J, Phi)
            attn_readers, mlp_readers = attn_readers + mlp_readers, ()
        for norm, readers in ((block.ln1, attn_readers), (block.ln2, mlp_readers)):
            if norm is None:
                continue
            frozen = frozen_norm(norm)
            for reader in readers:
                if reader is not None:
                    _fold_into(reader, frozen.weight, frozen.bias, conv1d)
            _set_identity(norm)
    final = model.wiring.final_norm
    if final is not None and model.wiring.unembed is not None:
        frozen = frozen_norm(final)
        _fold_into(_untie_unembed(model), frozen.weight, frozen.bias, conv1d=False)
        _set_identity(final)
    return model


def _center_out(module: nn.Module, conv1d: bool) -> None:
    w = _weight(module)
    out_dim = -1 if conv1d else 0  # the d_model axis of a writing weight
    w.sub_(w.mean(out_dim, keepdim=True))
    bias = getattr(module, "bias", None)
    if isinstance(bias, torch.Tensor):
        bias.sub_(bias.mean())


@torch.no_grad()
def center_writing_weights(model: HookedModel) -> HookedModel:
    """Give every write into the residual stream zero mean over d_model (LayerNorm families only)."""
    _require_pre_norm(model, "center_writing_weights")
    readers = [b.ln1 for b in model.wiring.blocks] + [b.ln2 for b in model.wiring.blocks] + [model.wiring.final_norm]
    if any(n is not None and not frozen_norm(n).center for n in readers):
        raise UnsupportedModelError(
            f"the {model.cfg.family} family uses RMSNorm, which does not centre: centring its writing weights "
            "would change the model"
        )
    if any(b.attn_out_norm is not None for b in model.wiring.blocks):
        raise UnsupportedModelError("a norm after the attention output writes the residual; cannot centre through it")
    if model.wiring.unembed is not None:
        _untie_unembed(model)  # the unembedding reads the stream; it must not move with W_E
    embed = _weight(model.wiring.embed)
    embed.sub_(embed.mean(-1, keepdim=True))
    if model.wiring.pos_embed is not None:
        pos = _weight(model.wiring.pos_embed)
        pos.sub_(pos.mean(-1, keepdim=True))
    for block in model.wiring.blocks:
        _center_out(block.o, model.adapter.conv1d)
        if block.mlp_down is not None:  # refused above for experts; None only for a block without an MLP
            _center_out(block.mlp_down, model.adapter.conv1d)
    return model


@torch.no_grad()
def center_unembed(model: HookedModel) -> HookedModel:
    """Give the unembedding zero mean over the vocabulary. Log-probabilities are unchanged."""
    unembed = _untie_unembed(model)
    w = _weight(unembed)  # [d_vocab, d_model]
    w.sub_(w.mean(0, keepdim=True))
    bias = getattr(unembed, "bias", None)
    if isinstance(bias, torch.Tensor):
        bias.sub_(bias.mean())
    return model
