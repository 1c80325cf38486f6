"""The one check behind every analysis that reads logits linearly off the residual stream.

Direct logit attribution, OV copying scores, an SAE feature's logit effects and folding the final norm
into the unembedding all take the logits to be ``W_U`` applied to the normed residual stream. A family
with a nonlinear prediction head between the final norm and the unembedding (``Adapter.unembed_head``,
ModernBERT's dense, activation and LayerNorm) breaks that, so those analyses call
:func:`require_linear_readout` and refuse it clearly instead of returning a wrong answer. Decoding a
residual through the model's own head (``HookedModel.unembed_resid``: logit lens, attribution) still works.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from circuitscope.errors import UnsupportedAnalysisError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["require_linear_readout"]


def require_linear_readout(model: HookedModel, analysis: str) -> None:
    """Refuse ``analysis`` on a model whose logits are not ``W_U`` applied to the normed residual stream."""
    if model.wiring.unembed_head is not None:
        raise UnsupportedAnalysisError(
            f"{analysis} reads logits linearly off the residual stream (through W_U), but the {model.cfg.family} "
            "model passes it through a nonlinear prediction head (dense, activation, norm) before its unembedding, "
            "so the answer would be wrong; decode through the head instead (logit lens, attribution patching, "
            "activation patching)"
        )
