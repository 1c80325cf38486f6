"""OLMo (1): Llama's layout with LayerNorms that have no weight or bias (``OlmoLayerNorm``).

The norms are read by behaviour (a centring norm with identity weight), so frozen-norm analyses, folding
(nothing to fold) and centring writing weights work as for a LayerNorm family. With ``clip_qkv`` the attention
clamps its q/k/v projections in place: ``hook_q``/``k``/``v`` are the projections, the clamp acts after them.
"""

from circuitscope.models.llama import ADAPTER as LLAMA

ADAPTER = LLAMA.derive(family="olmo", model_types=("olmo",), qkv_edited_in_place=True)
