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
Adapters of unrelated families are keyword lists of the same shape on purpose: each line is
one fact (a module path) of its family, read by ``circuitscope.core``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from torch import nn

__all__ = ["Adapter", "Paths", "resolve_path", "try_resolve"]

Paths = str | tuple[str, ...]
"""One dotted module path, or alternatives tried in order."""


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
    attn: str
    """The attention module of a block: the module handed to the attention function."""
    o: str
    """Attention output projection; its input is ``attn.hook_z``."""
    attn_out: str
    """Module whose output is the attention sublayer's result (see ``residual``)."""
    mlp_in: str
    """MLP input projection; its output is ``mlp.hook_pre`` (the gate under a gated MLP)."""
    mlp_down: str
    """MLP output projection; its input is ``mlp.hook_post``."""
    mlp_out: str
    """Module whose output is the MLP sublayer's result (see ``residual``)."""
    pos_embed: Paths | None = None
    """Learned absolute position embedding, if any; its output is ``hook_pos_embed``."""
    final_norm: Paths | None = None
    """Final norm before the unembedding; its output is ``ln_final.hook_normalized``."""
    unembed: Paths | None = None
    """Linear map from the final residual stream to logits (None for a bare encoder)."""
    residual: Literal["pre_norm", "parallel", "post_norm"] = "pre_norm"
    """How sublayers meet the residual stream. ``pre_norm``: x + attn(ln1 x), then + mlp(ln2 .).
    ``parallel``: x + attn(ln1 x) + mlp(ln2 x) (no ``resid_mid``). ``post_norm``: LN(x + sublayer(x));
    ``attn_out``/``mlp_out`` then name the modules computing LN(. + x), and the hooks report the
    update ``LN(x + s) - x`` so that the residual stream still decomposes exactly."""
    parallel_residual_attr: str | None = None
    """Config flag that switches ``pre_norm`` to ``parallel`` when true (GPT-NeoX's ``use_parallel_residual``)."""
    ln1: str | None = None
    """Norm before attention; its output is ``ln1.hook_normalized``."""
    ln2: str | None = None
    """Norm before the MLP; its output is ``ln2.hook_normalized``."""
    q: str | None = None
    """Separate query projection (None when ``qkv`` is fused)."""
    k: str | None = None
    """Separate key projection."""
    v: str | None = None
    """Separate value projection."""
    qkv: str | None = None
    """Fused query/key/value projection."""
    qkv_layout: Literal["concat", "per_head"] = "concat"
    """Fused layout: ``concat`` is [q | k | v] (GPT-2); ``per_head`` is [head, (q k v), d_head] (GPT-NeoX)."""
    attn_out_norm: str | None = None
    """Norm between the attention output projection and the residual add (Gemma 2/3), or, for a
    post-norm family, the LayerNorm of ``x + attn`` (BERT); None if absent. ``hook_result`` pushes
    each head through it with the scale frozen."""
    mlp_out_norm: str | None = None
    """Norm between the MLP output projection and the residual add (Gemma 2/3); None if absent."""
    mlp_in_linear: str | None = None
    """Under a gated MLP, the linear (up) projection; its output is ``mlp.hook_pre_linear``."""
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
    tokenization: Literal["bos", "tokenizer"] = "bos"
    """``bos``: circuitscope prepends BOS itself (``prepend_bos``); ``tokenizer``: the tokenizer's
    own special tokens are used (``[CLS] ... [SEP]`` for BERT)."""
    register: Callable[[], None] | None = None
    """For a family transformers does not ship (circuitscope's toy model): registers its config and
    model classes with transformers' Auto classes. Called before loading, never at import time."""

    def __post_init__(self) -> None:
        if self.qkv is None and not (self.q and self.k and self.v):
            raise ValueError(f"adapter {self.family!r}: give either qkv or all of q, k, v")
        if self.residual != "post_norm" and self.ln1 is None:
            raise ValueError(f"adapter {self.family!r}: a pre-norm family needs ln1")
        if self.residual == "post_norm" and self.attn_out_norm is None:
            raise ValueError(f"adapter {self.family!r}: a post-norm family names its LayerNorm in attn_out_norm")
        if not self.model_types:
            raise ValueError(f"adapter {self.family!r}: list at least one model_type")
        if self.causal and self.masked_lm_classes:
            raise ValueError(f"adapter {self.family!r}: masked_lm_classes are for encoders (causal=False)")

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


def resolve_path(root: nn.Module, paths: Paths, what: str) -> nn.Module:
    """Like :func:`try_resolve`, but a missing module is an error naming the adapter field."""
    module = try_resolve(root, paths)
    if module is None:
        raise AttributeError(
            f"adapter field {what!r}: none of {paths!r} exists in {type(root).__name__}; "
            "the model's module tree does not match its adapter"
        )
    return module
