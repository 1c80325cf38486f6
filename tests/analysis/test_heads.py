"""Head detectors: scores of hand-set attention patterns equal their definitions; a planted induction circuit."""

from __future__ import annotations

import pytest
import torch

import circuitscope as cs
from circuitscope.analysis._heads import (
    detector_scores,
    duplicate_token_pattern,
    duplicate_token_scores,
    induction_pattern,
    induction_scores,
    previous_token_pattern,
    previous_token_scores,
    repeated_random_tokens,
)
from circuitscope.errors import ShapeError
from circuitscope.report.heads import plot_head_scores
from circuitscope.toy.model import build_toy


def _model(n_layers: int = 2, n_heads: int = 3) -> cs.HookedModel:
    return cs.HookedModel(build_toy(seed=0, d_vocab=40, n_ctx=32, d_model=24, n_layers=n_layers, n_heads=n_heads))


def _set_pattern(pattern_of: dict[tuple[int, int], torch.Tensor]):
    """Hooks that overwrite chosen heads' patterns with hand-made ones [batch, q, k]."""
    hooks = []
    for (layer, head), pattern in pattern_of.items():

        def hook(p: torch.Tensor, hook: object, head: int = head, pattern: torch.Tensor = pattern) -> torch.Tensor:
            p = p.clone()
            p[:, head] = pattern
            return p

        hooks.append((f"blocks.{layer}.attn.hook_pattern", hook))
    return hooks


def test_expected_patterns_by_hand() -> None:
    tokens = torch.tensor([[5, 6, 5, 6, 7]])
    assert previous_token_pattern(tokens)[0].nonzero().tolist() == [[1, 0], [2, 1], [3, 2], [4, 3]]
    assert duplicate_token_pattern(tokens)[0].nonzero().tolist() == [[2, 0], [3, 1]]
    # induction: query 2 (token 5) -> key 1 (after the earlier 5); query 3 (token 6) -> key 2
    assert induction_pattern(tokens)[0].nonzero().tolist() == [[2, 1], [3, 2]]


def test_scores_of_hand_set_patterns_equal_the_definition() -> None:
    model = _model()
    tokens = repeated_random_tokens(40, 8, 4, torch.Generator().manual_seed(0))  # [4, 16]
    n = tokens.shape[1]
    prev = torch.zeros(4, n, n)
    prev[:, 0, 0] = 1
    prev[:, torch.arange(1, n), torch.arange(0, n - 1)] = 1
    half = torch.zeros(4, n, n)  # attends half to the previous token, half to itself
    half[:, torch.arange(n), torch.arange(n)] = 0.5
    half[:, torch.arange(1, n), torch.arange(0, n - 1)] += 0.5
    half[:, 0, 0] = 1
    ind = torch.tril(torch.ones(n, n)) / torch.arange(1, n + 1)[:, None]  # uniform: the expected mass is computable
    ind = ind.expand(4, n, n).clone()
    hooks = _set_pattern({(0, 1): prev, (1, 2): half, (1, 0): ind})
    with model.hooks(hooks):
        scores = previous_token_scores(model, tokens).scores
        induction = induction_scores(model, tokens)
    assert scores[0, 1].item() == pytest.approx(1.0)
    assert scores[1, 2].item() == pytest.approx(0.5)
    mask = induction_pattern(tokens)
    valid = mask.any(-1)
    expected = ((ind * mask).sum(-1)[valid]).mean()
    assert induction.scores[1, 0].item() == pytest.approx(float(expected), rel=1e-5)
    assert induction.n_queries == int(valid.sum())


def test_planted_induction_circuit_is_found() -> None:
    # layer 0 head 0 attends to the previous token; layer 1 head 1 attends to the token after the earlier copy
    model = _model()
    tokens = repeated_random_tokens(40, 10, 4, torch.Generator().manual_seed(1))
    n = tokens.shape[1]
    prev = torch.zeros(4, n, n)
    prev[:, 0, 0] = 1
    prev[:, torch.arange(1, n), torch.arange(0, n - 1)] = 1
    target = induction_pattern(tokens).float()
    has = target.sum(-1, keepdim=True) > 0
    ind = torch.where(has, target / target.sum(-1, keepdim=True).clamp_min(1), torch.eye(n).expand(4, n, n))
    with model.hooks(_set_pattern({(0, 0): prev, (1, 1): ind})):
        induction = induction_scores(model, tokens)
        previous = previous_token_scores(model, tokens)
        duplicate = duplicate_token_scores(model, tokens)
    assert induction.top(1)[0][:2] == (1, 1) and induction.top(1)[0][2] == pytest.approx(1.0)
    assert previous.top(1)[0][:2] == (0, 0)
    others = induction.scores.clone()
    others[1, 1] = 0
    assert float(others.max()) < 0.5
    assert duplicate.scores.shape == (2, 3)
    fig = plot_head_scores(induction)
    assert len(list(fig.data)) == 1


def test_bad_input() -> None:
    model = _model()
    with pytest.raises(ShapeError, match="batch, pos"):
        detector_scores(model, torch.zeros(5, dtype=torch.long), previous_token_pattern)
    with pytest.raises(ShapeError, match="no query position"):
        detector_scores(model, torch.tensor([[1, 2, 3]]), duplicate_token_pattern, "duplicate")
