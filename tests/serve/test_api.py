"""The explorer's HTTP API on a tiny model: each route equals its view, crafted requests get clear 4xx errors,
an unexpected failure is a 500 without a traceback, streams stop when the client goes, and a bounded load test."""

from __future__ import annotations

import dataclasses
import itertools
import json
import socket
import statistics
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from fastapi.testclient import TestClient

import circuitscope.serve.views.prompt as prompt_views
from circuitscope.errors import ShapeError
from circuitscope.serve import ServeConfig, Workbench, create_app
from circuitscope.serve.views.attention import attention_view
from circuitscope.serve.views.prompt import prompt_view


@pytest.fixture(autouse=True)
def _leaves_no_hooks(workbench: Workbench) -> Any:
    yield
    assert workbench.model.active_hooks() == []
    assert not workbench.lock.locked()


def test_info(client: TestClient, workbench: Workbench) -> None:
    info = client.get("/api/info").json()
    cfg = workbench.model.cfg
    assert (info["n_layers"], info["n_heads"], info["d_model"], info["d_vocab"]) == (
        cfg.n_layers,
        cfg.n_heads,
        cfg.d_model,
        cfg.d_vocab,
    )
    assert info["model"] == "tiny-text" and info["fingerprint"] == workbench.fingerprint
    assert info["transcoders"] is True and info["data"] is True
    assert info["files"] == {"graphs": ["graph.json"], "circuits": ["circuit.json"], "vectors": ["vector.safetensors"]}
    assert info["limits"] == {
        "max_prompt_tokens": 256,
        "max_new_tokens": 64,
        "max_request_bytes": 1 << 20,
        "max_jobs": 1,
    }
    assert {s["name"] for s in info["sources"]} == set(workbench.sources)
    assert all(set(s) == {"name", "kind", "layer", "hook", "d_sae"} for s in info["sources"])


def test_the_page_is_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert client.get("/static/explorer.js").headers["content-type"].split(";")[0] in (
        "text/javascript",
        "application/javascript",
    )


def test_routes_answer_what_their_views_return(client: TestClient, workbench: Workbench) -> None:
    body = {"prompt": "the cat sat", "answer": "a", "wrong": "b", "top_k": 3}
    with workbench.lock:
        expected = prompt_view(workbench.model, "the cat sat", answer="a", wrong="b", top_k=3).to_json()
    assert client.post("/api/prompt", json=body).json() == json.loads(json.dumps(expected))
    scores = workbench.head_scores()
    with workbench.lock:
        attention = attention_view(workbench.model, "the cat", scores).to_json()
    assert client.post("/api/attention", json={"prompt": "the cat"}).json() == json.loads(json.dumps(attention))


def test_intervene_changes_the_logit_difference(client: TestClient) -> None:
    spec = {"kind": "zero", "component": "mlp", "layer": 0, "head": None, "source": None}
    answer = client.post(
        "/api/intervene", json={"prompt": "the cat sat", "answer": "a", "wrong": "b", "interventions": [spec]}
    ).json()
    assert answer["clean_logit_diff"] is not None and answer["logit_diff"] != answer["clean_logit_diff"]
    assert [i["label"] for i in answer["interventions"]] == ["L0 MLP zero"]
    clean = client.post("/api/prompt", json={"prompt": "the cat sat", "answer": "a", "wrong": "b"}).json()
    assert answer["clean_logit_diff"] == pytest.approx(clean["dla"]["logit_diff"], rel=1e-4, abs=1e-5)


def test_features_and_feature_pages(client: TestClient, workbench: Workbench) -> None:
    name = next(iter(workbench.sources))
    tokens = client.post("/api/features", json={"prompt": "the cat", "source": name, "top_k": 2}).json()
    assert tokens["source"] == name and len(tokens["top"]) == len(tokens["tokens"])
    page = client.get(f"/api/feature?source={name}&index=3").json()
    assert (page["source"], page["index"], page["d_sae"]) == (name, 3, workbench.sources[name].d_sae)
    d_sae = workbench.sources[name].d_sae
    out = client.get(f"/api/feature?source={name}&index={d_sae}")
    assert out.status_code == 400 and "out of range" in out.json()["error"]


def test_graph_and_circuit_files(client: TestClient, serve_files: Path) -> None:
    graph = client.get("/api/graph?path=graph.json").json()
    assert graph["nodes"] == json.loads((serve_files / "graph.json").read_text())["nodes"]
    circuit = client.get("/api/circuit?path=circuit.json").json()
    assert {"nodes", "links"} <= set(circuit) or {"nodes", "edges"} <= set(circuit)
    assert client.get("/api/graph?path=nope.json").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("post", "/api/prompt", {}, 400, "prompt is missing"),
        ("post", "/api/prompt", {"prompt": 3}, 400, "prompt: Input should be a valid string"),
        ("post", "/api/prompt", {"prompt": "ab", "top_k": "3"}, 400, "top_k: Input should be a valid integer"),
        ("post", "/api/prompt", {"prompt": "ab", "extra": 1}, 400, "extra: Extra inputs are not permitted"),
        ("post", "/api/prompt", {"prompt": "ab", "answer": "abc", "wrong": "b"}, 400, "answer"),
        ("post", "/api/prompt", {"prompt": "a" * 300}, 400, "301 tokens long but the model's context is 128"),
        ("post", "/api/prompt", {"prompt": "a" * 50_000}, 400, "over the limit of 256 tokens"),
        ("post", "/api/attention", {"prompt": ["ab"]}, 400, "prompt: Input should be a valid string"),
        ("post", "/api/intervene", {"prompt": "ab", "interventions": [{"kind": "zero", "component": "head",
                                    "layer": 99, "head": 0}]}, 400, "layer 99 is out of range"),
        ("post", "/api/intervene", {"prompt": "ab", "interventions": [{"kind": "zero", "component": "head",
                                    "layer": 0, "head": 99}]}, 400, "head 99 is out of range"),
        ("post", "/api/intervene", {"prompt": "ab", "interventions": [{"kind": "melt", "component": "head",
                                    "layer": 0, "head": 0}]}, 400, "melt"),
        ("post", "/api/features", {"prompt": "ab", "source": "nope"}, 404, "no feature source 'nope'"),
        ("get", "/api/feature?source=nope&index=0", None, 404, "no feature source"),
        ("get", "/api/feature?index=0", None, 400, "source is missing"),
        ("post", "/api/steer/vector", {"kind": "actadd", "positive": "a", "negative": "b", "layer": 99}, 400,
         "layer 99 is out of range"),
        ("post", "/api/steer/vector", {"kind": "actadd", "positive": "a"}, 400, "needs negative, layer"),
        ("post", "/api/steer/generate", {"prompt": "ab", "max_new_tokens": 65}, 400, "limit of 64"),
        ("post", "/api/steer/generate", {"prompt": "ab", "vector": "v999"}, 404, "no steering vector 'v999'"),
    ],
)  # fmt: skip
def test_crafted_requests_get_clear_errors(
    client: TestClient, method: str, path: str, body: Any, status: int, message: str
) -> None:
    response = client.post(path, json=body) if method == "post" else client.get(path)
    assert response.status_code == status, response.text
    payload = response.json()
    assert set(payload) == {"error", "type"}
    assert message in payload["error"], payload["error"]
    assert "Traceback" not in response.text


def test_the_servers_prompt_limit(workbench: Workbench, serve_config: ServeConfig) -> None:
    small = TestClient(create_app(workbench, dataclasses.replace(serve_config, max_prompt_tokens=8)))
    assert small.post("/api/prompt", json={"prompt": "a" * 7}).status_code == 200  # 8 tokens with BOS
    response = small.post("/api/prompt", json={"prompt": "a" * 8})
    assert response.status_code == 400
    assert "the prompt is 9 tokens, over this server's limit of 8 (--max-prompt-tokens)" in response.json()["error"]
    spec = {"kind": "patch", "component": "mlp", "layer": 0, "head": None, "source": "b" * 8}
    patched = small.post("/api/intervene", json={"prompt": "a" * 7, "interventions": [spec]})
    assert patched.status_code == 400 and "patch source prompt is 9 tokens" in patched.json()["error"]


def test_a_body_that_is_not_json(client: TestClient) -> None:
    response = client.post("/api/prompt", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]


def test_oversize_bodies_are_refused_before_parsing(client: TestClient) -> None:
    big = json.dumps({"prompt": "a" * (1 << 20)}).encode()
    response = client.post("/api/prompt", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["type"] == "ServeTooLargeError"

    def chunks() -> Any:  # no Content-Length: the size is counted as the body arrives
        for _ in range(40):
            yield b"a" * 32_768

    chunked = client.post("/api/prompt", content=chunks(), headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413


def test_unexpected_errors_are_500_without_a_traceback(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(prompt_views, "prompt_view", broken)
    with caplog.at_level("ERROR", logger="circuitscope.serve.app"):
        response = client.post("/api/prompt", json={"prompt": "ab"})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error: RuntimeError: boom", "type": "InternalError"}
    assert "Traceback" not in response.text
    assert "boom" in caplog.text  # logged server-side, with its traceback

    def library_error(*_args: Any, **_kwargs: Any) -> Any:
        raise ShapeError("a library error")

    monkeypatch.setattr(prompt_views, "prompt_view", library_error)
    response = client.post("/api/prompt", json={"prompt": "ab"})
    assert (response.status_code, response.json()) == (400, {"error": "a library error", "type": "ShapeError"})


def test_steering_vectors_and_a_stream(client: TestClient) -> None:
    made = client.post("/api/steer/vector", json={"kind": "actadd", "positive": "love", "negative": "hate", "layer": 1})
    assert made.status_code == 200, made.text
    vector = made.json()
    assert vector["layer"] == 1 and vector["norm"] > 0
    loaded = client.post("/api/steer/vector", json={"kind": "file", "path": "vector.safetensors"}).json()
    assert loaded["layer"] == 0 and loaded["vector"] != vector["vector"]
    body = {"prompt": "the cat", "vector": vector["vector"], "coefficient": 8.0, "max_new_tokens": 5}
    with client.stream("POST", "/api/steer/generate", json=body) as response:
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in response.iter_lines() if line]
    steps, done = lines[:-1], lines[-1]
    assert [s["step"] for s in steps] == list(range(len(steps))) and len(steps) == 5
    assert done["done"] is True
    assert done["plain"] == steps[-1]["plain_text"] == "".join(s["plain"] for s in steps)  # one char a token
    assert done["steered"] == steps[-1]["steered_text"] == "".join(s["steered"] for s in steps)


def _raw_post(url: str, path: str, body: dict[str, Any]) -> socket.socket:
    parsed = urlparse(url)
    sock = socket.create_connection((parsed.hostname, parsed.port or 80), timeout=30)
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {parsed.hostname}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    sock.sendall(head.encode() + data)
    return sock


def test_a_client_that_disconnects_stops_the_stream(live_server: str, workbench: Workbench) -> None:
    sock = _raw_post(live_server, "/api/steer/generate", {"prompt": "the cat", "max_new_tokens": 64})
    received = b""
    while b'"step"' not in received:
        chunk = sock.recv(4096)
        assert chunk, "the stream ended before its first step"
        received += chunk
    assert workbench.active_streams == 1
    sock.close()
    deadline = time.monotonic() + 30
    while workbench.active_streams and time.monotonic() < deadline:
        time.sleep(0.02)
    assert workbench.active_streams == 0
    assert workbench.model.active_hooks() == [] and not workbench.lock.locked()
    assert httpx.get(f"{live_server}/api/info").status_code == 200  # and the server goes on


def test_a_request_whose_client_gave_up_while_waiting_is_not_computed(live_server: str, workbench: Workbench) -> None:
    dropped = workbench.dropped
    with workbench.lock:  # the model is busy (another request's view): this one waits for its turn
        sock = _raw_post(live_server, "/api/prompt", {"prompt": "the cat sat on the mat"})
        time.sleep(0.5)  # the request is read and its worker thread waits on the lock
        sock.close()  # the client gives up
        time.sleep(0.5)  # the server sees the connection close
    deadline = time.monotonic() + 30
    while workbench.dropped == dropped and time.monotonic() < deadline:
        time.sleep(0.02)
    assert workbench.dropped == dropped + 1  # dropped at its turn, the view never ran
    assert workbench.model.active_hooks() == [] and not workbench.lock.locked()
    answer = httpx.post(f"{live_server}/api/prompt", json={"prompt": "the cat sat on the mat"}, timeout=60)
    assert answer.status_code == 200 and answer.json()["predictions"]  # a client that waits is served
    assert workbench.dropped == dropped + 1


def _load(url: str, clients: int, seconds: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        nonlocal errors
        with httpx.Client(base_url=url, timeout=120) as http:
            for i in itertools.count():
                if i >= 2 and time.monotonic() > stop:  # at least two requests each, however loaded the machine
                    break
                start = time.perf_counter()
                try:
                    ok = http.post("/api/prompt", json={"prompt": "the cat sat on"}).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    latencies.append(time.perf_counter() - start)
                    errors += not ok

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors


def test_twenty_concurrent_clients(live_server: str) -> None:
    """A bounded load test (the benchmark runs 30 s): 20 clients on loopback, no errors."""
    latencies, errors = _load(live_server, clients=20, seconds=4.0)
    assert errors == 0
    assert len(latencies) >= 40  # every client was served (at least twice)
    assert statistics.median(latencies) > 0
