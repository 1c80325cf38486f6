"""Mamba: every block is ``x + mixer(norm(x))``, a selective state-space mixer (no attention, no MLP)."""

from circuitscope.models._layouts import base_model, state_space_mixer
from circuitscope.models.base import Adapter

ADAPTER = Adapter(
    family="mamba",
    model_types=("mamba",),
    **base_model("backbone", layers="layers", embed="embeddings", final_norm="norm_f", bare=True),
    unembed="lm_head",
    ln1="norm",
    **state_space_mixer("mixer", kind="selective_scan"),
)
