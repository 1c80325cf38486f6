"""Mamba 2: every block is ``x + mixer(norm(x))``, a state-space-duality mixer with a gated RMSNorm.

Mamba's module names; only the mixer's internals differ (``mixer_kind``).
"""

from circuitscope.models.mamba import ADAPTER as MAMBA

ADAPTER = MAMBA.derive(family="mamba2", model_types=("mamba2",), mixer_kind="ssd")
