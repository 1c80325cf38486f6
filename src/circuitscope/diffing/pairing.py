"""Checks that two models can be compared token for token."""

from __future__ import annotations

from typing import TYPE_CHECKING

from circuitscope.errors import CircuitscopeError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["ModelMismatchError", "TokenizerMismatchError", "check_same_architecture", "check_same_tokenizer"]


class TokenizerMismatchError(CircuitscopeError, ValueError):
    """Two models whose tokenizers differ: their per-token numbers cannot be lined up."""


class ModelMismatchError(CircuitscopeError, ValueError):
    """Two models whose shapes differ where a comparison needs them equal."""


def check_same_tokenizer(a: HookedModel, b: HookedModel) -> None:
    """Raise :class:`TokenizerMismatchError` unless both tokenizers map every string to the same ids."""
    ta, tb = a.tokenizer, b.tokenizer
    if ta is None or tb is None:
        raise TokenizerMismatchError("both models need a tokenizer to be compared on text")
    if ta is tb:
        return
    va, vb = ta.get_vocab(), tb.get_vocab()
    if va != vb:
        only_a = len(set(va) - set(vb))
        only_b = len(set(vb) - set(va))
        moved = sum(1 for k, v in va.items() if k in vb and vb[k] != v)
        raise TokenizerMismatchError(
            f"the models have different tokenizers ({len(va)} vs {len(vb)} entries; {only_a} only in A, "
            f"{only_b} only in B, {moved} with different ids): diffing needs two checkpoints of one tokenizer. "
            "Compare models of the same family and vocabulary."
        )
    if a.tok.bos_token_id != b.tok.bos_token_id or a.tok.mode != b.tok.mode:
        raise TokenizerMismatchError("the tokenizers share a vocabulary but differ in BOS handling")


def check_same_architecture(a: HookedModel, b: HookedModel) -> None:
    """Raise :class:`ModelMismatchError` unless layers, heads and widths agree (for per-layer and per-head diffs)."""
    fields = ("n_layers", "n_heads", "d_model", "d_head", "d_vocab")
    diffs = [
        f"{f}: {getattr(a.cfg, f)} vs {getattr(b.cfg, f)}" for f in fields if getattr(a.cfg, f) != getattr(b.cfg, f)
    ]
    if diffs:
        raise ModelMismatchError(f"the models differ in shape ({'; '.join(diffs)}); this comparison needs equal shapes")
