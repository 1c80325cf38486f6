"""Mamba: every block is ``x + mixer(norm(x))``, a selective state-space mixer (no attention, no MLP)."""

from circuitscope.models.base import Adapter

# Same shape as the other adapters on purpose: one line per module path of this family (see models/base.py).
ADAPTER = Adapter(
    family="mamba",
    model_types=("mamba",),
    layers=("backbone.layers", "layers"),
    embed=("backbone.embeddings", "embeddings"),
    final_norm=("backbone.norm_f", "norm_f"),
    unembed="lm_head",
    ln1="norm",
    mixer="mixer",
    mixer_kind="selective_scan",
)
