"""Flip a disc in the model's board: edit the residual stream along the linear mine/theirs probe directions.

As Nanda et al. (2023): at one position of a game, pick an occupied square whose flip (mine to theirs, or
theirs to mine) changes the legal moves of the player to move. At a start layer and every probed layer
after it, the residual stream at that position is moved along the probe's direction for the square (the
difference of its two states' weights) until the probe's logit difference is mirrored across the
decision boundary (``strength`` times its size, on the other side). The model's predictions are then
scored against the edited board's legal moves, beside the unedited run's.

Scores (means over the edits): ``top1`` is the fraction of top-1 predictions legal on the edited board;
``errors`` is Li et al.'s count for the top-k predictions, k the number of legal moves of the edited
board: how many of them are not legal there (0: the predicted set is the edited board's legal set).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from jaxtyping import Bool, Float

from circuitscope.core.hook_points import HookPoint
from circuitscope.core.hooked_model import HookedModel
from circuitscope.toy.othello.board import EMPTY, legal_mask
from circuitscope.toy.othello.config import OthelloConfig
from circuitscope.toy.othello.probes import BoardProbe, ProbeData, resid_name
from circuitscope.toy.othello.training import model_inputs

__all__ = ["EditCases", "EditResult", "EditScore", "choose_edits", "edit_board", "mirror_along", "topk_errors"]


@dataclass(frozen=True)
class EditCases:
    """The edits: one (game, position, square) each, with both boards' legal moves for the player to move."""

    game: torch.Tensor
    """Probe game of each edit."""
    position: torch.Tensor
    """Position (0-based move read) of each edit."""
    square: torch.Tensor
    """The flipped square."""
    state_from: torch.Tensor
    """Its state in the ``relative`` framing before the edit (1 mine, 2 theirs); after it is the other."""
    legal_original: Bool[torch.Tensor, "C S"]
    legal_edited: Bool[torch.Tensor, "C S"]


@dataclass(frozen=True)
class EditScore:
    """The edits started at one layer (and applied at every probed layer after it)."""

    layer: int
    """First residual stream edited (0: embedding, l: after block l)."""
    top1_edited: float
    """Edited run: fraction of top-1 predictions legal on the edited board (high: the model follows the
    edit)."""
    top1_unedited: float
    """Unedited run: the same fraction (the baseline)."""
    errors_edited: float
    """Edited run: mean top-k predictions not legal on the edited board (0: its predicted set is the edited
    board's legal set)."""
    errors_unedited: float
    """Unedited run: the same count on the edited board (the baseline)."""
    errors_original: float
    """Unedited run on the true board (how well the model knows the position)."""

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class EditResult:
    """The intervention experiment."""

    n_edits: int
    strength: float
    """The probe's logit difference after each edit, as a multiple of its size before (on the other side)."""
    by_layer: list[EditScore]

    def best(self) -> EditScore:
        """The start layer whose edits agree best with the edited boards (fewest errors)."""
        return min(self.by_layer, key=lambda s: s.errors_edited)

    def to_json(self) -> dict[str, object]:
        return {"n_edits": self.n_edits, "strength": self.strength, "by_layer": [s.to_json() for s in self.by_layer]}


def choose_edits(config: OthelloConfig, data: ProbeData, n: int, seed: int) -> EditCases:
    """Up to ``n`` edits on held-out positions: a random occupied square whose flip changes the legal moves
    of the player to move (who still has a move on the edited board)."""
    geometry = config.geometry()
    g = torch.Generator().manual_seed(seed)
    rows = (~data.train).nonzero()[:, 0]
    rows = rows[torch.randperm(len(rows), generator=g)]
    boards, to_move = data.boards[rows], data.to_move[rows]
    occupied = boards != EMPTY
    square = (torch.rand(occupied.shape, generator=g) * occupied).argmax(-1)
    edited = boards.clone()
    edited[torch.arange(len(rows)), square] *= -1
    original_legal = legal_mask(geometry, boards, to_move)
    edited_legal = legal_mask(geometry, edited, to_move)
    keep = ((original_legal != edited_legal).any(-1) & edited_legal.any(-1)).nonzero()[:n, 0]
    relative = boards[keep, square[keep]] * to_move[keep]
    return EditCases(
        game=data.game[rows[keep]],
        position=data.position[rows[keep]],
        square=square[keep],
        state_from=torch.where(relative == 1, 1, 2),
        legal_original=original_legal[keep],
        legal_edited=edited_legal[keep],
    )


def mirror_along(
    x: Float[torch.Tensor, "C d"], v: Float[torch.Tensor, "C d"], c: Float[torch.Tensor, " C"], strength: float
) -> Float[torch.Tensor, "C d"]:
    """Each row of ``x`` moved along its ``v`` until ``x · v + c`` (a probe's logit difference, negative while it
    reads the old state) is ``strength`` times its old size, on the positive side."""
    delta = (x * v).sum(-1) + c
    step = (strength * delta.abs() - delta) / (v * v).sum(-1).clamp_min(1e-12)
    return x + step[:, None] * v


def topk_errors(logits: Float[torch.Tensor, "C S"], legal: Bool[torch.Tensor, "C S"]) -> float:
    """Li et al.'s error count: of each row's top-k squares (k its number of legal ones), how many are not legal."""
    k = legal.sum(-1)
    ranked = logits.argsort(-1, descending=True)
    in_top = torch.arange(logits.shape[-1])[None] < k[:, None]  # the first k of each row's ranking
    hits = (legal.gather(-1, ranked) & in_top).sum(-1)
    return float((k - hits).float().mean())


def _top1(logits: torch.Tensor, legal: torch.Tensor) -> float:
    return float(legal.gather(-1, logits.argmax(-1, keepdim=True)).float().mean())


@torch.no_grad()
def edit_board(
    hooked: HookedModel,
    config: OthelloConfig,
    probes: dict[int, BoardProbe],
    moves: torch.Tensor,
    cases: EditCases,
    strength: float = 1.0,
) -> EditResult:
    """Score the edits of ``cases`` started at each probed layer (see the module docstring)."""
    n_squares = config.geometry().n_squares
    tokens = model_inputs(moves[cases.game], n_squares)
    rows = torch.arange(len(cases.game))

    def read(logits: torch.Tensor) -> torch.Tensor:
        return logits[rows, cases.position, :n_squares]

    unedited = read(hooked(tokens))

    def hook_for(layer: int):
        v_all, c_all = {}, {}
        for state_from in (1, 2):
            v_all[state_from], c_all[state_from] = probes[layer].directions(state_from, 3 - state_from)
        mine = cases.state_from == 1
        v = torch.where(mine[:, None], v_all[1][cases.square], v_all[2][cases.square])  # [C, d]
        c = torch.where(mine, c_all[1][cases.square], c_all[2][cases.square])

        def edit(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
            x = x.clone()
            x[rows, cases.position] = mirror_along(x[rows, cases.position], v, c, strength)
            return x

        return edit

    layers = sorted(probes)
    scores = []
    for start in layers:
        hooks = [(resid_name(layer), hook_for(layer)) for layer in layers if layer >= start]
        edited = read(hooked.run_with_hooks(tokens, fwd_hooks=hooks))
        scores.append(
            EditScore(
                layer=start,
                top1_edited=_top1(edited, cases.legal_edited),
                top1_unedited=_top1(unedited, cases.legal_edited),
                errors_edited=topk_errors(edited, cases.legal_edited),
                errors_unedited=topk_errors(unedited, cases.legal_edited),
                errors_original=topk_errors(unedited, cases.legal_original),
            )
        )
    return EditResult(n_edits=len(cases.game), strength=strength, by_layer=scores)
