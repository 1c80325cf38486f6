"""Real tier: the function-vector experiment (Todd et al. 2023) on the embedded Gemma-3-270M.

Measured (docs/steering.md): with 5 demonstrations Gemma-3-270M does country_capital in context (0.83) and the
bare query ``Q: x\nA:`` never (0.0: it answers " The"). The function vector at coefficient 1 (the
paper's) changes nothing on this model: Gemma normalises the attention output again before adding
it, so the sum of ``z @ W_O`` is small next to the residual stream. Scaled up it works for
country_capital: zero-shot 0.0 -> 0.725 (layer 6, coefficient 10), 0.875 (layer 9, coefficient 30).
For antonyms it never did (0.0 at layers 3, 6, 9 and coefficients 1-30).
"""

from __future__ import annotations

import random

import pytest
import torch

import circuitscope as cs
from circuitscope.steering import ICL_TASKS
from circuitscope.steering.function_vectors import _answer_token, _last_logits, icl_prompt, zero_shot_accuracy

pytestmark = pytest.mark.real


def _prompts(task: str, n: int, shots: int, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    rng = random.Random(seed)
    pairs = ICL_TASKS[task].pairs
    icl, zero, answers = [], [], []
    for _ in range(n):
        chosen = rng.sample(pairs, shots + 1)
        icl.append(icl_prompt(chosen[:-1], chosen[-1][0]))
        zero.append(icl_prompt([], chosen[-1][0]))
        answers.append(chosen[-1][1])
    return icl, zero, answers


@pytest.mark.parametrize("task", ["country_capital", "uppercase"])
def test_demonstrations_carry_the_task(gemma: cs.HookedModel, task: str) -> None:
    icl, zero, words = _prompts(task, 16, 5)
    answers = [_answer_token(gemma, w) for w in words]
    icl_acc = float((_last_logits(gemma, icl).argmax(-1) == torch.tensor(answers)).float().mean())
    zero_acc = zero_shot_accuracy(gemma, None, zero, answers)
    assert icl_acc >= zero_acc + 0.2, (icl_acc, zero_acc)
    # the last-position unembedding equals the full forward pass
    tokens = gemma.to_tokens(icl[0])
    with torch.no_grad():
        full = gemma(tokens)[0, -1].float()
    # only the last position replayed and unembedded: another GEMM shape, measured 2.1e-5 on logits ~25
    torch.testing.assert_close(_last_logits(gemma, icl[:1])[0], full, rtol=1e-5, atol=2e-4)


# the top-10 heads by average indirect effect for country_capital (function_vector, 16 prompts, seed 0)
CAPITAL_HEADS = [(9, 3), (13, 3), (17, 2), (15, 1), (10, 0), (12, 3), (11, 2), (5, 1), (10, 2), (10, 1)]


def test_capital_function_vector_lifts_zero_shot_accuracy(gemma: cs.HookedModel) -> None:
    """Those heads' mean outputs, summed and added at layer 6 with coefficient 10: 0.0 -> 0.725 measured."""
    from circuitscope.steering import SteeringVector

    icl, _, _ = _prompts("country_capital", 16, 5, seed=1)
    ids, mask = gemma.tok.to_tokens(icl)
    last = mask.sum(1) - 1
    names = sorted({f"blocks.{layer}.attn.hook_z" for layer, _ in CAPITAL_HEADS})
    with torch.no_grad():
        _, cache = gemma.run_with_cache(ids, names=names, stop_early=True, attention_mask=mask)
    rows = torch.arange(len(icl))
    W_O = gemma.W_O.detach().float()
    fv = torch.zeros(gemma.cfg.d_model)
    for layer, head in CAPITAL_HEADS:
        z = cache[f"blocks.{layer}.attn.hook_z"][rows, last, head].float().mean(0)
        fv += z @ W_O[layer, head]
    pairs = ICL_TASKS["country_capital"].pairs
    queries = [icl_prompt([], x) for x, _ in pairs]
    answers = [_answer_token(gemma, y) for _, y in pairs]
    base = zero_shot_accuracy(gemma, None, queries, answers)
    steered = zero_shot_accuracy(
        gemma, SteeringVector(fv, "blocks.6.hook_resid_pre", coefficient=10.0), queries, answers
    )
    assert base <= 0.1 and steered >= 0.4, (base, steered)
    assert gemma.active_hooks() == []
