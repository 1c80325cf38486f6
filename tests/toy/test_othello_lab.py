"""The Othello-GPT lab on tiny configurations: configs refused before any work, game files, bit-exact resume,
the probes and the edit against hand-made cases, the report in headless Chromium, ``circuitscope lab othello``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import circuitscope as cs
from circuitscope.cli.main import app
from circuitscope.report.othello import othello_report
from circuitscope.toy.errors import CheckpointError, LabConfigError
from circuitscope.toy.othello.board import Geometry, legal_mask
from circuitscope.toy.othello.config import OthelloConfig
from circuitscope.toy.othello.files import load_games, save_games
from circuitscope.toy.othello.games import PAD, IllegalGameError, random_games, replay
from circuitscope.toy.othello.intervene import mirror_along, topk_errors
from circuitscope.toy.othello.lab import run_othello
from circuitscope.toy.othello.probes import fit_board_probe, probe_data
from circuitscope.toy.othello.training import legal_move_accuracy, next_legal, othello_games, train_othello
from tests.browser import open_in_chromium

pytestmark = pytest.mark.usefixtures("one_thread")  # a small model: one thread is faster and steadier

TINY = OthelloConfig(
    n_train_games=64,
    n_test_games=16,
    n_probe_games=20,
    d_model=16,
    n_layers=2,
    n_heads=2,
    d_mlp=32,
    steps=6,
    batch_size=8,
    warmup_steps=2,
    checkpoint_every=3,
    probe_hidden=16,
    probe_steps=30,
    n_edits=10,
)
runner = CliRunner()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"probe_layers": (0, 3)}, "out of range"),
        ({"probe_layers": ()}, "out of range"),
        ({"size": 7}, "must be 4, 6 or 8"),
        ({"batch_size": 65}, "batch_size must lie in"),
        ({"d_model": 15}, "multiple of n_heads"),
        ({"target": "moves"}, "target must be one of"),
        ({"lr": 0.0}, "lr must be positive"),
    ],
)
def test_configs_that_cannot_train_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(LabConfigError, match=message):
        replace(TINY, **changes)
    with pytest.raises(LabConfigError, match="choose one of"):
        OthelloConfig.preset("huge")  # type: ignore[arg-type]
    assert OthelloConfig.preset("paper").size == 8


def test_game_files_round_trip_and_illegal_files_are_refused(tmp_path: Path) -> None:
    g = Geometry(6)
    games = random_games(g, 5, seed=2)
    path = save_games(tmp_path / "games.safetensors", games, 6, "exclude")
    moves, geometry, passes = load_games(path)
    assert torch.equal(moves, games) and geometry.size == 6 and passes == "exclude"
    from safetensors.torch import save_file

    bad = games.clone()
    bad[3, 7] = bad[3, 2]  # a square played twice
    meta = {"format": "circuitscope.othello.games", "version": "1", "size": "6", "passes": "exclude"}
    save_file({"moves": bad.to(torch.int16)}, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(IllegalGameError, match=r"game 3, move 8: .* is already occupied"):
        load_games(tmp_path / "bad.safetensors")
    save_file({"moves": games.to(torch.int16)}, str(tmp_path / "new.safetensors"), metadata={**meta, "version": "2"})
    with pytest.raises(LabConfigError, match="version '2'"):
        load_games(tmp_path / "new.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(LabConfigError, match="not a readable game file"):
        load_games(tmp_path / "junk.safetensors")
    with pytest.raises(IllegalGameError, match="game 3, move 8"):
        save_games(tmp_path / "never.safetensors", bad, 6, "exclude")
    assert not (tmp_path / "never.safetensors").exists()


def test_interrupted_and_resumed_training_equals_uninterrupted_bit_for_bit(tmp_path: Path) -> None:
    games = othello_games(TINY)
    whole, whole_run = train_othello(TINY, games, None, threads=1)
    train_othello(replace(TINY, steps=3), games, tmp_path, threads=1)
    resumed, resumed_run = train_othello(TINY, games, tmp_path, threads=1)  # a fresh model, state from disk
    assert resumed_run.resumed_from == 3
    assert resumed_run.loss == whole_run.loss
    assert resumed_run.metrics == whole_run.metrics
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(CheckpointError, match="another configuration"):  # another board, same folder
        train_othello(replace(TINY, size=4, n_train_games=64), othello_games(replace(TINY, size=4)), tmp_path, 1)
    acc = legal_move_accuracy(resumed, TINY, games.test, next_legal(TINY, games.test))
    with torch.no_grad():  # the same number from a loop over the positions of the games
        logits = resumed(torch.where(games.test[:, :-1] == PAD, 36, games.test[:, :-1])).logits
    states, hits, total = replay(Geometry(6), games.test), 0, 0
    for game in range(games.test.shape[0]):
        for pos in range(games.test.shape[1] - 1):
            if games.test[game, pos + 1] == PAD:
                break
            legal = states.legal[game, pos + 1]
            hits, total = hits + int(legal[int(logits[game, pos, :36].argmax())]), total + 1
    assert acc == pytest.approx(hits / total)


def test_probe_labels_count_the_discs_and_frame_them_by_the_player_to_move() -> None:
    games = othello_games(TINY)
    model = cs.HookedModel(train_othello(replace(TINY, steps=1), games, None, threads=1)[0])
    data = probe_data(model, TINY, games.probe)
    assert set(data.resid) == {0, 1, 2} and data.resid[0].shape == (data.game.shape[0], 16)
    occupied = (data.labels["colour"] != 0).sum(1)
    assert torch.equal(occupied, data.position + 5)  # 4 discs at the start, one more per move read
    assert torch.equal(data.labels["colour"] != 0, data.labels["relative"] != 0)
    # no passes: after an odd number of moves black is to move, so mine = black
    black_to_move = data.position % 2 == 1
    assert torch.equal(data.to_move == 1, black_to_move)
    same = data.labels["colour"] == data.labels["relative"]
    assert torch.equal(same[black_to_move], torch.ones_like(same[black_to_move]))
    swapped = (data.labels["relative"] == 3 - data.labels["colour"]) | (data.labels["colour"] == 0)
    assert swapped[~black_to_move].all()
    assert data.train.float().mean() == pytest.approx(0.8, abs=0.1)


def test_a_linear_probe_reads_a_linear_code_and_only_the_mlp_reads_a_parity_code() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 8, generator=gen)
    linear = torch.stack([torch.where(x[:, 0] > 0.5, 1, torch.where(x[:, 0] < -0.5, 2, 0)), (x[:, 1] > 0).long()], 1)
    parity = torch.where((x[:, 2] > 0) == (x[:, 3] > 0), 1, 2)[:, None]  # the XOR of two signs: not linear
    train, test = slice(0, 3000), slice(3000, None)

    def accuracy(labels: torch.Tensor, kind: str) -> float:
        probe = fit_board_probe(x[train], labels[train], kind, hidden=32, steps=400, seed=0)  # type: ignore[arg-type]
        return float((probe.logits(x[test]).argmax(-1) == labels[test]).float().mean())

    assert accuracy(linear, "linear") > 0.95
    assert accuracy(parity, "linear") < 0.65 < 0.9 < accuracy(parity, "mlp")
    probe = fit_board_probe(x[train], linear[train], "linear", steps=50, seed=0)
    v, c = probe.directions(1, 2)  # logit(theirs) - logit(mine) of each square, on raw activations
    logits = probe.logits(x[:5])
    torch.testing.assert_close(x[:5] @ v.T + c, logits[:, :, 2] - logits[:, :, 1])
    with pytest.raises(LabConfigError, match="only a linear probe"):
        fit_board_probe(x[train], linear[train], "mlp", steps=1).directions(1, 2)


def test_the_edit_mirrors_the_probe_across_its_boundary_and_errors_count_by_hand() -> None:
    gen = torch.Generator().manual_seed(1)
    x, v, c = torch.randn(6, 5, generator=gen), torch.randn(6, 5, generator=gen), torch.randn(6, generator=gen)
    before = (x * v).sum(-1) + c
    for strength in (1.0, 2.5):
        after = mirror_along(x, v, c, strength)
        torch.testing.assert_close((after * v).sum(-1) + c, strength * before.abs())
        moved = after - x  # along v only
        torch.testing.assert_close(moved, ((moved * v).sum(-1) / (v * v).sum(-1))[:, None] * v)
    legal = torch.tensor([[True, True, False, False], [False, False, False, True]])
    logits = torch.tensor([[3.0, 0.0, 2.0, 1.0], [0.0, 1.0, 2.0, 3.0]])
    assert topk_errors(logits, legal) == pytest.approx(0.5)  # row 0: top-2 {0, 2}, one illegal; row 1: none


@pytest.mark.slow
def test_short_run_result_and_report(tmp_path: Path) -> None:
    result = run_othello(TINY, tmp_path / "checkpoints", threads=1)
    payload = result.to_json()
    assert payload["steps"] == [0, 3, 6] and len(payload["legal_move_accuracy"]) == 3
    assert len(result.probes) == 3 * 2 * 2 and {p.layer for p in result.probes} == {0, 1, 2}
    assert 0 < result.edits.n_edits <= 10 and len(result.edits.by_layer) == 3
    assert all(0 <= p.accuracy <= 1 for p in result.probes)
    assert json.loads(json.dumps(payload))["best_probes"]["linear_relative"]["framing"] == "relative"
    page = othello_report(result).write(tmp_path / "report.html")
    browser = open_in_chromium(page)
    assert browser.console_errors == []
    assert "The papers and this run" in browser.dom


@pytest.mark.slow
def test_cli_lab_othello(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(OthelloConfig, "preset", classmethod(lambda cls, name: TINY))
    out = tmp_path / "lab"
    result = runner.invoke(app, ["lab", "othello", "--steps", "3", "--out", str(out), "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["config"]["steps"] == 3 and payload["threads"] == 1 and payload["steps"] == [0, 3]
    assert (out / "report.html").is_file() and json.loads((out / "results.json").read_text())["n_params"] > 0
    never = tmp_path / "never"
    result = runner.invoke(app, ["lab", "othello", "--probe-layers", "0,9", "--out", str(never), "--json"])
    assert result.exit_code == 1 and "out of range" in json.loads(result.stdout)["message"] and not never.exists()


def test_edited_boards_change_the_legal_moves() -> None:
    from circuitscope.toy.othello.intervene import choose_edits

    games = othello_games(TINY)
    model = cs.HookedModel(train_othello(replace(TINY, steps=1), games, None, threads=1)[0])
    data = probe_data(model, TINY, games.probe)
    cases = choose_edits(TINY, data, 10, seed=0)
    g = Geometry(6)
    for i in range(len(cases.game)):
        row = int(((data.game == cases.game[i]) & (data.position == cases.position[i])).nonzero()[0, 0])
        board = data.boards[row : row + 1].clone()
        player = data.to_move[row : row + 1]
        assert torch.equal(legal_mask(g, board, player)[0], cases.legal_original[i])
        assert int(board[0, cases.square[i]] * player[0]) == (1 if cases.state_from[i] == 1 else -1)
        board[0, cases.square[i]] *= -1
        assert torch.equal(legal_mask(g, board, player)[0], cases.legal_edited[i])
        assert not torch.equal(cases.legal_edited[i], cases.legal_original[i]) and not bool(data.train[row])
