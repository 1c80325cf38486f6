"""Logit lens: decode the residual stream before every block through the final norm and unembedding.

Each layer's residual stream goes through the real final norm (its own scale, not the
final layer's) and the unembedding, so the last row equals the model's own logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float

from circuitscope.core.hooked_model import HookedModel
from circuitscope.errors import UnsupportedModelError
from circuitscope.tasks.task import Task

__all__ = ["LogitLensResult", "decode_resid", "logit_lens"]


@dataclass(frozen=True)
class LogitLensResult:
    """Per layer: how the answers fare when the residual stream so far is decoded."""

    layers: list[str]
    """``0_pre`` .. ``{n-1}_pre`` then ``final``."""
    logit_diff: Float[torch.Tensor, " layer"]
    """Mean logit difference (correct - incorrect) at the answer positions."""
    correct_prob: Float[torch.Tensor, " layer"]
    """Mean probability of the correct answer."""
    correct_rank: Float[torch.Tensor, " layer"]
    """Mean rank of the correct answer (0 = top)."""
    top_tokens: list[list[list[str]]]
    """For the first prompt: ``[layer][pos]`` the top-k decoded tokens."""
    top_probs: Float[torch.Tensor, "layer pos k"]
    """Their probabilities."""
    str_tokens: list[str]
    """The first clean prompt's tokens."""


def decode_resid(model: HookedModel, resid: Float[torch.Tensor, "... d_model"]) -> Float[torch.Tensor, "... d_vocab"]:
    """Final norm and unembedding (and final softcapping, where the family has it), without hooks."""
    if model.wiring.final_norm is None or model.wiring.unembed is None:
        raise UnsupportedModelError(f"the {model.cfg.family} model has no final norm and unembedding to decode with")
    return model.unembed_resid(resid)


def _token(model: HookedModel, token: int) -> str:
    text = model.to_string(token) if model.tokenizer is not None else f"#{token}"
    assert isinstance(text, str)
    return text


@torch.no_grad()
def logit_lens(model: HookedModel, task: Task, k: int = 5) -> LogitLensResult:
    """Decode ``resid_pre`` of every block and the final residual stream of the clean prompts."""
    n = model.cfg.n_layers
    _, cache = model.run_with_cache(
        task.clean_tokens, names=["blocks.*.hook_resid_pre", f"blocks.{n - 1}.hook_resid_post"]
    )
    stack = cache.accumulated_resid()
    rows = torch.arange(len(task))
    diffs, probs, ranks, top_probs, top_tokens = [], [], [], [], []
    first_len = int(task.answer_pos[0]) + 1
    for layer in range(stack.tensor.shape[0]):
        resid = stack.tensor[layer]
        logits = decode_resid(model, resid[rows, task.answer_pos]).float()
        correct = logits[rows, task.correct]
        diffs.append((correct - logits[rows, task.incorrect]).mean())
        probs.append(logits.softmax(-1)[rows, task.correct].mean())
        ranks.append((logits > correct[:, None]).sum(-1).float().mean())
        first = decode_resid(model, resid[0, :first_len]).float().softmax(-1)
        values, ids = first.topk(k, dim=-1)
        top_probs.append(values)
        top_tokens.append([[_token(model, int(i)) for i in row] for row in ids])
    return LogitLensResult(
        layers=[*(f"{i}_pre" for i in range(n)), "final"],
        logit_diff=torch.stack(diffs),
        correct_prob=torch.stack(probs),
        correct_rank=torch.stack(ranks),
        top_tokens=top_tokens,
        top_probs=torch.stack(top_probs),
        str_tokens=[_token(model, int(i)) for i in task.clean_tokens[0, :first_len]],
    )
