"""Which GGUF files circuitscope loads: the architectures transformers' GGUF loader reads, and what it loses.

``load_model(path)`` hands a ``.gguf`` file to transformers' loader (core/loading.py) and refuses a file
it would load wrongly. :data:`GGUF_LIMITS` records, per ``config.model_type``, the config fields the
loader does not read from a file (they take the config class's defaults) and the files that do not load
at all; tests/core/test_gguf_families.py checks every entry against a tiny model written as GGUF, and
docs/models.md shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["GGUF_LIMITS", "GGUFLimit", "gguf_readable", "gguf_status"]


@dataclass(frozen=True)
class GGUFLimit:
    """What transformers' GGUF loader loses for one model type (tests/core/test_gguf_families.py checks each)."""

    reason: str
    """What goes wrong, in words."""
    reset: tuple[str, ...] = ()
    """Config fields the loader does not read from the file: they take the config class's defaults, so a file
    loads exactly only when its model has those defaults."""
    loads_only_with: tuple[tuple[str, Any], ...] = ()
    """``(config field, value)`` pairs without which no file loads at all (StableLM's ``qk_layernorm`` off)."""

    @property
    def fails(self) -> bool:
        """No file of this model type loads, whatever its configuration."""
        return not self.reset and not self.loads_only_with

    def loads(self, config: Any) -> bool:
        """Whether a file of a model with this (Hugging Face) config loads at all."""
        return not self.fails and all(getattr(config, f, None) == v for f, v in self.loads_only_with)


GGUF_LIMITS: dict[str, GGUFLimit] = {
    "gpt2": GGUFLimit(
        "the context length is read into n_ctx, which GPT2Config ignores: n_positions stays 1024", ("n_positions",)
    ),
    "qwen3": GGUFLimit("no head_dim is read: Qwen3Config's default (128) is used", ("head_dim",)),
    "gemma2": GGUFLimit(
        "the softcaps and query_pre_attn_scalar are not read: Gemma 2's defaults (50, 30, 256) are used",
        ("attn_logit_softcapping", "final_logit_softcapping", "query_pre_attn_scalar"),
    ),
    "gemma3_text": GGUFLimit(
        "query_pre_attn_scalar and the sliding/full layer pattern are not read: Gemma 3's defaults are used "
        "(256; five sliding layers, then one full)",
        ("query_pre_attn_scalar", "layer_types"),
    ),
    "stablelm": GGUFLimit(
        "the rotary fraction is not read (partial_rotary_factor stays 0.25), nor qk_layernorm: transformers "
        "would drop a file's per-head q/k norms, so load_model refuses such a file",
        ("rope_parameters",),
        loads_only_with=(("qk_layernorm", False),),
    ),
    "falcon": GGUFLimit(
        "only Falcon-7B's layout loads: new_decoder_architecture, multi_query, parallel_attn and bias are not read "
        "(Falcon-7B's values: False, True, True, False are used), so Falcon-40B-style and sequential files do not",
        loads_only_with=(
            ("new_decoder_architecture", False),
            ("multi_query", True),
            ("parallel_attn", True),
            ("bias", False),
        ),
    ),
    "qwen2_moe": GGUFLimit(
        "the expert widths are not read: moe_intermediate_size and shared_expert_intermediate_size stay at "
        "Qwen2MoeConfig's defaults (1408, 5632)",
        ("moe_intermediate_size", "shared_expert_intermediate_size"),
    ),
    "qwen3_moe": GGUFLimit(
        "the expert width is not read: moe_intermediate_size stays at Qwen3MoeConfig's default (768)",
        ("moe_intermediate_size",),
    ),
    "gpt_oss": GGUFLimit(
        "does not load: transformers 5.24 maps none of the expert tensors llama.cpp writes (ffn_gate/up/down_exps; "
        "its GptOssTensorProcessor expects per-expert tensors for parameters GptOssForCausalLM does not have) "
        "nor the attention sinks, and reads no head_dim"
    ),
}
"""Model types whose GGUF files transformers reads only in part (keyed by ``config.model_type``)."""


def gguf_readable(model_type: str) -> bool:
    """Whether transformers' GGUF loader reads files of this ``config.model_type`` (its ``GGUF_CONFIG_MAPPING``)."""
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    key = {"gemma3_text": "gemma3"}.get(model_type, model_type)  # transformers' own renaming on load
    return key in GGUF_CONFIG_MAPPING and key not in ("general", "tokenizer")


def gguf_status(model_types: tuple[str, ...]) -> str:
    """``yes (types)``, with the limits of those that have some, or ``no: why``, for an adapter's model types."""
    readable = [t for t in model_types if gguf_readable(t) and not (t in GGUF_LIMITS and GGUF_LIMITS[t].fails)]
    failing = [t for t in model_types if t in GGUF_LIMITS and GGUF_LIMITS[t].fails]
    if not readable:
        if failing:
            return f"no: {'; '.join(f'{t} {GGUF_LIMITS[t].reason}' for t in failing)}"
        return "no: transformers' GGUF loader does not read it"
    limits = "; ".join(f"{t}: {GGUF_LIMITS[t].reason}" for t in readable if t in GGUF_LIMITS)
    return f"yes ({', '.join(readable)})" + (f"; limits: {limits}" if limits else "")
