"""Mamba 2: every block is ``x + mixer(norm(x))``, a state-space-duality mixer with a gated RMSNorm."""

from circuitscope.models.base import Adapter

# Same shape as the other adapters on purpose: one line per module path of this family (see models/base.py).
ADAPTER = Adapter(
    family="mamba2",
    model_types=("mamba2",),
    layers=("backbone.layers", "layers"),
    embed=("backbone.embeddings", "embeddings"),
    final_norm=("backbone.norm_f", "norm_f"),
    unembed="lm_head",
    ln1="norm",
    mixer="mixer",
    mixer_kind="ssd",
)
