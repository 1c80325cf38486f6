"""The Othello rules engine against hand-checked positions and a naive square-by-square reference."""

from __future__ import annotations

import pytest
import torch

from circuitscope.toy.othello.board import (
    BLACK,
    DIRECTIONS,
    WHITE,
    Geometry,
    apply_moves,
    legal_mask,
    square_name,
    start_boards,
)
from circuitscope.toy.othello.games import PAD, IllegalGameError, random_games, replay

pytestmark = pytest.mark.usefixtures("one_thread")  # many small operations: one thread is fastest


def naive_flips(board: list[int], n: int, player: int, square: int) -> list[int]:
    """The squares a move flips, walking each direction square by square (empty list: illegal)."""
    if board[square] != 0:
        return []
    row, col = divmod(square, n)
    out: list[int] = []
    for dr, dc in DIRECTIONS:
        run, r, c = [], row + dr, col + dc
        while 0 <= r < n and 0 <= c < n and board[r * n + c] == -player:
            run.append(r * n + c)
            r, c = r + dr, c + dc
        if run and 0 <= r < n and 0 <= c < n and board[r * n + c] == player:
            out += run
    return out


def naive_legal(board: list[int], n: int, player: int) -> list[int]:
    return [s for s in range(n * n) if naive_flips(board, n, player, s)]


def _board(n: int, black: str = "", white: str = "") -> torch.Tensor:
    g, board = Geometry(n), torch.zeros(1, n * n, dtype=torch.long)
    for names, colour in ((black, BLACK), (white, WHITE)):
        for name in names.split():
            board[0, g.square(name)] = colour
    return board


def _names(mask: torch.Tensor, n: int) -> set[str]:
    return {square_name(int(s), n) for s in mask.nonzero()[:, 0]}


@pytest.mark.parametrize(("n", "expected"), [(8, {"d3", "c4", "f5", "e6"}), (6, {"c2", "b3", "e4", "d5"})])
def test_the_opening_position_has_four_legal_moves(n: int, expected: set[str]) -> None:
    g = Geometry(n)
    board = start_boards(g, 1)
    assert _names(board[0] == WHITE, n) == ({"d4", "e5"} if n == 8 else {"c3", "d4"})
    assert _names(legal_mask(g, board, torch.tensor([BLACK]))[0], n) == expected


def test_a_move_flips_in_every_closed_direction_and_no_other() -> None:
    g = Geometry(8)
    # black plays d4: closed runs up (d3), left (c4) and down-right (e5); right (e4 f4, then empty) and
    # down (d5 .. d8, then the edge) are not closed
    board = _board(8, black="d2 b4 f6", white="d3 c4 e5 e4 f4 d5 d6 d7 d8")
    after = apply_moves(g, board, torch.tensor([BLACK]), torch.tensor([g.square("d4")]))
    assert _names(after[0] == BLACK, 8) == {"d2", "b4", "f6", "d4", "d3", "c4", "e5"}
    assert _names(after[0] == WHITE, 8) == {"e4", "f4", "d5", "d6", "d7", "d8"}


def test_a_player_without_a_move_passes_and_the_game_goes_on() -> None:
    g = Geometry(8)
    board = _board(8, black="b1", white="a1")
    assert not legal_mask(g, board, torch.tensor([BLACK])).any()  # black must pass
    assert _names(legal_mask(g, board, torch.tensor([WHITE]))[0], 8) == {"c1"}


def test_a_finished_game_has_no_move_for_either_player_and_refuses_one_more() -> None:
    g = Geometry(6)
    games = random_games(g, 64, seed=3, passes="implicit")
    states = replay(g, games)
    lengths = (games != PAD).sum(1)
    final = states.boards[torch.arange(64), lengths]
    for board in final.tolist():
        assert naive_legal(board, 6, BLACK) == naive_legal(board, 6, WHITE) == []
    assert (states.player[torch.arange(64), lengths] == 0).all()
    short = games[lengths < g.max_moves]
    if len(short):  # a game that ended before the board was full: one more move is refused
        extra = short[:1].clone()
        end = int((extra[0] != PAD).sum())
        extra[0, end] = int((final[(lengths < g.max_moves).nonzero()[0, 0]] == 0).nonzero()[0, 0])
        with pytest.raises(IllegalGameError, match=f"game 0, move {end + 1}: the game is over"):
            replay(g, extra)


@pytest.mark.parametrize("n", [4, 6, 8])
def test_legal_moves_match_the_naive_reference_on_random_positions(n: int) -> None:
    g = Geometry(n)
    gen = torch.Generator().manual_seed(n)
    boards = torch.randint(-1, 2, (300, n * n), generator=gen)  # arbitrary positions, not only reachable ones
    played = replay(g, random_games(g, 20, seed=n, passes="implicit")).boards.flatten(0, 1)
    boards = torch.cat([boards, played])
    for player in (BLACK, WHITE):
        mask = legal_mask(g, boards, torch.full((len(boards),), player))
        counts = [len(naive_legal(b, n, player)) for b in boards.tolist()]
        assert mask.sum(1).tolist() == counts
        assert all(
            _names(m, n) == {square_name(s, n) for s in naive_legal(b, n, player)}
            for m, b in zip(mask[:50], boards[:50].tolist(), strict=True)
        )
    assert sum(counts) > 200  # the positions have moves to compare


@pytest.mark.parametrize("n", [6, 8])
def test_flips_match_the_naive_reference(n: int) -> None:
    g = Geometry(n)
    boards = replay(g, random_games(g, 8, seed=1, passes="implicit")).boards.flatten(0, 1)
    for player in (BLACK, WHITE):
        legal = legal_mask(g, boards, torch.full((len(boards),), player))
        has = legal.any(1)
        rows, moves = boards[has], legal[has].float().argmax(1)
        after = apply_moves(g, rows, torch.full((len(rows),), player), moves)
        for before, move, got in zip(rows.tolist(), moves.tolist(), after.tolist(), strict=True):
            expected = list(before)
            for s in [move, *naive_flips(before, n, player, move)]:
                expected[s] = player
            assert got == expected


def test_random_games_are_legal_under_the_naive_rules_and_seeded() -> None:
    g = Geometry(6)
    games = random_games(g, 40, seed=5, passes="implicit")
    assert torch.equal(games, random_games(g, 40, seed=5, passes="implicit"))
    assert not torch.equal(games, random_games(g, 40, seed=6, passes="implicit"))
    n_passes = 0
    for game in games.tolist():
        board, player = start_boards(g, 1)[0].tolist(), BLACK
        for move in [m for m in game if m != PAD]:
            if not naive_legal(board, 6, player):
                player, n_passes = -player, n_passes + 1  # a pass
            assert move in naive_legal(board, 6, player)
            for s in [move, *naive_flips(board, 6, player, move)]:
                board[s] = player
            player = -player
        assert naive_legal(board, 6, BLACK) == naive_legal(board, 6, WHITE) == []  # each game is played out
    assert n_passes == int(replay(g, games).passes.sum()) > 0
    without = random_games(g, 40, seed=5)  # the default drops games with a pass
    assert int(replay(g, without, passes="exclude").passes.sum()) == 0


def test_illegal_games_are_refused_with_the_move_number_and_why() -> None:
    g = Geometry(6)
    game = random_games(g, 1, seed=0)
    occupied = game.clone()
    occupied[0, 3] = g.square("c3")
    with pytest.raises(IllegalGameError, match="game 0, move 4: c3 is already occupied"):
        replay(g, occupied)
    no_flip = torch.full((2, g.max_moves), PAD)
    no_flip[0, :1] = g.square("c2")
    no_flip[1, 0] = g.square("a1")
    with pytest.raises(IllegalGameError, match=r"game 1, move 1: a1 flips no disc .* black cannot move there"):
        replay(g, no_flip)
    with pytest.raises(IllegalGameError, match="not a square"):
        replay(g, torch.tensor([[36]]))
    gap = game.clone()
    gap[0, 2] = PAD
    with pytest.raises(IllegalGameError, match="move 4: a move after the padding"):
        replay(g, gap)
