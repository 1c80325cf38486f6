"""The explorer's security: file arguments confined to the start-up folders, the access token, no CORS."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from circuitscope.errors import OptionError
from circuitscope.serve import ServeConfig, ServeInputError, ServeNotFoundError, ServePathError, Workbench, create_app
from circuitscope.serve.security import bearer_token, is_loopback, resolve_inside, token_matches

TOKEN = "s3cret-token-for-tests"


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    """A root with a file, a subfolder, a symlink inside and one out; and a folder outside it."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "a.json").write_text("{}")
    (root / "sub" / "b.json").write_text("{}")
    (outside / "secret.json").write_text("{}")
    os.symlink(outside / "secret.json", root / "out.json")
    os.symlink(outside, root / "outdir")
    os.symlink(root / "sub" / "b.json", root / "in.json")
    return root, outside


def test_resolve_inside_finds_files_in_the_roots(roots: tuple[Path, Path], tmp_path: Path) -> None:
    root, _ = roots
    other = tmp_path / "other"
    other.mkdir()
    (other / "c.json").write_text("{}")
    assert resolve_inside([root], "a.json") == (root / "a.json").resolve()
    assert resolve_inside([root], "sub/b.json") == (root / "sub" / "b.json").resolve()
    assert resolve_inside([root], "./sub/b.json") == (root / "sub" / "b.json").resolve()
    assert resolve_inside([root], "in.json") == (root / "sub" / "b.json").resolve()  # a symlink that stays inside
    assert resolve_inside([root, other], "c.json") == (other / "c.json").resolve()  # the first root that has it


@pytest.mark.parametrize(
    ("relative", "why"),
    [
        ("../outside/secret.json", "goes up a folder"),
        ("sub/../../outside/secret.json", "goes up a folder"),
        ("..\\outside\\secret.json", "goes up a folder"),
        ("/etc/passwd", "absolute path"),
        ("\\etc\\passwd", "absolute path"),
        ("C:\\Windows\\win.ini", "absolute path"),
        ("~/secret.json", "absolute path"),
        ("out.json", "leads outside"),
        ("outdir/secret.json", "leads outside"),
        ("", "empty"),
        ("a.json\x00.png", "NUL"),
    ],
)
def test_resolve_inside_refuses_paths_out_of_the_roots(roots: tuple[Path, Path], relative: str, why: str) -> None:
    with pytest.raises(ServePathError, match=why):
        resolve_inside([roots[0]], relative)


def test_resolve_inside_missing_file_is_not_found(roots: tuple[Path, Path]) -> None:
    with pytest.raises(ServeNotFoundError, match=r"no file 'nope\.json'"):
        resolve_inside([roots[0]], "nope.json")
    with pytest.raises(ServeNotFoundError, match="without folders"):
        resolve_inside([], "a.json")
    with pytest.raises(ServeNotFoundError):
        resolve_inside([roots[0]], "sub")  # a folder is not a file


def test_loopback_and_tokens() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost", "LOCALHOST"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.2", "::", "example.org", "10.0.0.1"))
    assert bearer_token("Bearer abc", None) == "abc"
    assert bearer_token("bearer  abc ", "q") == "abc"
    assert bearer_token("Basic abc", "q") == "q"
    assert bearer_token(None, None) is None
    assert token_matches("abc", "abc") and not token_matches("abd", "abc") and not token_matches(None, "abc")


def test_config_generates_a_token_only_off_loopback() -> None:
    assert ServeConfig().with_token().token is None
    generated = ServeConfig(host="0.0.0.0").with_token()
    assert generated.token is not None and len(generated.token) >= 24
    assert ServeConfig(host="0.0.0.0").with_token().token != generated.token  # random, not fixed
    assert ServeConfig(host="0.0.0.0", token=TOKEN).with_token().token == TOKEN
    with pytest.raises(OptionError, match="shorter than 8"):
        ServeConfig(token="short")
    with pytest.raises(OptionError, match="port 70000"):
        ServeConfig(port=70000)
    with pytest.raises(OptionError, match="max_jobs must be"):
        ServeConfig(max_jobs=0)


def test_an_app_off_loopback_without_a_token_is_refused(workbench: Workbench) -> None:
    with pytest.raises(ServeInputError, match="needs an access token"):
        create_app(workbench, ServeConfig(host="0.0.0.0"))


@pytest.fixture(scope="module")
def guarded(workbench: Workbench, serve_config: ServeConfig) -> TestClient:
    import dataclasses

    config = dataclasses.replace(serve_config, host="0.0.0.0", token=TOKEN)
    return TestClient(create_app(workbench, config))


@pytest.mark.parametrize("path", ["/", "/api/info", "/api/jobs", "/api/sessions", "/api/graph?path=graph.json"])
def test_requests_without_the_token_get_401(guarded: TestClient, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {TOKEN}"}):
        response = guarded.get(path, headers=headers)
        assert response.status_code == 401
        assert response.json()["type"] == "ServeUnauthorizedError"
        assert "access token" in response.json()["error"]
    assert guarded.get(path + ("&" if "?" in path else "?") + "token=wrong").status_code == 401


def test_requests_with_the_token_pass(guarded: TestClient) -> None:
    assert guarded.get("/api/info", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert guarded.get(f"/api/info?token={TOKEN}").status_code == 200
    assert guarded.get(f"/?token={TOKEN}").status_code == 200
    posted = guarded.post("/api/prompt", json={"prompt": "ab"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert posted.status_code == 200
    assert guarded.post("/api/prompt", json={"prompt": "ab"}).status_code == 401
    assert guarded.get("/static/explorer.css").status_code == 200  # the page's own files need no token


def test_a_loopback_server_needs_no_token(client: TestClient) -> None:
    assert client.get("/api/info").status_code == 200


def test_no_cors(client: TestClient) -> None:
    """No CORS middleware: a page of another origin gets no Access-Control-Allow-Origin, preflights fail."""
    response = client.get("/api/info", headers={"Origin": "http://evil.example"})
    assert response.status_code == 200
    assert not any(k.lower().startswith("access-control-") for k in response.headers)
    preflight = client.options(
        "/api/prompt", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 405
    assert "access-control-allow-origin" not in preflight.headers


@pytest.mark.parametrize(
    ("endpoint", "path"),
    [
        ("graph", "../graph.json"),
        ("graph", "/etc/passwd"),
        ("circuit", "..%2F..%2Fetc%2Fpasswd"),
        ("graph", "escape.json"),
    ],
)
def test_file_routes_refuse_paths_out_of_the_folders(
    client: TestClient, serve_files: Path, tmp_path: Path, endpoint: str, path: str
) -> None:
    link = serve_files / "escape.json"
    if path == "escape.json" and not link.exists():
        (tmp_path / "outside.json").write_text("{}")
        os.symlink(tmp_path / "outside.json", link)
    try:
        response = client.get(f"/api/{endpoint}?path={path}")
    finally:
        if path == "escape.json":
            link.unlink()
    assert response.status_code == 403, response.text
    assert response.json()["type"] == "ServePathError"


def test_vector_files_resolve_inside_the_folders(client: TestClient) -> None:
    response = client.post("/api/steer/vector", json={"kind": "file", "path": "../vector.safetensors"})
    assert response.status_code == 403
    assert response.json()["type"] == "ServePathError"


def test_static_files_stay_in_the_static_folders(client: TestClient) -> None:
    assert client.get("/static/..%2F__init__.py").status_code == 403
    assert client.get("/static/nope.js").status_code == 404
    assert client.get("/static/graph_viewer.js").status_code == 200  # the graph viewer's, from report/static
