"""The declarative adapter: where one Hugging Face family keeps its modules.

An adapter re-implements nothing. It names module paths (dotted, relative to the
loaded HF model for the model-level fields, relative to one block for the block-level
fields) and a few facts about the family's wiring. ``circuitscope.core`` turns that
into hook points that sit on the family's own modules and its own attention math.

A path field may be a tuple of alternatives; the first that exists is used (so one
adapter covers ``BertModel`` and ``BertForMaskedLM``, or a text-only and a multimodal
Gemma 3).

A family that shares another's module layout says only how it differs:
``ADAPTER = LLAMA.derive(family="gemma", model_types=("gemma",), embed_scale_buffer="embed_scale")``.
A sublayer laid out as many families lay theirs out is one line, a named piece of ``models/_layouts.py``
(``**separate_qkv("self_attn", norm="input_layernorm", q="q_proj", k="k_proj", v="v_proj", o="o_proj")``,
``**gated_mlp(...)``, ``**base_model(...)``): it sets that group of fields, so a derived family that changes its
attention or its MLP restates the whole group. The other fields stay one fact a line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from torch import nn

from circuitscope.models._experts import MixtureOfExperts

__all__ = [
    "CONFIG_SIZES",
    "Adapter",
    "MixerKind",
    "MixtureOfExperts",
    "Paths",
    "QkvLayout",
    "resolve_path",
    "try_resolve",
]

Paths = str | tuple[str, ...]
"""One dotted module path, or alternatives tried in order."""

QkvLayout = Literal["concat", "per_head", "grouped"]
"""How a fused q/k/v projection lays out its output (see ``Adapter.qkv_layout``)."""

MixerKind = Literal["selective_scan", "ssd"]
"""Which state-space mixer a family has (see ``Adapter.mixer_kind``)."""

CONFIG_SIZES = ("n_layers", "n_heads", "n_kv_heads", "d_model", "d_head", "d_mlp", "d_vocab", "n_ctx")
"""The ``ModelConfig`` sizes an adapter may map to a config attribute of its own (``config_names``)."""


@dataclass(frozen=True)
class Adapter:
    """Where a Hugging Face model family keeps its modules, and how its blocks are wired."""

    family: str
    """Short family name, shown as ``model.cfg.family``."""
    model_types: tuple[str, ...]
    """The ``config.model_type`` values this adapter covers."""
    layers: Paths
    """The ``nn.ModuleList`` of transformer blocks."""
    embed: Paths
    """Token embedding; its output is ``hook_embed``."""
    attn: str | None = None
    """The attention module of a block: the module handed to the attention function. None for a family
    without attention layers (a state-space model: see ``mixer``)."""
    o: str | None = None
    """Attention output projection; its input is ``attn.hook_z``."""
    attn_out: str | None = None
    """Module whose output is the attention sublayer's result (see ``residual``)."""
    mlp_in: str | None = None
    """MLP input projection; its output is ``mlp.hook_pre`` (the gate under a gated MLP). None for a family
    whose blocks have no MLP (Mamba); then ``mlp_down`` and ``mlp_out`` are None too."""
    mlp_down: str | None = None
    """MLP output projection; its input is ``mlp.hook_post``."""
    mlp_out: str | None = None
    """Module whose output is the MLP sublayer's result (see ``residual``)."""
    experts: MixtureOfExperts | None = None
    """The mixture-of-experts MLP (router, experts, shared expert), or None for a dense MLP. A block that has
    the router gets the expert hooks (``circuitscope.core.moe``) instead of ``mlp.hook_pre/post``;
    ``mlp_in``/``mlp_down`` are None, or name the dense MLP of the blocks without a router."""
    pos_embed: Paths | None = None
    """Learned absolute position embedding, if any; its output is ``hook_pos_embed``."""
    final_norm: Paths | None = None
    """Final norm before the unembedding; its output is ``ln_final.hook_normalized``."""
    unembed: Paths | None = None
    """Linear map from the final residual stream to logits (None for a bare encoder)."""
    unembed_head: Paths | None = None
    """A nonlinear prediction head between the final norm and ``unembed`` (ModernBERT's dense, activation
    and LayerNorm): the logits are ``unembed(head(final_norm(x)))`` and ``W_U`` is ``unembed``'s weight alone.
    Decoding a residual (``unembed_resid``: logit lens, attribution) goes through the head; analyses that
    read logits linearly off the residual stream (direct logit attribution, folding) refuse the model."""
    residual: Literal["pre_norm", "parallel", "post_norm"] = "pre_norm"
    """How sublayers meet the residual stream. ``pre_norm``: x + attn(ln1 x), then + mlp(ln2 .).
    ``parallel``: x + attn(ln1 x) + mlp(ln2 x) (no ``resid_mid``). ``post_norm``: LN(x + sublayer(x));
    ``attn_out``/``mlp_out`` then name the modules computing LN(. + x), and the hooks report the
    update ``LN(x + s) - x`` so that the residual stream still decomposes exactly."""
    parallel_residual_attr: str | None = None
    """Config flag that switches ``pre_norm`` to ``parallel`` when true (GPT-NeoX's ``use_parallel_residual``)."""
    ln1: Paths | None = None
    """Norm before attention; its output is ``ln1.hook_normalized``. None only for a family that norms its
    sublayer outputs instead (``attn_out_norm``, OLMo 2): attention then reads the residual stream itself."""
    ln2: Paths | None = None
    """Norm before the MLP; its output is ``ln2.hook_normalized``. Under the parallel residual, None (or a
    module the block lacks, StableLM's ``post_attention_layernorm`` when ``use_parallel_residual``) means one
    norm, ``ln1``, feeds both sublayers (GPT-J, Phi, Cohere)."""
    q: str | None = None
    """Separate query projection (None when ``qkv`` is fused)."""
    k: str | None = None
    """Separate key projection."""
    v: str | None = None
    """Separate value projection."""
    qkv: str | None = None
    """Fused query/key/value projection."""
    qkv_layout: QkvLayout = "concat"
    """Fused layout: ``concat`` is [q | k | v] (GPT-2); ``per_head`` is [head, (q k v), d_head] (GPT-NeoX);
    ``grouped`` is [kv_head, (its n_heads/n_kv_heads queries, k, v), d_head] (Falcon)."""
    attn_out_norm: str | None = None
    """Norm between the attention output projection and the residual add (Gemma 2/3), or, for a
    post-norm family, the LayerNorm of ``x + attn`` (BERT); None if absent. ``hook_result`` pushes
    each head through it with the scale frozen."""
    mlp_out_norm: str | None = None
    """Norm between the MLP output projection and the residual add (Gemma 2/3); None if absent."""
    post_norm_input: Literal["pair", "sum"] = "pair"
    """For a post-norm family, what its LayerNorm modules (``attn_out``, ``mlp_out``) are called with.
    ``pair``: (sublayer output, residual), the module adds them (BERT's ``BertSelfOutput``); ``sum``: the sum
    ``x + s`` alone (DistilBERT's ``sa_layer_norm(sa_output + x)``). The residual ``x`` is then the block's
    input for attention and the input of ``mlp_in`` for the MLP, read where those are computed."""
    mlp_in_linear: str | None = None
    """Under a gated MLP, the linear (up) projection; its output is ``mlp.hook_pre_linear``."""
    qkv_edited_in_place: bool = False
    """The attention edits its q/k/v projections' outputs in place (OLMo's ``clip_qkv`` clamp); the hooks hand a
    copy on, so that ``hook_q``/``hook_k``/``hook_v`` keep the projections (the edit then acts downstream)."""
    mlp_gate_up: str | None = None
    """Fused [activated branch | linear branch] projection; the first half of its output is ``mlp.hook_pre``,
    the second ``mlp.hook_pre_linear`` (Phi-3's ``gate_up_proj``). ``mlp_in`` then names the same module and
    ``mlp_in_linear`` is None."""
    mlp_flat: bool = False
    """The block runs its MLP on the stream flattened to [batch*pos, d_model] (OPT); the MLP-side hooks
    (``ln2``, ``mlp.*``, ``hook_mlp_out``) still show [batch pos ...]."""
    conv1d: bool = False
    """Weights stored as [in, out] (GPT-2's ``Conv1D``) instead of ``nn.Linear``'s [out, in]."""
    rotary: bool = False
    """Queries and keys are rotated inside attention: adds ``attn.hook_rot_q`` / ``hook_rot_k``."""
    causal: bool = True
    """Decoder (causal) attention, loaded with ``AutoModelForCausalLM``; False for encoders (loaded with
    ``AutoModelForMaskedLM`` or ``AutoModel``, see ``masked_lm_classes``)."""
    masked_lm_classes: tuple[str, ...] = ()
    """For an encoder: the architectures (``config.architectures``) that carry a masked-LM head and load
    with ``AutoModelForMaskedLM``; the family's other architectures load as the bare encoder (``AutoModel``)."""
    final_softcap_attr: str | None = None
    """Text-config attribute holding the final logit softcap ``c``: the logits are ``c * tanh(logits / c)``
    (Gemma 2/3's ``final_logit_softcapping``). None if the family never caps its logits; a config value of
    None means no cap too. (Attention-score softcapping needs no field: transformers hands the family's own
    cap to the attention function, which applies it.)"""
    embed_scale_buffer: str | None = None
    """Buffer of the token-embedding module holding the factor its forward multiplies embeddings by
    (Gemma's ``embed_scale``, sqrt(d_model)); None if embeddings are not scaled. ``hook_embed`` sees the
    scaled embedding, ``W_E`` is the stored matrix. The buffer is computed from the config, so loading
    does not expect it in the weights."""
    embed_multiplier_attr: str | None = None
    """Text-config attribute of a factor the model multiplies token embeddings by after the embedding module
    (Granite's ``embedding_multiplier``); None if it has none. ``hook_embed`` includes it (what the blocks
    receive), ``W_E`` is the stored matrix."""
    residual_multiplier_attr: str | None = None
    """Text-config attribute of a factor each sublayer's output is multiplied by just before the residual add
    (Granite's ``residual_multiplier``); None if none. ``hook_attn_out``, ``hook_result`` and ``hook_mlp_out``
    include it (what enters the stream), and so do ``W_O``/``b_O``/``W_out``/``b_out`` (scaled copies)."""
    logit_multiplier_attr: str | None = None
    """Text-config attribute of a factor the model multiplies its logits by after the unembedding (Cohere's
    ``logit_scale``); None if it has none. Applied with the final softcap, so logit lens and DLA match."""
    logit_divisor_attr: str | None = None
    """Text-config attribute of a divisor of the logits after the unembedding (Granite's ``logits_scaling``)."""
    pos_embed_offset: int = 0
    """Rows of the position-embedding table before position 0 (OPT keeps 2); ``W_pos`` starts after them."""
    computed_sizes: Callable[[Any], dict[str, int]] | None = None
    """Given the text config, sizes that no single attribute holds (Falcon's key/value heads: one under
    ``multi_query``), by ``CONFIG_SIZES`` name; they take precedence over ``config_names``."""
    mlp_out_in_place: bool = False
    """The block adds to the MLP's output tensor in place (Falcon's ``mlp_output += attention_output``):
    ``hook_mlp_out`` then hands a copy on, so the activation it saw stays what the MLP wrote."""
    config_names: tuple[tuple[str, str], ...] = ()
    """``(size, attribute)`` pairs: the config attribute holding one of ``ModelConfig``'s sizes where the
    family does not use the usual name (OPT's ``("d_mlp", "ffn_dim")``). Sizes: see ``CONFIG_SIZES``."""
    unsupported: Callable[[Any], str | None] | None = None
    """Given the text config, why this adapter cannot wire that configuration (a sentence naming the config
    value), or None. A model it refuses raises UnsupportedModelError before any hook is built."""
    tokenization: Literal["bos", "tokenizer"] = "bos"
    """``bos``: circuitscope prepends BOS itself (``prepend_bos``); ``tokenizer``: the tokenizer's
    own special tokens are used (``[CLS] ... [SEP]`` for BERT)."""
    mixer: str | None = None
    """The state-space mixer of a mixer layer (Mamba's ``mixer``, Bamba's ``mamba``), in the block's attention
    slot: ``x + mixer(ln1 x)``; its output is ``hook_mixer_out``. None for an attention-only family."""
    mixer_kind: MixerKind | None = None
    """Which mixer it is, so that ``circuitscope.core.mixer`` hooks its internals: ``selective_scan`` (Mamba's S6:
    in_proj, causal conv, x_proj, out_proj) or ``ssd`` (Mamba 2's state-space duality: in_proj, gated norm,
    out_proj; Bamba's mixer too)."""
    mixer_layer_types: tuple[str, ...] = ("linear_attention",)
    """The ``config.layer_types`` values of mixer layers (transformers calls them ``linear_attention``);
    the other layers are attention layers. Read only when ``mixer`` is set."""
    register: Callable[[], None] | None = None
    """For a family transformers does not ship (circuitscope's toy model): registers its config and
    model classes with transformers' Auto classes. Called before loading, never at import time."""
    attn_method: str | None = None
    """For a family that computes attention in its own code instead of through transformers' attention
    registry (GPT-Neo's ``_attn``, Falcon's ``forward``): the method of the ``attn`` module that computes it.
    While an attention-internal hook is active it is rerouted through ``attn_hooks``; otherwise the family's
    own method runs untouched, and the model keeps the attention implementation it was built with."""
    attn_hooks: str | None = None
    """With ``attn_method``: the hook module of ``circuitscope.core.own_attention`` (by module name) that
    recomputes that method with the family's own math and calls ``hook_rot_q/k``, ``hook_attn_scores`` and
    ``hook_pattern`` inside it."""
    layer_types_attr: str = "layer_types"
    """Config attribute listing each layer's attention kind (GPT-Neo's ``attention_layers``)."""
    layer_type_names: tuple[tuple[str, str], ...] = ()
    """``(family's name, transformers' name)`` pairs translating the entries of ``layer_types_attr``
    (GPT-Neo's ``("local", "sliding_attention")``); empty when the config already uses transformers' names."""
    sliding_window_attr: str = "sliding_window"
    """Config attribute holding the local layers' window (GPT-Neo's ``window_size``)."""

    def __post_init__(self) -> None:
        if self.attn is None and self.mixer is None:
            raise ValueError(f"adapter {self.family!r}: a block needs attention (attn) or a state-space mixer")
        if (self.mixer is None) != (self.mixer_kind is None):
            raise ValueError(f"adapter {self.family!r}: give mixer and mixer_kind together")
        if self.attn is not None and self.qkv is None and not (self.q and self.k and self.v):
            raise ValueError(f"adapter {self.family!r}: give either qkv or all of q, k, v")
        if self.attn is not None and not (self.o and self.attn_out):
            raise ValueError(f"adapter {self.family!r}: an attention family names o and attn_out")
        if self.experts is not None and self.mlp_out is None:
            raise ValueError(f"adapter {self.family!r}: a mixture-of-experts family names mlp_out (the MoE block)")
        if self.experts is None and len({self.mlp_in is None, self.mlp_down is None, self.mlp_out is None}) > 1:
            raise ValueError(f"adapter {self.family!r}: give all of mlp_in, mlp_down, mlp_out, or none")
        if self.residual != "post_norm" and self.ln1 is None and self.attn_out_norm is None:
            raise ValueError(
                f"adapter {self.family!r}: a pre-norm family needs ln1 (or norms its outputs, attn_out_norm)"
            )
        if self.mlp_gate_up is not None and (self.mlp_in != self.mlp_gate_up or self.mlp_in_linear is not None):
            raise ValueError(
                f"adapter {self.family!r}: with mlp_gate_up, mlp_in names the same module and mlp_in_linear is None"
            )
        unknown = [name for name, _ in self.config_names if name not in CONFIG_SIZES]
        if unknown:
            raise ValueError(f"adapter {self.family!r}: config_names {unknown} are not sizes; use {CONFIG_SIZES}")
        if self.residual == "post_norm" and self.attn_out_norm is None:
            raise ValueError(f"adapter {self.family!r}: a post-norm family names its LayerNorm in attn_out_norm")
        if not self.model_types:
            raise ValueError(f"adapter {self.family!r}: list at least one model_type")
        if self.causal and self.masked_lm_classes:
            raise ValueError(f"adapter {self.family!r}: masked_lm_classes are for encoders (causal=False)")
        if (self.attn_method is None) != (self.attn_hooks is None):
            raise ValueError(f"adapter {self.family!r}: give both attn_method and attn_hooks, or neither")

    def derive(self, **facts: Any) -> Adapter:
        """This adapter with some fields changed: a family laid out like this one says only how it differs.

        ``facts`` are field names and values (an unknown name is a TypeError); the result is validated again.
        """
        return replace(self, **facts)


def try_resolve(root: nn.Module, paths: Paths | None) -> nn.Module | None:
    """The first module among ``paths`` that exists under ``root``, or None."""
    if paths is None:
        return None
    for path in (paths,) if isinstance(paths, str) else paths:
        try:
            return root.get_submodule(path)
        except AttributeError:
            continue
    return None


def resolve_path(root: nn.Module, paths: Paths | None, what: str) -> nn.Module:
    """Like :func:`try_resolve`, but a missing module (or an unset field) is an error naming the adapter field."""
    if paths is None:
        raise AttributeError(f"adapter field {what!r} is not set, but {type(root).__name__} needs it")
    module = try_resolve(root, paths)
    if module is None:
        raise AttributeError(
            f"adapter field {what!r}: none of {paths!r} exists in {type(root).__name__}; "
            "the model's module tree does not match its adapter"
        )
    return module
