"""OLMoE: OLMo's attention (q/k RMSNorm over the whole projection, before rotary) and 64-expert MoE MLPs.

``attn.hook_q``/``hook_k`` are the projections before that norm; ``hook_rot_q``/``hook_rot_k`` after the norm
and rotary. Every block routes; the router renormalises only when ``norm_topk_prob`` is set.
"""

from circuitscope.models._layouts import mixture_of_experts
from circuitscope.models.llama import ADAPTER as LLAMA
from circuitscope.models.qwen3_moe import EXPERTS

ADAPTER = LLAMA.derive(family="olmoe", model_types=("olmoe",), **mixture_of_experts(EXPERTS))
