"""Input checks every view runs before any work: a request's prompt, layer, head and answer tokens against the model.

Each failure is a :class:`~circuitscope.serve.errors.ServeInputError` whose message says what is wrong and how
to fix it, so the API answers 400 with that text.
"""

from __future__ import annotations

import torch

from circuitscope.core.hooked_model import HookedModel
from circuitscope.errors import TokenizationError
from circuitscope.serve.errors import ServeInputError

__all__ = ["answer_pair", "check_head", "check_index", "check_layer", "check_top_k", "prompt_tokens", "single_token"]


def prompt_tokens(model: HookedModel, prompt: object, what: str = "prompt") -> torch.Tensor:
    """The prompt's token ids ``[1, pos]`` (BOS per the model's convention), or a clear error."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ServeInputError(f"the {what} is empty or not text ({type(prompt).__name__}): type some text")
    try:
        return model.to_tokens(prompt)
    except TokenizationError as err:
        raise ServeInputError(f"the {what} cannot be run: {err}") from err


def check_index(value: object, size: int, what: str, owner: str = "this model") -> int:
    """``value`` as an index in ``[0, size)`` of ``what`` ("layer"), which ``owner`` has ``size`` of."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ServeInputError(f"{what} must be a whole number, got {type(value).__name__} {value!r:.40}")
    if not 0 <= value < size:
        raise ServeInputError(f"{what} {value} is out of range: {owner} has {what}s 0-{size - 1}")
    return value


def check_layer(model: HookedModel, layer: object) -> int:
    """A layer index of ``model`` ("layer 18 is out of range: this model has layers 0-17")."""
    return check_index(layer, model.cfg.n_layers, "layer")


def check_head(model: HookedModel, head: object) -> int:
    """A head index of ``model``."""
    return check_index(head, model.cfg.n_heads, "head")


def single_token(model: HookedModel, text: object, what: str) -> int:
    if not isinstance(text, str) or not text:
        raise ServeInputError(f"the {what} must be the text of one token, e.g. ' Mary'; got {text!r:.40}")
    try:
        return model.to_single_token(text)
    except TokenizationError as err:
        raise ServeInputError(f"the {what} {err}") from err


def answer_pair(model: HookedModel, answer: object, wrong: object) -> tuple[int, int] | None:
    """The token ids of ``answer`` and ``wrong`` (each one token, a leading space allowed), or None for neither."""
    if answer is None and wrong is None:
        return None
    if answer is None or wrong is None:
        given = "answer" if wrong is None else "wrong"
        raise ServeInputError(f"only the {given} token was given: give both an answer and a wrong token, or neither")
    pair = single_token(model, answer, "answer"), single_token(model, wrong, "wrong token")
    if pair[0] == pair[1]:
        raise ServeInputError(
            f"the answer and the wrong token are the same token ({answer!r}): their logit difference is always 0; "
            "give two different tokens"
        )
    return pair


def check_top_k(top_k: object) -> int:
    """``top_k`` as a positive whole number."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ServeInputError(f"top_k must be a whole number of at least 1, got {top_k!r:.40}")
    return top_k
