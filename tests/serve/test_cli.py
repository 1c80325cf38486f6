"""``circuitscope serve``: everything loaded (and refused) before the server starts; the address and token printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import circuitscope.serve.server as server
from circuitscope.cli.main import app
from circuitscope.sae.io import save_sae
from circuitscope.serve import ServeConfig, Workbench
from tests.tiny_models import TinyModels


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Workbench, ServeConfig]]:
    """Instead of uvicorn: record what would be served and report the address at once."""
    calls: list[tuple[Workbench, ServeConfig]] = []

    def fake(workbench: Workbench, config: ServeConfig, *, on_started: Any = None) -> None:
        calls.append((workbench, config))
        on_started(server.base_url(config.host, 8123))

    monkeypatch.setattr(server, "serve", fake)
    return calls


def _run(args: list[str]) -> Any:
    return CliRunner().invoke(app, ["serve", *args], env={"CIRCUITSCOPE_NO_PROGRESS": "1"})


def test_serve_prints_its_address_and_a_token_off_loopback(
    tiny: TinyModels, started: list[tuple[Workbench, ServeConfig]], tmp_path: Path
) -> None:
    folder = tiny.text_folder()
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("the cat sat on the mat.\n\nthe dog sat on the log.")
    result = _run(["--model", str(folder), "--host", "0.0.0.0", "--max-new-tokens", "8", "--data", str(data),
                   "--files", str(tmp_path), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout.strip().splitlines()[-1])
    ((workbench, config),) = started
    assert config.token is not None and line["token"] == config.token
    assert line["address"] == "http://0.0.0.0:8123" and line["url"] == f"http://0.0.0.0:8123/?token={config.token}"
    assert (config.host, config.max_new_tokens, config.files) == ("0.0.0.0", 8, (tmp_path,))
    assert workbench.data == ["the cat sat on the mat.\n\nthe dog sat on the log."] and data in workbench.roots

    given = _run(["--model", str(folder), "--host", "0.0.0.0", "--token", "my-long-token"])
    assert given.exit_code == 0, given.output
    assert "access token: my-long-token" in given.output and started[-1][1].token == "my-long-token"

    loopback = _run(["--model", str(folder), "--json"])
    assert loopback.exit_code == 0, loopback.output
    assert json.loads(loopback.stdout.strip().splitlines()[-1])["token"] is None


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (["--model", "/no/such/model"], "LoadError", "/no/such/model"),
        (["--sae", "/no/such/sae"], "SAEFormatError", "is not a folder"),
        (["--data", "/no/such/data"], "OptionError", "is not a folder"),
        (["--files", "/no/such/files"], "OptionError", "is not a folder"),
        (["--transcoders", "/no/such/tc"], None, "/no/such/tc"),
        (["--port", "70000"], "OptionError", "port 70000"),
    ],
)
def test_bad_arguments_fail_before_the_server_starts(
    tiny: TinyModels, started: list[tuple[Workbench, ServeConfig]], args: list[str], error: str | None, message: str
) -> None:
    model = [] if "--model" in args else ["--model", str(tiny.text_folder())]
    result = _run([*model, *args, "--json"])
    assert result.exit_code in (1, 2), result.output
    assert started == []
    if result.exit_code == 1:
        payload = json.loads(result.stdout)
        assert message in payload["message"]
        assert error is None or payload["error"] == error


def test_an_sae_of_another_model_is_refused(
    tiny: TinyModels, started: list[tuple[Workbench, ServeConfig]], tmp_path: Path
) -> None:
    from circuitscope.sae.base import SAEConfig, create_sae

    width = tiny.text().cfg.d_model * 2  # an SAE trained on a wider model
    wrong = create_sae(SAEConfig(architecture="relu", d_in=width, d_sae=8, hook_name="blocks.0.hook_resid_post"))
    save_sae(wrong, tmp_path / "sae")
    result = _run(["--model", str(tiny.text_folder()), "--sae", str(tmp_path / "sae"), "--json"])
    assert result.exit_code == 1, result.output
    assert started == []
    payload = json.loads(result.stdout)
    assert str(width) in payload["message"], payload
