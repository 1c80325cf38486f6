"""Named pieces of an adapter: the sublayer layouts many families share, each one fact group on one line.

An adapter spells its base model, its attention, its MLP, its own-attention routine or its encoder facts with
one of these, ``Adapter(..., **gated_mlp("mlp", norm="post_attention_layernorm", gate="gate_proj", up="up_proj",
down="down_proj"))``: the piece sets every ``Adapter`` field of that group (the norm before the sublayer included;
the fields it does not use to None), so ``OTHER.derive(**piece(...))`` replaces the whole group of a sibling.
Paths given to a piece are relative to its module (``"self_attn"`` + ``"q_proj"`` is ``self_attn.q_proj``); the
module's own path and the norm's are relative to one block, as in ``Adapter``.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from circuitscope.models._experts import MixtureOfExperts
from circuitscope.models.base import MixerKind, Paths, QkvLayout

__all__ = [
    "AttentionPaths",
    "BaseModelPaths",
    "EncoderFacts",
    "ExpertPaths",
    "MixerPaths",
    "MlpPaths",
    "OutputNorms",
    "OwnAttention",
    "PostNormAttention",
    "base_model",
    "dense_mlp",
    "encoder",
    "fused_gated_mlp",
    "fused_qkv",
    "gated_mlp",
    "mixture_of_experts",
    "output_norms",
    "own_attention",
    "post_norm_attention",
    "separate_qkv",
    "state_space_mixer",
]


class BaseModelPaths(TypedDict):
    """The model-level paths of ``Adapter`` inside the base model: its blocks, embeddings and final norm."""

    layers: Paths
    embed: Paths
    pos_embed: Paths | None
    final_norm: Paths | None


class _Projections(TypedDict):
    q: str | None
    k: str | None
    v: str | None
    qkv: str | None
    qkv_layout: QkvLayout


class AttentionPaths(_Projections):
    """The attention fields of ``Adapter``: the norm before it, the module, its projections, the sublayer's result."""

    ln1: Paths | None
    attn: str
    o: str
    attn_out: str


class PostNormAttention(AttentionPaths):
    """:class:`AttentionPaths` and the LayerNorm of ``x + attn`` (``Adapter.attn_out_norm``)."""

    attn_out_norm: str


class MlpPaths(TypedDict):
    """The MLP fields of ``Adapter``: the norm before it, its projections, the sublayer's result."""

    ln2: Paths | None
    mlp_in: str | None
    mlp_in_linear: str | None
    mlp_gate_up: str | None
    mlp_down: str | None
    mlp_out: str
    experts: None


class ExpertPaths(TypedDict):
    """The MLP modules of ``Adapter`` for a mixture of experts in every block (no dense projections)."""

    mlp_in: None
    mlp_in_linear: None
    mlp_gate_up: None
    mlp_down: None
    mlp_out: str
    experts: MixtureOfExperts


class MixerPaths(TypedDict):
    """``Adapter.mixer`` and ``mixer_kind``, which go together."""

    mixer: str
    mixer_kind: MixerKind


class OutputNorms(TypedDict):
    """``Adapter.attn_out``/``attn_out_norm`` and ``mlp_out``/``mlp_out_norm`` of a family norming sublayer outputs."""

    attn_out: str
    attn_out_norm: str
    mlp_out: str
    mlp_out_norm: str


class OwnAttention(TypedDict):
    """``Adapter.attn_method`` and ``attn_hooks``, which go together."""

    attn_method: str
    attn_hooks: str


class EncoderFacts(TypedDict):
    """The fields that make an adapter an encoder's."""

    causal: bool
    tokenization: Literal["bos", "tokenizer"]
    masked_lm_classes: tuple[str, ...]


def _under(module: str, name: str) -> str:
    return f"{module}.{name}" if module else name


def base_model(
    prefix: str,
    *,
    layers: str,
    embed: str,
    pos_embed: str | None = None,
    final_norm: str | None = None,
    bare: bool = False,
) -> BaseModelPaths:
    """The modules of the base model, which a model with a head keeps under ``prefix`` (transformers'
    ``base_model_prefix``; ``""``: the model is its own base). With ``bare``, each path also stands without the
    prefix: the same adapter then opens the bare base model (``AutoModel``) too."""

    def path(name: str) -> Paths:
        return (f"{prefix}.{name}", name) if bare else _under(prefix, name)

    return BaseModelPaths(
        layers=path(layers),
        embed=path(embed),
        pos_embed=None if pos_embed is None else path(pos_embed),
        final_norm=None if final_norm is None else path(final_norm),
    )


def _attention(module: str, norm: Paths | None, o: str, out: str | None, projections: _Projections) -> AttentionPaths:
    output = _under(module, o)
    return {"ln1": norm, "attn": module, "o": output, "attn_out": output if out is None else out, **projections}


def post_norm_attention(module: str, *, q: str, k: str, v: str, o: str, norm: str) -> PostNormAttention:
    """Post-norm attention ``module`` (no input norm) with its own q, k, v and output projections, whose sum with
    the residual goes through the LayerNorm ``norm`` (relative to the block), called on that sum alone
    (DistilBERT's ``sa_layer_norm(attention(x) + x)``; BERT's ``BertSelfOutput`` is written out field by field)."""
    return {**separate_qkv(module, norm=None, q=q, k=k, v=v, o=o, out=norm), "attn_out_norm": norm}


def separate_qkv(
    module: str, *, norm: Paths | None, q: str, k: str, v: str, o: str, out: str | None = None
) -> AttentionPaths:
    """Attention ``module`` after the norm ``norm`` (``ln1``; None: no input norm), with its own query, key,
    value and output projections. The sublayer's result (``hook_attn_out``) is the output projection's output,
    or that of ``out`` (a path relative to the block: a post-norm family's LayerNorm of ``x + attn``)."""
    q_path, k_path, v_path = (_under(module, name) for name in (q, k, v))
    separate = _Projections(q=q_path, k=k_path, v=v_path, qkv=None, qkv_layout="concat")
    return _attention(module, norm, o, out, separate)


def fused_qkv(module: str, *, norm: Paths | None, qkv: str, o: str, layout: QkvLayout) -> AttentionPaths:
    """Attention ``module`` after the norm ``norm`` (``ln1``), with one fused q/k/v projection laid out as
    ``layout``, and its output projection."""
    fused = _Projections(q=None, k=None, v=None, qkv=_under(module, qkv), qkv_layout=layout)
    return _attention(module, norm, o, None, fused)


def dense_mlp(module: str, *, norm: Paths | None, up: str, down: str, out: str | None = None) -> MlpPaths:
    """MLP ``module`` after the norm ``norm`` (``ln2``; None: no norm of its own, e.g. ``ln1`` feeds it too under
    the parallel residual), computing ``down(act(up(x)))``. ``""``: the block calls the projections itself (no
    MLP module). The sublayer's result (``hook_mlp_out``) is the module's output, or that of ``out`` (relative to
    the block: the output projection, or a post-norm family's LayerNorm of ``x + mlp``)."""
    return MlpPaths(
        ln2=norm,
        mlp_in=_under(module, up),
        mlp_in_linear=None,
        mlp_gate_up=None,
        mlp_down=_under(module, down),
        mlp_out=module if out is None else out,
        experts=None,
    )


def gated_mlp(module: str, *, norm: Paths | None, gate: str, up: str, down: str) -> MlpPaths:
    """MLP ``module`` after ``norm``, computing ``down(act(gate(x)) * up(x))`` (Llama's)."""
    return {**dense_mlp(module, norm=norm, up=gate, down=down), "mlp_in_linear": _under(module, up)}


def fused_gated_mlp(module: str, *, norm: Paths | None, gate_up: str, down: str) -> MlpPaths:
    """MLP ``module`` after ``norm``, whose one projection ``gate_up`` computes [gate | up] (Phi-3's), then ``down``."""
    return {**dense_mlp(module, norm=norm, up=gate_up, down=down), "mlp_gate_up": _under(module, gate_up)}


def output_norms(*, attn: str, mlp: str) -> OutputNorms:
    """Norms between each sublayer and the residual add (Gemma 2/3's, OLMo 2's): ``attn`` normalises the attention
    output, ``mlp`` the MLP's; their outputs are ``hook_attn_out``/``hook_mlp_out``, what enters the stream."""
    return OutputNorms(attn_out=attn, attn_out_norm=attn, mlp_out=mlp, mlp_out_norm=mlp)


def mixture_of_experts(experts: MixtureOfExperts) -> ExpertPaths:
    """An MLP that is a mixture of experts in every block (no dense MLP projections): ``experts.block``. The
    norm before it is left as it is."""
    return ExpertPaths(
        mlp_in=None, mlp_in_linear=None, mlp_gate_up=None, mlp_down=None, mlp_out=experts.block, experts=experts
    )


def state_space_mixer(module: str, *, kind: MixerKind) -> MixerPaths:
    """The state-space mixer ``module`` of the mixer layers, of kind ``kind`` (see ``Adapter.mixer_kind``)."""
    return MixerPaths(mixer=module, mixer_kind=kind)


def own_attention(method: str, *, hooks: str) -> OwnAttention:
    """Attention computed by the ``attn`` module's own ``method``, recomputed with hooks by
    ``circuitscope.core.own_attention.<hooks>`` while an attention-internal hook is active."""
    return OwnAttention(attn_method=method, attn_hooks=hooks)


def encoder(*masked_lm_classes: str) -> EncoderFacts:
    """A bidirectional encoder that uses its tokenizer's own special tokens; ``masked_lm_classes`` are its
    architectures with a masked-LM head (see ``Adapter.masked_lm_classes``)."""
    return EncoderFacts(causal=False, tokenization="tokenizer", masked_lm_classes=masked_lm_classes)
