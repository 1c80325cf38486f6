"""``circuitscope lab icl`` end to end on a tiny config: the numbers, the files, the report in a browser."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from circuitscope.cli.main import app
from tests.browser import open_in_chromium


def test_lab_icl_cli_on_a_tiny_config(tmp_path) -> None:
    out = tmp_path / "icl"
    args = ["lab", "icl", "--steps", "4", "--layers", "1,2", "--softmax-layers", "1", "--d", "2", "--n-context", "3"]
    args += ["--eval-tasks", "32"]
    result = CliRunner().invoke(app, [*args, "--threads", "1", "--out-dir", str(out), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert sorted(payload["models"]) == ["lsa_L1", "lsa_L2", "softmax_L1"]
    one = payload["models"]["lsa_L1"]
    assert one["steps"][-1] == 4 and len(one["train_loss"]) == 4 and len(one["W_KQ"]) == 1
    assert len(payload["models"]["lsa_L2"]["construction_cosine"]) == 2
    assert payload["models"]["softmax_L1"]["W_KQ"] is None
    assert payload["lengths"] == list(range(1, 21)) and set(payload["gd_lr"]) == {"1", "2"}
    assert json.loads((out / "results.json").read_text())["config"]["d"] == 2
    assert open_in_chromium(out / "report.html").console_errors == []
    bad = CliRunner().invoke(app, ["lab", "icl", "--config", "huge", "--out-dir", str(tmp_path / "b"), "--json"])
    assert (
        bad.exit_code == 1 and json.loads(bad.stdout)["message"] == "--config must be 'default' or 'paper', got 'huge'"
    )
    bad = CliRunner().invoke(app, ["lab", "icl", "--layers", "1,x", "--out-dir", str(tmp_path / "b"), "--json"])
    assert bad.exit_code == 1 and "comma-separated depths" in json.loads(bad.stdout)["message"]
