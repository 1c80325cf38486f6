"""circuitscope's own small transformer (built by ``circuitscope.toy``): learned positions, optional LayerNorm.

The family's model classes live beside this adapter, in :mod:`circuitscope.models.toy.modeling`
(transformers does not ship them), so that the adapter can register them with transformers'
Auto classes without reaching up into ``circuitscope.toy``.

The module tree is ``embed``, ``pos_embed``, ``blocks[l].{ln1, attn.{q, k, v, o}, ln2, mlp.{W_in, W_out}}``,
``ln_final``, ``unembed``. Without LayerNorm the norms are ``nn.Identity`` (their hooks still fire,
unchanged); an attention-only model has an MLP of width 0 (it adds exactly zero to the residual stream).
"""

from __future__ import annotations

import contextlib

from circuitscope.models.base import Adapter

__all__ = ["ADAPTER", "register_auto_classes"]

# Same shape as the other adapters on purpose: one line per module path of this family (see models/base.py).
ADAPTER = Adapter(
    family="toy",
    model_types=("circuitscope_toy",),
    layers="blocks",
    embed="embed",
    pos_embed="pos_embed",
    final_norm="ln_final",
    unembed="unembed",
    ln1="ln1",
    ln2="ln2",
    attn="attn",
    q="attn.q",
    k="attn.k",
    v="attn.v",
    o="attn.o",
    attn_out="attn.o",
    mlp_in="mlp.W_in",
    mlp_down="mlp.W_out",
    mlp_out="mlp",
    register=lambda: register_auto_classes(),
)


def register_auto_classes() -> None:
    """Make ``AutoConfig`` / ``AutoModelForCausalLM`` know ``circuitscope_toy`` (idempotent).

    Called when a toy model is built or loaded, never at import time.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    from circuitscope.models.toy.modeling import ToyConfig, ToyTransformer

    with contextlib.suppress(ValueError):  # already registered
        AutoConfig.register(ToyConfig.model_type, ToyConfig)
    with contextlib.suppress(ValueError):
        AutoModelForCausalLM.register(ToyConfig, ToyTransformer)
