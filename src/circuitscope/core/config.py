"""The model's shape, read off its Hugging Face config."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from circuitscope.errors import UnsupportedModelError
from circuitscope.models.base import Adapter

__all__ = ["ModelConfig"]

_SIZE_NAMES: dict[str, tuple[str, ...]] = {
    "n_layers": ("num_hidden_layers",),
    "n_heads": ("num_attention_heads",),
    "n_kv_heads": ("num_key_value_heads",),
    "d_model": ("hidden_size",),
    "d_head": ("head_dim",),
    "d_mlp": ("intermediate_size", "n_inner"),
    "d_vocab": ("vocab_size",),
    "n_ctx": ("max_position_embeddings", "n_positions"),
}
"""The usual Hugging Face config attribute(s) of each size, tried in order (configs' ``attribute_map`` aliases
cover GPT-2-style names); an adapter's ``config_names`` replaces them for its family."""


def _factor(text: Any, attr: str | None) -> float:
    """The config's value of a multiplier the adapter names; 1.0 for none."""
    value = None if attr is None else getattr(text, attr, None)
    return 1.0 if value is None else float(value)


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
    """Query heads per attention layer; 0 for a model without attention layers (a state-space model)."""
    n_kv_heads: int
    """Key/value heads per block (fewer than ``n_heads`` under grouped-query attention); 0 without attention."""
    d_model: int
    """Width of the residual stream."""
    d_head: int
    """Width of one attention head; 0 without attention layers."""
    d_mlp: int
    """Hidden width of the MLP; 0 for blocks without an MLP (Mamba)."""
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
    """Per layer, transformers' ``layer_types``: ``full_attention`` or ``sliding_attention``; a state-space
    mixer layer is ``linear_attention`` (see ``mixer_layers``)."""
    mixer: str | None = None
    """The state-space mixer of the mixer layers (``selective_scan``: Mamba; ``ssd``: Mamba 2, Bamba); None for an
    attention-only model."""
    mixer_layers: tuple[int, ...] = ()
    """The layers whose block is ``x + mixer(ln1 x)`` (no attention heads): every layer of a Mamba model,
    some of a hybrid (Bamba). Every other layer is an attention layer."""

    def __post_init__(self) -> None:
        attention_free = len(self.mixer_layers) == self.n_layers
        heads = ("n_heads", "n_kv_heads", "d_head")
        if attention_free and any(getattr(self, name) != 0 for name in heads):
            raise ValueError("a model without attention layers has n_heads = n_kv_heads = d_head = 0")
        if not attention_free and self.n_heads % max(self.n_kv_heads, 1):
            raise ValueError(f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.n_kv_heads}")
        for name in ("n_layers", "n_heads", "d_model", "d_head", "d_vocab"):
            if getattr(self, name) <= 0 and not (attention_free and name in heads):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @classmethod
    def from_hf(cls, hf_config: Any, adapter: Adapter) -> ModelConfig:
        """The sizes of ``hf_config``, read under the usual names or those the adapter declares (``config_names``).

        A configuration the adapter refuses (``adapter.unsupported``) raises UnsupportedModelError here, before
        anything is wired.
        """
        text = hf_config.get_text_config() if hasattr(hf_config, "get_text_config") else hf_config
        if adapter.unsupported is not None:
            reason = adapter.unsupported(text)
            if reason is not None:
                raise UnsupportedModelError(f"circuitscope cannot wire this {adapter.family} model: {reason}")
        size = _SizeReader(text, adapter)
        d_model, n_layers = size("d_model"), size("n_layers")
        # no attention layers (Mamba): no attention heads (Mamba 2's num_heads/head_dim are its SSM heads)
        n_heads = size("n_heads") if adapter.attn is not None else 0
        kinds = dict(adapter.layer_type_names)  # the family's names for its layers' attention, if its own
        own_types = getattr(text, adapter.layer_types_attr, None) or ["full_attention"] * n_layers
        layer_types = tuple(kinds.get(t, t) for t in own_types)
        residual = adapter.residual
        if adapter.parallel_residual_attr is not None and getattr(text, adapter.parallel_residual_attr, False):
            residual = "parallel"
        sliding = getattr(text, adapter.sliding_window_attr, None)
        return cls(
            family=adapter.family,
            model_type=str(hf_config.model_type),
            n_layers=n_layers,
            n_heads=n_heads,
            n_kv_heads=size("n_kv_heads", n_heads) if n_heads else 0,
            d_model=d_model,
            d_head=size("d_head", d_model // n_heads) if n_heads else 0,
            # GPT-2's convention when n_inner is None; no MLP, no d_mlp (Mamba's intermediate_size is its mixer's)
            d_mlp=size("d_mlp", 4 * d_model) if adapter.mlp_in is not None or adapter.experts is not None else 0,
            d_vocab=size("d_vocab"),
            n_ctx=size("n_ctx", 2048),
            residual=residual,
            causal=adapter.causal,
            gated_mlp=adapter.mlp_in_linear is not None or adapter.mlp_gate_up is not None,
            sliding_window=int(sliding) if sliding and "sliding_attention" in layer_types else None,
            layer_types=layer_types,
            embed_multiplier=_factor(text, adapter.embed_multiplier_attr),
            residual_multiplier=_factor(text, adapter.residual_multiplier_attr),
            mixer=adapter.mixer_kind,
            mixer_layers=tuple(
                i for i, t in enumerate(layer_types) if adapter.mixer and t in adapter.mixer_layer_types
            ),
        )

    embed_multiplier: float = 1.0
    """Factor the model multiplies token embeddings by after the embedding module (Granite); 1.0 if none."""
    residual_multiplier: float = 1.0
    """Factor each sublayer's output is multiplied by before the residual add (Granite); 1.0 if none."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _SizeReader:
    """The sizes of the text config ``text``: computed by the adapter (``computed_sizes``), or read under the usual
    attribute names or those it declares (``config_names``)."""

    def __init__(self, text: Any, adapter: Adapter) -> None:
        self.text, self.family = text, adapter.family
        self.names = {**_SIZE_NAMES, **{size: (attr,) for size, attr in adapter.config_names}}
        self.computed = adapter.computed_sizes(text) if adapter.computed_sizes is not None else {}

    def __call__(self, name: str, default: int | None = None) -> int:
        """The size ``name``; ``default`` when the config sets none (an UnsupportedModelError without a default)."""
        if name in self.computed:
            return int(self.computed[name])
        for attr in self.names[name]:
            value = getattr(self.text, attr, None)
            if value is not None:
                return int(value)
        if default is None:
            raise UnsupportedModelError(
                f"the {self.family} config has none of {self.names[name]} (the model's {name}); "
                "name its attribute in the adapter's config_names"
            )
        return default
