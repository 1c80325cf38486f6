"""The prompt view: the prompt's tokens, the next-token predictions, the logit lens and, for an answer pair, DLA.

The logit lens is :func:`~circuitscope.analysis.logit_lens` (each layer's residual stream through the real final
norm and the unembedding) and the attribution :func:`~circuitscope.analysis.direct_logit_attribution`, both on a
one-prompt :class:`~circuitscope.tasks.Task`; this module only checks the request and shapes the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from circuitscope.analysis import DLAResult, LogitLensResult, direct_logit_attribution, logit_lens
from circuitscope.core.hooked_model import HookedModel
from circuitscope.serve.views._checks import answer_pair, check_top_k, prompt_tokens
from circuitscope.serve.views._json import round_sig, token_text
from circuitscope.tasks import Task

__all__ = [
    "LENS_TOP_K",
    "LensRows",
    "Prediction",
    "PromptView",
    "dla_json",
    "predictions",
    "prompt_task",
    "prompt_view",
]

LENS_TOP_K = 5
"""How many tokens the logit lens keeps per layer and position (the page's hover)."""


@dataclass(frozen=True)
class Prediction:
    """One candidate next token."""

    token: str
    """Its text."""
    id: int
    """Its id."""
    prob: float
    """Its probability (softmax of the logits)."""
    logit: float
    """Its logit."""

    def to_json(self) -> dict[str, Any]:
        return {"token": self.token, "id": self.id, "prob": self.prob, "logit": self.logit}


def predictions(model: HookedModel, logits: torch.Tensor, top_k: int) -> list[Prediction]:
    """The ``top_k`` most likely next tokens from one position's logits ``[d_vocab]``."""
    logits = logits.detach().float().cpu()
    probs = logits.softmax(-1)
    values, ids = probs.topk(min(top_k, probs.shape[-1]))
    return [
        Prediction(token_text(model, int(i)), int(i), float(p), float(logits[i]))
        for p, i in zip(values, ids, strict=True)
    ]


@dataclass(frozen=True)
class LensRows:
    """The logit lens of one prompt: a row per residual stream (the embeddings, then after each block)."""

    labels: list[str]
    """``embed``, ``L0`` .. ``L{n-1}``: the residual stream after that block (the last row is the model's output)."""
    tokens: list[list[list[str]]]
    """``[row][position]``: the lens's top tokens, most likely first."""
    probs: torch.Tensor
    """``[row, position, k]``: their probabilities."""

    @classmethod
    def of(cls, result: LogitLensResult) -> LensRows:
        """From the library's result (its rows ``0_pre`` .. ``{n-1}_pre``, ``final``)."""
        labels = ["embed", *(f"L{i}" for i in range(len(result.layers) - 1))]
        return cls(labels, result.top_tokens, result.top_probs)

    def to_json(self) -> dict[str, Any]:
        probs = round_sig(self.probs)
        top_k = [
            [[{"token": t, "prob": p} for t, p in zip(ts, ps, strict=True)] for ts, ps in zip(row, prow, strict=True)]
            for row, prow in zip(self.tokens, probs, strict=True)
        ]
        return {"labels": self.labels, "top": [[pos[0] for pos in row] for row in top_k], "top_k": top_k}


def dla_json(result: DLAResult, answer: str, wrong: str) -> dict[str, Any]:
    """The attribution of ``answer`` minus ``wrong`` at the last position, by layer, head and MLP, as the page
    draws it: ``labels``/``values`` in order (the embeddings, then each layer's heads and MLP), ``layers`` (its
    heads, their output bias and its MLP), ``heads``, ``mlps``; with ``head_bias``, ``embed`` and ``bias`` the
    values add up to ``pre_softcap_total``, the logit difference before any final softcapping."""
    r = result
    n_layers, n_heads = r.heads.shape
    embed = [(label, float(v)) for label, v in zip(r.component_labels, r.components, strict=True)]
    embed = [(label, v) for label, v in embed if "_attn_out" not in label and "_mlp_out" not in label]
    labels, values = [label for label, _ in embed], [v for _, v in embed]
    for layer in range(n_layers):
        labels += [*(f"L{layer}H{h}" for h in range(n_heads)), f"L{layer} MLP"]
        values += [*r.heads[layer].tolist(), float(r.mlp[layer])]
    return {
        "answer": answer,
        "wrong": wrong,
        "logit_diff": r.total,
        "labels": labels,
        "values": values,
        "layers": (r.attn + r.mlp).tolist(),
        "heads": r.heads.tolist(),
        "head_bias": r.head_bias.tolist(),
        "mlps": r.mlp.tolist(),
        "embed": sum(v for _, v in embed),
        "bias": r.bias,
        "pre_softcap_total": r.pre_softcap_total,
    }


@dataclass(frozen=True)
class PromptView:
    """What the prompt view shows for one prompt."""

    tokens: list[str]
    """The prompt's tokens as text (BOS included where the model prepends it)."""
    token_ids: list[int]
    """Their ids."""
    predictions: list[Prediction]
    """The most likely next tokens at the last position."""
    logit_lens: LensRows
    """The logit lens at every position."""
    answers: tuple[str, str] | None
    """The answer and the wrong token as text, when a pair was given."""
    dla: DLAResult | None
    """Direct logit attribution of their logit difference at the last position (with the pair only)."""

    def to_json(self) -> dict[str, Any]:
        dla = None if self.dla is None or self.answers is None else dla_json(self.dla, *self.answers)
        return {
            "tokens": self.tokens,
            "token_ids": self.token_ids,
            "predictions": [p.to_json() for p in self.predictions],
            "logit_lens": self.logit_lens.to_json(),
            "dla": dla,
        }


def prompt_task(prompt: str, tokens: torch.Tensor, pair: tuple[int, int]) -> Task:
    """A one-prompt task over ``tokens`` ``[1, pos]`` answered at the last position by ``pair`` (correct, wrong)."""
    last = torch.tensor([tokens.shape[1] - 1])
    return Task("serve", [prompt], [prompt], tokens, tokens, last, torch.tensor([pair[0]]), torch.tensor([pair[1]]))


@torch.no_grad()
def prompt_view(
    model: HookedModel, prompt: str, *, answer: str | None = None, wrong: str | None = None, top_k: int = 10
) -> PromptView:
    """Tokens, the ``top_k`` next-token predictions, the logit lens and (given ``answer`` and ``wrong``, each one
    token) the direct logit attribution of their logit difference."""
    tokens = prompt_tokens(model, prompt)
    pair = answer_pair(model, answer, wrong)
    top_k = check_top_k(top_k)
    logits = model(tokens)[0, -1]
    ranked = predictions(model, logits, top_k)
    # the lens's per-answer numbers are not shown: without a pair, the top prediction stands in for both answers
    task = prompt_task(prompt, tokens, pair or (ranked[0].id, ranked[0].id))
    lens = LensRows.of(logit_lens(model, task, k=min(LENS_TOP_K, model.cfg.d_vocab)))
    answers = None if pair is None else (token_text(model, pair[0]), token_text(model, pair[1]))
    dla = None if pair is None else direct_logit_attribution(model, task)
    return PromptView(model.to_str_tokens(tokens[0]), tokens[0].tolist(), ranked, lens, answers, dla)
