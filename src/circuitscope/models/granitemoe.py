"""GraniteMoE: Granite's multipliers (see ``granite.py``) around a Mixtral-style mixture of experts.

The MoE block is ``block_sparse_moe``: a router (top-k logits, then a softmax over those k) and the fused
experts. ``hook_mlp_out`` includes ``residual_multiplier``, as for Granite, so
``hook_mlp_out == residual_multiplier * combine_experts(hook_expert_weights, hook_expert_out)``.
"""

from circuitscope.models.base import MixtureOfExperts
from circuitscope.models.granite import ADAPTER as GRANITE

ADAPTER = GRANITE.derive(
    family="granitemoe",
    model_types=("granitemoe",),
    mlp_in=None,
    mlp_in_linear=None,
    mlp_down=None,
    mlp_out="block_sparse_moe",
    experts=MixtureOfExperts(
        block="block_sparse_moe",
        router="block_sparse_moe.router",
        experts="block_sparse_moe.experts",
        n_experts_attr="num_local_experts",
        routing="topk_softmax",
    ),
)
