"""The model's shape, read off its Hugging Face config."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from circuitscope.models.base import Adapter

__all__ = ["ModelConfig"]


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of a loaded model, in TransformerLens's names."""

    family: str
    """Adapter family (``gpt2``, ``gpt_neox``, ``llama``, ``gemma``, ``bert``, ...)."""
    model_type: str
    """Hugging Face ``config.model_type``."""
    n_layers: int
    """Number of transformer blocks."""
    n_heads: int
    """Query heads per block."""
    n_kv_heads: int
    """Key/value heads per block (fewer than ``n_heads`` under grouped-query attention)."""
    d_model: int
    """Width of the residual stream."""
    d_head: int
    """Width of one attention head."""
    d_mlp: int
    """Hidden width of the MLP."""
    d_vocab: int
    """Vocabulary size (rows of ``W_E``)."""
    n_ctx: int
    """Longest sequence the model takes."""
    residual: str
    """``pre_norm``, ``parallel`` or ``post_norm`` (see :class:`~circuitscope.models.Adapter`)."""
    causal: bool
    """Causal (decoder) attention."""
    gated_mlp: bool
    """The MLP is gated (has ``mlp.hook_pre_linear``)."""
    sliding_window: int | None
    """Sliding-window width of local-attention layers, if any."""
    layer_types: tuple[str, ...]
    """Per layer: ``full_attention`` or ``sliding_attention``."""

    def __post_init__(self) -> None:
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.n_kv_heads}")
        for name in ("n_layers", "n_heads", "d_model", "d_head", "d_vocab"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @classmethod
    def from_hf(cls, hf_config: Any, adapter: Adapter) -> ModelConfig:
        text = hf_config.get_text_config() if hasattr(hf_config, "get_text_config") else hf_config
        n_heads = int(text.num_attention_heads)
        d_model = int(text.hidden_size)
        d_head = int(getattr(text, "head_dim", None) or d_model // n_heads)
        n_kv = int(getattr(text, "num_key_value_heads", None) or n_heads)
        d_mlp = next(
            (v for v in (getattr(text, "intermediate_size", None), getattr(text, "n_inner", None)) if v is not None),
            4 * d_model,  # GPT-2's convention when n_inner is None
        )
        n_ctx = getattr(text, "max_position_embeddings", None) or getattr(text, "n_positions", None) or 2048
        n_layers = int(text.num_hidden_layers)
        layer_types = tuple(getattr(text, "layer_types", None) or ["full_attention"] * n_layers)
        residual = adapter.residual
        if adapter.parallel_residual_attr is not None and getattr(text, adapter.parallel_residual_attr, False):
            residual = "parallel"
        sliding = getattr(text, "sliding_window", None)
        return cls(
            family=adapter.family,
            model_type=str(hf_config.model_type),
            n_layers=n_layers,
            n_heads=n_heads,
            n_kv_heads=n_kv,
            d_model=d_model,
            d_head=d_head,
            d_mlp=int(d_mlp),
            d_vocab=int(text.vocab_size),
            n_ctx=int(n_ctx),
            residual=residual,
            causal=adapter.causal,
            gated_mlp=adapter.mlp_in_linear is not None,
            sliding_window=int(sliding) if sliding and "sliding_attention" in layer_types else None,
            layer_types=layer_types,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
