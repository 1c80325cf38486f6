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

from circuitscope.models._layouts import base_model, dense_mlp, separate_qkv
from circuitscope.models.base import Adapter

__all__ = ["ADAPTER", "register_auto_classes"]

ADAPTER = Adapter(
    family="toy",
    model_types=("circuitscope_toy",),
    **base_model("", layers="blocks", embed="embed", pos_embed="pos_embed", final_norm="ln_final"),
    unembed="unembed",
    **separate_qkv("attn", norm="ln1", q="q", k="k", v="v", o="o"),
    **dense_mlp("mlp", norm="ln2", up="W_in", down="W_out"),
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
