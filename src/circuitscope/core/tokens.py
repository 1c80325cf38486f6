"""Text <-> tokens, with the model's BOS convention and context length enforced."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from jaxtyping import Int

from circuitscope.errors import TokenizationError

__all__ = ["Tokenizer"]


class Tokenizer:
    """Wraps a Hugging Face tokenizer with circuitscope's conventions.

    ``bos`` mode (decoders): text is tokenized without special tokens and BOS is
    prepended when ``prepend_bos`` (default True if the tokenizer has a BOS token).
    ``tokenizer`` mode (encoders): the tokenizer's own special tokens are kept.
    """

    def __init__(self, hf_tokenizer: Any, mode: Literal["bos", "tokenizer"], n_ctx: int) -> None:
        self.hf = hf_tokenizer
        self.mode = mode
        self.n_ctx = n_ctx
        self.bos_token_id: int | None = getattr(hf_tokenizer, "bos_token_id", None)
        pad = getattr(hf_tokenizer, "pad_token_id", None)
        eos = getattr(hf_tokenizer, "eos_token_id", None)
        self.pad_token_id: int = pad if pad is not None else (eos if eos is not None else 0)

    @property
    def default_prepend_bos(self) -> bool:
        return self.mode == "bos" and self.bos_token_id is not None

    def encode(self, text: str, prepend_bos: bool | None = None) -> list[int]:
        if not isinstance(text, str):
            raise TokenizationError(
                f"expected text (a str), got {type(text).__name__} {text!r:.60}; "
                "pass a string, or run token ids as a torch tensor"
            )
        if self.mode == "tokenizer":
            return list(self.hf(text, add_special_tokens=True)["input_ids"])
        ids = list(self.hf(text, add_special_tokens=False)["input_ids"])
        if prepend_bos is None:
            prepend_bos = self.default_prepend_bos
        if prepend_bos:
            if self.bos_token_id is None:
                raise TokenizationError("prepend_bos=True, but this tokenizer has no BOS token; pass prepend_bos=False")
            ids = [self.bos_token_id, *ids]
        return ids

    def to_tokens(
        self,
        text: str | Sequence[str],
        prepend_bos: bool | None = None,
        truncate: bool = False,
    ) -> tuple[Int[torch.Tensor, "batch pos"], Int[torch.Tensor, "batch pos"]]:
        """Tokens and attention mask; a batch of texts is right-padded."""
        if not isinstance(text, str | Sequence):
            raise TokenizationError(
                f"expected text: a string or a list of strings, got {type(text).__name__}; "
                "token ids go to the model as a torch tensor instead"
            )
        texts = [text] if isinstance(text, str) else list(text)
        if not texts:
            raise TokenizationError("no text given: pass a string or a non-empty list of strings")
        rows = [self.encode(t, prepend_bos) for t in texts]
        for i, row in enumerate(rows):
            if not row:
                fix = "pass more text" if self.mode == "tokenizer" else "pass prepend_bos=True or more text"
                raise TokenizationError(f"text {i} ({texts[i]!r}) tokenizes to nothing; {fix}")
            if len(row) > self.n_ctx:
                if not truncate:
                    raise TokenizationError(
                        f"text {i} is {len(row)} tokens long but the model's context is {self.n_ctx}; "
                        "shorten it or pass truncate=True to keep the first n_ctx tokens"
                    )
                rows[i] = row[: self.n_ctx]
        width = max(len(r) for r in rows)
        tokens = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            tokens[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return tokens, mask

    def to_string(self, tokens: torch.Tensor | Sequence[int] | int) -> str | list[str]:
        """Decode one sequence to a string, or a batch to a list of strings."""
        t = _token_ids(tokens, "to_string")
        if t.ndim == 0:
            return self.hf.decode([int(t)])
        if t.ndim == 1:
            return self.hf.decode(t.tolist())
        if t.ndim > 2:
            raise TokenizationError(f"to_string takes one sequence or a batch [batch, pos], got shape {tuple(t.shape)}")
        return [self.hf.decode(row.tolist()) for row in t]

    def to_str_tokens(self, tokens: torch.Tensor | Sequence[int]) -> list[str]:
        """One string per token of a single sequence."""
        t = _token_ids(tokens, "to_str_tokens")
        if t.ndim == 2:
            if t.shape[0] != 1:
                raise TokenizationError("to_str_tokens takes one sequence; index the batch first")
            t = t[0]
        if t.ndim > 1:
            raise TokenizationError(f"to_str_tokens takes one sequence of token ids, got shape {tuple(t.shape)}")
        return [self.hf.decode([i]) for i in t.reshape(-1).tolist()]

    def to_single_token(self, text: str) -> int:
        if not isinstance(text, str):
            raise TokenizationError(
                f"expected the text of one token (a str such as ' Mary'), got {type(text).__name__} {text!r:.60}"
            )
        ids = self.hf(text, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            pieces = [self.hf.decode([i]) for i in ids]
            raise TokenizationError(
                f"{text!r} is not a single token: it tokenizes to {len(ids)} tokens {pieces!r}. "
                "Pick a word that is one token (mind the leading space, e.g. ' Mary')."
            )
        return int(ids[0])


def _token_ids(tokens: object, what: str) -> torch.Tensor:
    """Token ids as an integer tensor, or a clear error (text, floats, negative or absurd ids)."""
    fix = "pass token ids: an int, a list of ints or an integer tensor"
    if isinstance(tokens, str):
        raise TokenizationError(f"{what} decodes token ids, got the text {tokens!r:.40}; {fix}")
    try:
        t = torch.as_tensor(tokens)
    except (TypeError, ValueError, RuntimeError, OverflowError) as err:
        raise TokenizationError(f"{what} got {type(tokens).__name__} {tokens!r:.40}; {fix}") from err
    if t.numel() == 0:
        return t.long()  # nothing to decode ([] is a float tensor to torch)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TokenizationError(f"{what} got a {t.dtype} tensor; {fix}")
    if int(t.min()) < 0 or int(t.max()) >= 2**31:
        raise TokenizationError(
            f"{what} got token ids {int(t.min())}..{int(t.max())}; ids are 0 or more, below the vocabulary size"
        )
    return t
