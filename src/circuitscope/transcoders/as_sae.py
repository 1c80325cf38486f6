"""One layer's transcoder features as an :class:`~circuitscope.sae.SAE`, for what reads features: dashboards, a
prompt's feature activations, a feature's direction.

The SAE has the layer's encoder and nonlinearity exactly (``encode`` equals ``TranscoderSet.encode(layer, .)``;
``apply_b_dec_to_input`` off), reads the layer's input hook, and has as decoder row ``W_dec[f]`` the sum of what
feature ``f`` writes to the MLP outputs it reaches (its own layer's, and later ones for cross-layer transcoders):
its direct write to the residual stream, so ``W_dec @ W_U`` is its direct logit effect. It is not a
reconstruction of its input: do not splice it in place of the hook it reads.
"""

from __future__ import annotations

import torch

from circuitscope.sae.base import SAE, SAEConfig, create_sae
from circuitscope.sae.jumprelu import JumpReLUSAE
from circuitscope.transcoders.errors import TranscoderModelError
from circuitscope.transcoders.modules import TranscoderSet

__all__ = ["layer_as_sae"]


@torch.no_grad()
def layer_as_sae(transcoders: TranscoderSet, layer: int) -> SAE:
    """Layer ``layer``'s features as an SAE over its transcoder's input (see the module docstring)."""
    c = transcoders.cfg
    i = transcoders.index(layer)
    if c.d_in != c.d_out:
        raise TranscoderModelError(
            f"these transcoders read width {c.d_in} and write width {c.d_out}: an SAE's decoder writes what it reads"
        )
    shared = {name: getattr(c, name) for name in ("architecture", "d_in", "d_sae", "k", "model_name", "exclude_bos")}
    cfg = SAEConfig(**shared, apply_b_dec_to_input=False, hook_name=transcoders.input_hook(layer), dtype=c.dtype)
    sae = create_sae(cfg)
    sae.W_enc.copy_(transcoders.W_enc[i])
    sae.b_enc.copy_(transcoders.b_enc[i])
    sae.W_dec.copy_(torch.stack([dec for _, dec in transcoders.decoders(layer)]).sum(0))
    if isinstance(sae, JumpReLUSAE):
        assert transcoders.threshold is not None
        sae.threshold.copy_(transcoders.threshold[i])
    return sae.requires_grad_(False)
