"""SmolLM3: Llama's layout; some layers skip rotary (``no_rope_layers``), where ``hook_rot_q``/``k`` equal q/k."""

from circuitscope.models.llama import ADAPTER as LLAMA

ADAPTER = LLAMA.derive(family="smollm3", model_types=("smollm3",))
