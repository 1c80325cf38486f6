"""The maze lab end to end on a tiny configuration: configs refused before any work, the result and its JSON,
the report in headless Chromium, and ``circuitscope lab maze``."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from circuitscope.cli.main import app
from circuitscope.report.maze import maze_report, maze_svg
from circuitscope.toy.errors import CheckpointError, LabConfigError
from circuitscope.toy.maze.config import MazeConfig
from circuitscope.toy.maze.lab import run_maze
from circuitscope.toy.maze.levels import Levels
from circuitscope.toy.maze.rollouts import Episode
from tests.browser import open_in_chromium

pytestmark = pytest.mark.usefixtures("one_thread")  # small convolutions: one thread is faster and steadier

runner = CliRunner()

TINY = MazeConfig(
    min_size=5, max_size=7, channels=(4, 8), hidden=16, n_train_mazes=40, steps=20, batch_size=32,
    checkpoint_every=10, n_test_mazes=24, n_vector_mazes=12, n_probe_mazes=40, max_episode_steps=30,
)  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_size": 1}, "smaller than 3x3"),
        ({"min_size": 2}, "odd maze size of at least 3"),
        ({"max_size": 10}, "odd"),
        ({"probe_layers": (0, 5)}, r"probe_layers \[5\] are out of range.*0 \(hook_in\) to 4"),
        ({"cheese_region": 13}, "larger than the largest maze"),
        ({"method": "dqn"}, "method must be one of"),
        ({"steps": 0}, "steps must be at least 1"),
        ({"channels": ()}, "channels must be a non-empty list"),
        ({"gamma": 1.5}, r"gamma must lie in \(0, 1\]"),
    ],
)
def test_configs_that_cannot_train_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(LabConfigError, match=message):
        MazeConfig(**kwargs)


def test_presets() -> None:
    assert MazeConfig.preset("default") == MazeConfig()
    paper = MazeConfig.preset("paper")
    assert paper.max_size == 15 and paper.channels == (16, 32, 32) and paper.residual_units == 2
    with pytest.raises(LabConfigError, match="choose one of"):
        MazeConfig.preset("huge")
    assert "ppo_clip" not in MazeConfig().identity() and "ppo_clip" in replace(MazeConfig(), method="ppo").identity()


def test_maze_rendering_draws_every_wall_and_the_whole_path() -> None:
    maze = Levels(7, 7, None).sample(3)
    path = [maze.start, (maze.start[0] - 1, 0), maze.start]
    svg = maze_svg(Episode(maze, path, got_cheese=False, corner_first=False))
    walls = sum(row.count(True) for row in maze.walls)
    assert svg.count('fill="#2b3142"') == walls  # one dark square per wall
    assert re.search(r'points="([^"]*)"', svg).group(1).count(",") == len(path)  # type: ignore[union-attr]
    assert svg.startswith("<svg") and svg.endswith("</svg>")


@pytest.mark.slow
def test_tiny_lab_result_report_and_resume(tmp_path: Path) -> None:
    result = run_maze(TINY, tmp_path / "ck", threads=1)
    assert result.method == "imitation" and result.curve_name == "held_out_accuracy"
    assert result.curve_steps == [0, 10, 20] and len(result.train_loss) == 20
    goal = result.misgeneralization
    assert goal.n_episodes == 24
    assert goal.got_cheese + goal.corner_not_cheese + goal.neither == pytest.approx(1.0)  # the outcomes partition
    sweep = result.cheese_vector
    assert len(sweep.effects) == 2 * len(sweep.layers) == 8
    assert result.probe.layers == sweep.layers and len(result.probe.test_accuracy) == 4
    payload = json.loads(json.dumps(result.to_json()))
    assert payload["method"] == "imitation" and payload["cheese_vector"]["threshold"] == 0.5
    page = maze_report(result).write(tmp_path / "report.html")
    browser = open_in_chromium(page)
    assert browser.console_errors == []
    assert "At which layer does subtracting the cheese vector stop working?" in browser.dom
    assert browser.dom.count("<svg") >= len(result.episodes) > 0  # the maze renderings
    again = run_maze(TINY, tmp_path / "ck", threads=1)  # a finished run resumes without training
    assert again.train_seconds == 0.0 and again.train_loss == result.train_loss
    with pytest.raises(CheckpointError, match="another configuration"):
        run_maze(replace(TINY, cheese_region=1), tmp_path / "ck", threads=1)


@pytest.mark.slow
def test_cli_lab_maze(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MazeConfig, "preset", classmethod(lambda cls, name: TINY))  # --config default is TINY
    args = ["lab", "maze", "--steps", "10", "--seed", "1", "--threads", "1", "--out", str(tmp_path), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "results.json").read_text())  # the --json payload, stored
    assert (tmp_path / "report.html").is_file() and written["method"] == "imitation" and written["threads"] == 1
    assert written["config"] == {**json.loads(json.dumps(asdict(TINY))), "steps": 10, "seed": 1}
    assert json.loads(result.stdout)["config"] == written["config"]


def test_cli_refuses_a_bad_maze_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "never"
    result = runner.invoke(app, ["lab", "maze", "--max-size", "1", "--out", str(out), "--json"])
    assert result.exit_code == 1
    assert "smaller than 3x3" in json.loads(result.stdout)["message"] and not out.exists()
    result = runner.invoke(app, ["lab", "maze", "--probe-layers", "0,9", "--out", str(out), "--json"])
    assert result.exit_code == 1 and "out of range" in json.loads(result.stdout)["message"] and not out.exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = runner.invoke(app, ["lab", "maze", "--out", str(blocker), "--json"])
    assert result.exit_code == 1 and json.loads(result.stdout)["error"] == "OutputError"
