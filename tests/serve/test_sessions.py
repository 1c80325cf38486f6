"""Saved sessions: versioned JSON written atomically, names restricted, another model's session refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from circuitscope.serve import ServeInputError, ServeNotFoundError
from circuitscope.serve.sessions import FORMAT, FORMAT_VERSION, SessionStore

WORK = {
    "prompts": [{"prompt": "the cat", "answer": "a", "wrong": "b"}],
    "interventions": [{"kind": "zero", "component": "head", "layer": 0, "head": 1, "source": None}],
    "graphs": [],
}


def test_save_then_open_round_trips(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "sessions", "fp-1")
    saved = store.save("ioi-heads", WORK)
    assert saved.path == tmp_path / "sessions" / "ioi-heads.json"
    on_disk = json.loads(saved.path.read_text())
    assert on_disk == {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": "ioi-heads",
        "model_fingerprint": "fp-1",
        "work": WORK,
    }
    assert store.open("ioi-heads")["work"] == WORK
    assert [s.name for s in store.saved()] == ["ioi-heads"]
    store.save("ioi-heads", {"prompts": ["x"]})  # replaced, missing parts filled in as empty lists
    assert store.open("ioi-heads")["work"] == {"prompts": ["x"], "interventions": [], "graphs": []}
    assert sorted(p.name for p in saved.path.parent.iterdir()) == ["ioi-heads.json"]  # no temporary file left


def test_a_failed_write_leaves_the_old_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SessionStore(tmp_path, "fp-1")
    store.save("s", WORK)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", broken)
    with pytest.raises(Exception, match="disk full"):
        store.save("s", {"prompts": ["new"]})
    monkeypatch.undo()
    assert store.open("s")["work"] == WORK
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


def test_another_models_session_is_refused(tmp_path: Path) -> None:
    SessionStore(tmp_path, "fp-other").save("s", WORK)
    with pytest.raises(ServeInputError, match=r"saved on another model .*fp-other.*fp-mine"):
        SessionStore(tmp_path, "fp-mine").open("s")


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "a..b", "x" * 65, "sp ace", "a\\b", 3])
def test_unsafe_names_are_refused(tmp_path: Path, name: object) -> None:
    store = SessionStore(tmp_path, "fp")
    with pytest.raises(ServeInputError, match="not allowed"):
        store.save(name, WORK)
    with pytest.raises(ServeInputError, match="not allowed"):
        store.open(name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("work", "match"),
    [([], "must be a JSON object"), ({"other": []}, "unknown parts"), ({"prompts": "x"}, "must be lists")],
)
def test_bad_work_is_refused(tmp_path: Path, work: object, match: str) -> None:
    with pytest.raises(ServeInputError, match=match):
        SessionStore(tmp_path, "fp").save("s", work)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"format": "other"}), "not an explorer session"),
        (json.dumps({"format": FORMAT, "format_version": 99, "model_fingerprint": "fp"}), "reads up to 1"),
        (json.dumps({"format": FORMAT, "format_version": 1}), "no model_fingerprint"),
    ],
)
def test_damaged_sessions_are_refused_and_not_listed(tmp_path: Path, content: str, match: str) -> None:
    (tmp_path / "s.json").write_text(content)
    store = SessionStore(tmp_path, "fp")
    with pytest.raises(ServeInputError, match=match):
        store.open("s")
    assert store.saved() == []


def test_unknown_session_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(ServeNotFoundError, match="no session 'nope'"):
        SessionStore(tmp_path, "fp").open("nope")


def test_sessions_over_the_api(client: TestClient) -> None:
    saved = client.post("/api/sessions", json={"name": "api-one", "work": WORK})
    assert saved.status_code == 200, saved.text
    assert "api-one" in [s["name"] for s in client.get("/api/sessions").json()["sessions"]]
    opened = client.get("/api/sessions/api-one").json()
    assert opened["format"] == FORMAT and opened["work"] == WORK
    assert opened["model_fingerprint"] == client.get("/api/info").json()["fingerprint"]
    assert client.get("/api/sessions/nope").status_code == 404
    bad = client.post("/api/sessions", json={"name": "../up", "work": WORK})
    assert bad.status_code == 400 and "not allowed" in bad.json()["error"]
    assert client.post("/api/sessions", json={"name": "x", "work": {"other": []}}).status_code == 400
    assert client.post("/api/sessions", json={"name": "x"}).status_code == 400
