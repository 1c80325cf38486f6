"""Function vectors (Todd et al. 2023): heads that carry an in-context task, summed into one steering vector.

1. Build ICL prompts (``n_shots`` demonstrations, then a query) and corrupted copies whose
   demonstration labels are shuffled.
2. Mean output of every head (``hook_z``) at the last token over the clean prompts.
3. Average indirect effect (AIE) of a head: patch its mean clean output into the corrupted
   prompts and measure the rise in the probability of the correct answer's first token.
4. Function vector: the sum over the top-k heads of ``mean z @ W_O`` (their output in the
   residual-stream basis). Added at one layer's residual stream at the last token of a
   zero-shot prompt, it should make the model do the task.

For families with a norm after attention (Gemma 2/3), ``z @ W_O`` is the head's share before
that norm; the vector is still added to the residual stream, as the paper does for its models.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float

from circuitscope.core.fingerprint import model_fingerprint
from circuitscope.core.replay import unembed_at
from circuitscope.progress import OnProgress, track
from circuitscope.steering.apply import steering_hooks
from circuitscope.steering.tasks import IclTask
from circuitscope.steering.vector import SteeringVector

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["FunctionVectorResult", "function_vector", "icl_prompt", "zero_shot_accuracy"]

TEMPLATE = "Q: {x}\nA: {y}\n\n"
QUERY = "Q: {x}\nA:"


def icl_prompt(demos: list[tuple[str, str]], query: str) -> str:
    """``Q: x\\nA: y\\n\\n`` per demonstration, then ``Q: query\\nA:`` (the answer follows after a space)."""
    return "".join(TEMPLATE.format(x=x, y=y) for x, y in demos) + QUERY.format(x=query)


@dataclass(frozen=True)
class FunctionVectorResult:
    task: str
    aie: Float[torch.Tensor, "layer head"]
    """Average indirect effect of each head (probability of the correct first token)."""
    top_heads: list[tuple[int, int]]
    vector: SteeringVector
    """The function vector, at ``blocks.{layer}.hook_resid_pre`` (start_pos is set per prompt when applied)."""
    icl_accuracy: float
    """Accuracy with ``n_shots`` demonstrations (no intervention)."""
    corrupted_accuracy: float
    """Accuracy with shuffled demonstration labels."""
    zero_shot_accuracy: float
    """Accuracy of the bare query."""
    zero_shot_fv_accuracy: float
    """Accuracy of the bare query with the function vector added at its last token."""
    n_eval: int
    """Evaluation prompts (fresh ones, not those the heads were found with)."""
    head_vectors: Float[torch.Tensor, "layer head d_model"]
    """Every head's mean output at the last token (``mean z @ W_O``): any top-k vector is a sum of these."""
    eval_queries: list[str]
    """The zero-shot prompts of the evaluation (``Q: x\nA:``)."""
    eval_answers: list[int]
    """The first token of each query's answer."""

    def vector_for(self, top_k: int, layer: int, coefficient: float = 1.0) -> SteeringVector:
        """The function vector of the ``top_k`` heads by AIE, added at ``blocks.{layer}.hook_resid_pre``.

        On Gemma-3-270M the sum of ``z @ W_O`` is small next to the residual stream (the heads'
        output is normalised again before it is added), so it needs a coefficient near 10 to act.
        """
        fv, top = _top_heads_sum(self.aie, self.head_vectors, top_k)
        return SteeringVector(
            fv,
            f"blocks.{layer}.hook_resid_pre",
            method="function_vector",
            coefficient=coefficient,
            model=self.vector.model,
            details={**self.vector.details, "top_heads": [list(t) for t in top]},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "layer_hook": self.vector.hook,
            "top_heads": [f"L{layer}H{h}" for layer, h in self.top_heads],
            "top_heads_aie": [float(self.aie[layer, h]) for layer, h in self.top_heads],
            "icl_accuracy": self.icl_accuracy,
            "corrupted_accuracy": self.corrupted_accuracy,
            "zero_shot_accuracy": self.zero_shot_accuracy,
            "zero_shot_fv_accuracy": self.zero_shot_fv_accuracy,
            "n_eval": self.n_eval,
            "vector_norm": float(self.vector.vector.norm()),
        }


def _top_heads_sum(
    aie: Float[torch.Tensor, "layer head"], head_vectors: Float[torch.Tensor, "layer head d_model"], top_k: int
) -> tuple[Float[torch.Tensor, " d_model"], list[tuple[int, int]]]:
    """The sum of the mean outputs of the ``top_k`` heads by AIE, and those heads as (layer, head)."""
    order = aie.flatten().argsort(descending=True)[:top_k]
    top = [divmod(int(i), aie.shape[1]) for i in order]
    return torch.stack([head_vectors[li, h] for li, h in top]).sum(0), top


def _answer_token(model: HookedModel, y: str) -> int:
    ids = model.tok.encode(" " + y, prepend_bos=False)
    return ids[0]


@torch.no_grad()
def _logits_at(
    model: HookedModel, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, hooks: list | None = None
) -> torch.Tensor:
    """Logits at one position per row: the unembedding runs there only (262k-token vocabularies make it the cost)."""
    last_resid = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    with model.hooks(hooks or []):
        _, cache = model.run_with_cache(
            ids, names=[last_resid], stop_early=True, attention_mask=mask if not bool(mask.all()) else None
        )
        return unembed_at(model, cache[last_resid], positions.to(cache[last_resid].device)).float()


def _last_logits(model: HookedModel, prompts: list[str], hooks: list | None = None) -> torch.Tensor:
    ids, mask = model.tok.to_tokens(prompts)
    return _logits_at(model, ids, mask, mask.sum(1) - 1, hooks)


@dataclass(frozen=True)
class _IclPrompts:
    """ICL prompts, their copies with shuffled demonstration labels, and each answer's first token."""

    clean: list[str]
    corrupt: list[str]
    answers: list[int]


def _sample_prompts(model: HookedModel, task: IclTask, n_shots: int, n: int, rng: random.Random) -> _IclPrompts:
    """``n`` prompts of ``n_shots`` demonstrations and a query, drawn from the task's pairs with ``rng``."""
    clean, corrupt, answers = [], [], []
    for _ in range(n):
        chosen = rng.sample(task.pairs, n_shots + 1)
        demos, (qx, qy) = chosen[:-1], chosen[-1]
        ys = [y for _, y in demos]
        shuffled = ys[:]
        while n_shots > 1 and shuffled == ys:
            rng.shuffle(shuffled)
        clean.append(icl_prompt(demos, qx))
        corrupt.append(icl_prompt([(x, y) for (x, _), y in zip(demos, shuffled, strict=True)], qx))
        answers.append(_answer_token(model, qy))
    return _IclPrompts(clean, corrupt, answers)


@torch.no_grad()
def _head_effects(
    model: HookedModel, prompts: _IclPrompts, on_progress: OnProgress | None
) -> tuple[Float[torch.Tensor, "layer head"], Float[torch.Tensor, "layer head d_head"]]:
    """Each head's average indirect effect, and its mean output ``z`` at the last clean token."""
    cfg = model.cfg
    z_names = [f"blocks.{i}.attn.hook_z" for i in range(cfg.n_layers)]
    ids, mask = model.tok.to_tokens(prompts.clean)
    last = mask.sum(1) - 1
    _, cache = model.run_with_cache(
        ids, names=z_names, stop_early=True, attention_mask=mask if not bool(mask.all()) else None
    )
    rows = torch.arange(len(prompts.clean))
    z_mean = torch.stack([cache[n][rows, last].float().mean(0) for n in z_names])  # [layer, head, d_head]

    c_ids, c_mask = model.tok.to_tokens(prompts.corrupt)
    c_last = c_mask.sum(1) - 1
    ans = torch.tensor(prompts.answers)

    def p_correct(hooks: list) -> float:
        probs = _logits_at(model, c_ids, c_mask, c_last, hooks).softmax(-1)
        return float(probs[rows, ans.to(probs.device)].mean())

    base = p_correct([])
    aie = torch.zeros(cfg.n_layers, cfg.n_heads)
    heads = [(li, h) for li in range(cfg.n_layers) for h in range(cfg.n_heads)]
    for li, h in track(heads, "function vector: head effects", on_progress):
        value = z_mean[li, h]

        def patch(z: torch.Tensor, hook: Any, h: int = h, value: torch.Tensor = value) -> torch.Tensor:
            z = z.clone()
            z[rows, c_last, h] = value.to(z.dtype)
            return z

        aie[li, h] = p_correct([(z_names[li], patch)]) - base
    return aie, z_mean


def _accuracy(model: HookedModel, prompts: list[str], answers: torch.Tensor) -> float:
    """Top-1 accuracy of the first answer token at each prompt's last position (no intervention)."""
    return float((_last_logits(model, prompts).argmax(-1).cpu() == answers).float().mean())


def function_vector(
    model: HookedModel,
    task: IclTask,
    *,
    n_shots: int = 5,
    n_prompts: int = 16,
    n_eval: int = 20,
    top_k: int = 10,
    layer: int | None = None,
    seed: int = 0,
    on_progress: OnProgress | None = None,
) -> FunctionVectorResult:
    """Find the task's heads by AIE, build the function vector and measure zero-shot accuracy with and without it.

    Progress: stage ``"function vector: head effects"``, one unit a head.
    """
    cfg = model.cfg
    if n_shots < 1 or n_prompts < 1 or n_eval < 1 or top_k < 1:
        raise ValueError("n_shots, n_prompts, n_eval and top_k must be at least 1")
    if len(task.pairs) < n_shots + 1:
        raise ValueError(f"task {task.name!r} has {len(task.pairs)} pairs; {n_shots} shots need {n_shots + 1}")
    layer = cfg.n_layers // 3 if layer is None else layer
    model.check_layer_head(layer)
    rng = random.Random(seed)
    aie, z_mean = _head_effects(model, _sample_prompts(model, task, n_shots, n_prompts, rng), on_progress)
    head_vectors = torch.einsum("lhd,lhdm->lhm", z_mean, model.W_O.detach().float())
    fv, top = _top_heads_sum(aie, head_vectors, top_k)
    vector = SteeringVector(
        fv,
        f"blocks.{layer}.hook_resid_pre",
        method="function_vector",
        model=model_fingerprint(model),
        details={"task": task.name, "n_shots": n_shots, "top_heads": [list(t) for t in top]},
    )

    held_out = _sample_prompts(model, task, n_shots, n_eval, rng)
    queries = [p.rsplit("\n\n", 1)[-1] for p in held_out.clean]
    e_ans = torch.tensor(held_out.answers)
    return FunctionVectorResult(
        task=task.name,
        aie=aie,
        top_heads=top,
        vector=vector,
        icl_accuracy=_accuracy(model, held_out.clean, e_ans),
        corrupted_accuracy=_accuracy(model, held_out.corrupt, e_ans),
        zero_shot_accuracy=_accuracy(model, queries, e_ans),
        zero_shot_fv_accuracy=zero_shot_accuracy(model, vector, queries, held_out.answers),
        n_eval=n_eval,
        head_vectors=head_vectors,
        eval_queries=queries,
        eval_answers=held_out.answers,
    )


def zero_shot_accuracy(
    model: HookedModel, vector: SteeringVector | None, queries: list[str], answers: list[int]
) -> float:
    """Top-1 accuracy on the first answer token, with ``vector`` (if any) added at each query's last token."""
    if vector is None:
        return _accuracy(model, queries, torch.tensor(answers))
    hits = 0
    for q, a in zip(queries, answers, strict=True):
        n_tok = len(model.tok.encode(q))
        hooks = steering_hooks(vector.with_(start_pos=n_tok - 1), model)
        hits += int(int(_last_logits(model, [q], hooks)[0].argmax()) == a)
    return hits / len(queries)
