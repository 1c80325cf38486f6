"""gpt-oss: attention with sinks on alternating sliding and full layers; top-k-then-softmax experts.

Attention passes each head's learned sink logit (``self_attn.sinks``) to the attention function as
``s_aux``; ``circuitscope.core.attention`` joins it to the softmax as transformers' eager attention does, so
``hook_pattern`` rows sum to less than 1. The router (``mlp.router``, with a bias) keeps the k largest logits and
softmaxes over them; the experts apply gpt-oss's clamped SwiGLU inside their own code (``mlp.hook_expert_out``
is each chosen expert's output after its down projection and bias). The MoE block returns ``(hidden, scores)``;
``hook_mlp_out`` is the hidden part. The experts are laid out as Mixtral's, under its own router ``mlp.router``.
"""

from dataclasses import replace

from circuitscope.models._layouts import mixture_of_experts
from circuitscope.models.llama import ADAPTER as LLAMA
from circuitscope.models.mixtral import EXPERTS as MIXTRAL

ADAPTER = LLAMA.derive(
    family="gpt_oss",
    model_types=("gpt_oss",),
    **mixture_of_experts(replace(MIXTRAL, router="mlp.router", routing="topk_softmax")),
)
