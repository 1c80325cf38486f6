"""GraniteMoE: Granite's multipliers (see ``granite.py``) around a Mixtral-style mixture of experts.

The MoE block is ``block_sparse_moe``: a router (top-k logits, then a softmax over those k) and the fused
experts. ``hook_mlp_out`` includes ``residual_multiplier``, as for Granite, so
``hook_mlp_out == residual_multiplier * combine_experts(hook_expert_weights, hook_expert_out)``.
"""

from circuitscope.models._layouts import mixture_of_experts
from circuitscope.models.base import MixtureOfExperts
from circuitscope.models.granite import ADAPTER as GRANITE

_MOE = "block_sparse_moe"

ADAPTER = GRANITE.derive(
    family="granitemoe",
    model_types=("granitemoe",),
    **mixture_of_experts(
        MixtureOfExperts(
            block=_MOE,
            router=f"{_MOE}.router",
            experts=f"{_MOE}.experts",
            n_experts_attr="num_local_experts",
            routing="topk_softmax",
        )
    ),
)
