"""Background jobs: states, progress, cancel, failure, the limit; real graph jobs over the API leave no hooks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

import circuitscope.serve.views.graphs as graph_views
from circuitscope.errors import ShapeError
from circuitscope.progress import OnProgress
from circuitscope.serve import ServeBusyError, ServeInputError, ServeNotFoundError, Workbench
from circuitscope.serve.jobs import MAX_FINISHED, JobManager


def _job_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("circuitscope-job-")]


def _until_cancelled(started: threading.Event) -> Callable[[OnProgress], dict[str, Any]]:
    def work(on_progress: OnProgress) -> dict[str, Any]:
        for i in range(10_000):
            on_progress("loop", i, 10_000)  # raises JobCancelled once the job is cancelled
            started.set()
            time.sleep(0.002)
        return {"finished": True}

    return work


def test_a_job_reports_progress_and_its_result() -> None:
    jobs = JobManager()
    seen: list[tuple[str, int, int]] = []

    def work(on_progress: OnProgress) -> dict[str, Any]:
        for i in range(3):
            on_progress("count", i + 1, 3)
            seen.append((jobs.get("j1").progress.to_json()["stage"], i + 1, 3))  # type: ignore[union-attr]
        return {"total": 3}

    job = jobs.submit("count", work)
    assert jobs.wait(job.id, 10).state == "done"
    assert job.to_json() == {
        "id": "j1",
        "kind": "count",
        "state": "done",
        "progress": {"stage": "count", "done": 3, "total": 3},
        "error": None,
    }
    assert seen == [("count", 1, 3), ("count", 2, 3), ("count", 3, 3)]
    assert jobs.result(job.id) == {"total": 3}
    assert not _job_threads()


def test_a_failed_job_keeps_its_error_and_the_manager_keeps_working() -> None:
    jobs = JobManager()

    def bad(_on_progress: OnProgress) -> dict[str, Any]:
        raise ShapeError("layer 9 is out of range")

    def crash(_on_progress: OnProgress) -> dict[str, Any]:
        raise ZeroDivisionError("division by zero")

    failed = jobs.wait(jobs.submit("bad", bad).id, 10)
    assert (failed.state, failed.error) == ("failed", "layer 9 is out of range")
    crashed = jobs.wait(jobs.submit("crash", crash).id, 10)
    assert (crashed.state, crashed.error) == ("failed", "internal error: ZeroDivisionError: division by zero")
    with pytest.raises(ServeInputError, match="no result: it failed: layer 9"):
        jobs.result(failed.id)
    assert jobs.wait(jobs.submit("ok", lambda _p: {"ok": True}).id, 10).state == "done"


def test_cancel_stops_a_job_at_its_next_progress_report() -> None:
    jobs = JobManager()
    started = threading.Event()
    job = jobs.submit("loop", _until_cancelled(started))
    assert started.wait(10)
    assert jobs.get(job.id).state == "running"
    jobs.cancel(job.id)
    assert jobs.wait(job.id, 10).state == "cancelled"
    assert job.progress is not None and job.progress.done < 10_000
    assert not _job_threads()
    with pytest.raises(ServeInputError, match="it is cancelled"):
        jobs.result(job.id)
    assert jobs.cancel(job.id).state == "cancelled"  # cancelling a finished job changes nothing


def test_the_limit_refuses_one_job_too_many() -> None:
    jobs = JobManager(max_running=2)
    started = [threading.Event(), threading.Event()]
    running = [jobs.submit("loop", _until_cancelled(e)) for e in started]
    with pytest.raises(ServeBusyError, match=r"2 job\(s\) already running.*--max-jobs 2"):
        jobs.submit("loop", _until_cancelled(threading.Event()))
    jobs.cancel(running[0].id)
    jobs.wait(running[0].id, 10)
    third = jobs.submit("loop", _until_cancelled(threading.Event()))  # room again
    jobs.shutdown(10)
    assert {jobs.get(j.id).state for j in (running[1], third)} == {"cancelled"}
    assert not _job_threads()


def test_old_finished_jobs_are_forgotten() -> None:
    jobs = JobManager()
    for _ in range(MAX_FINISHED + 3):
        jobs.wait(jobs.submit("ok", lambda _p: {}).id, 10)
    assert len(jobs.jobs()) <= MAX_FINISHED + 1
    with pytest.raises(ServeNotFoundError, match="no job 'j1'"):
        jobs.get("j1")


def _wait(client: TestClient, job: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/api/jobs/{job}").json()
        if status["state"] in ("done", "failed", "cancelled"):
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job} did not finish in {timeout} s")


def _no_hooks(workbench: Workbench) -> None:
    assert workbench.model.active_hooks() == []
    copy = workbench.job_copy
    assert copy is not None and copy.active_hooks() == []
    assert not workbench.lock.locked()


def test_a_graph_job_over_the_api(client: TestClient, workbench: Workbench) -> None:
    started = client.post("/api/jobs", json={"kind": "graph", "prompt": "the cat", "max_feature_nodes": 8})
    assert started.status_code == 200, started.text
    job = started.json()["job"]
    status = _wait(client, job)
    assert status["state"] == "done", status
    assert status["progress"] is not None
    graph = client.get(f"/api/jobs/{job}/result").json()
    assert {"metadata", "nodes", "links"} <= set(graph)
    assert graph["metadata"]["prompt"] == "the cat"
    assert job in [j["id"] for j in client.get("/api/jobs").json()["jobs"]]
    _no_hooks(workbench)
    assert not _job_threads()


@pytest.fixture
def held_graph(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """The real graph job, held at its first progress report until released (so a test can cancel it mid-way)."""
    real = graph_views.graph_job
    reached, release = threading.Event(), threading.Event()

    def held(*args: Any, on_progress: OnProgress, **kwargs: Any) -> dict[str, Any]:
        def report(stage: str, done: int, total: int) -> None:
            on_progress(stage, done, total)
            reached.set()
            release.wait(30)

        return real(*args, on_progress=report, **kwargs)

    monkeypatch.setattr(graph_views, "graph_job", held)
    yield reached, release
    release.set()


def test_a_graph_job_cancelled_mid_way(
    client: TestClient, workbench: Workbench, held_graph: tuple[threading.Event, threading.Event]
) -> None:
    reached, release = held_graph
    job = client.post("/api/jobs", json={"kind": "graph", "prompt": "the dog sat"}).json()["job"]
    assert reached.wait(60)
    assert client.get(f"/api/jobs/{job}").json()["state"] == "running"
    busy = client.post("/api/jobs", json={"kind": "graph", "prompt": "another"})
    assert busy.status_code == 429 and "already running" in busy.json()["error"]
    assert client.post("/api/prompt", json={"prompt": "ab"}).status_code == 200  # the views stay responsive
    assert client.delete(f"/api/jobs/{job}").status_code == 200
    release.set()
    assert _wait(client, job)["state"] == "cancelled"
    result = client.get(f"/api/jobs/{job}/result")
    assert result.status_code == 400 and "cancelled" in result.json()["error"]
    _no_hooks(workbench)
    assert not _job_threads()


def test_a_failing_graph_job_reports_its_error(
    client: TestClient, workbench: Workbench, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*_args: Any, **_kwargs: Any) -> dict[str, Any]:
        raise ShapeError("the graph needs more memory than --memory-gb allows")

    monkeypatch.setattr(graph_views, "graph_job", failing)
    job = client.post("/api/jobs", json={"kind": "graph", "prompt": "ab"}).json()["job"]
    status = _wait(client, job)
    assert status["state"] == "failed" and "more memory" in status["error"]
    assert client.get("/api/info").status_code == 200  # the server keeps serving


def test_bad_job_requests(client: TestClient) -> None:
    assert client.post("/api/jobs", json={"kind": "sweep", "prompt": "ab"}).status_code == 400
    assert client.post("/api/jobs", json={"kind": "graph"}).status_code == 400
    assert client.get("/api/jobs/j999").status_code == 404
    assert client.delete("/api/jobs/j999").status_code == 404
    too_long = client.post("/api/jobs", json={"kind": "graph", "prompt": "a" * 300})
    assert too_long.status_code == 400 and "the model's context is 128" in too_long.json()["error"]
    empty = client.post("/api/jobs", json={"kind": "graph", "prompt": " "})
    assert empty.status_code == 400 and "empty" in empty.json()["error"]
    assert not _job_threads()


def test_a_feature_stats_job_counts_the_firings_over_the_data(client: TestClient, workbench: Workbench) -> None:
    import torch

    from circuitscope.sae import Corpus, build_contexts
    from tests.serve.conftest import DATA_TEXTS, SAE_HOOK

    job = client.post("/api/jobs", json={"kind": "feature_stats", "source": SAE_HOOK}).json()["job"]
    status = _wait(client, job)
    assert status["state"] == "done", status
    stats = client.get(f"/api/jobs/{job}/result").json()
    model, sae = workbench.model, workbench.sources[SAE_HOOK].sae  # the SAE keeps BOS (exclude_bos=False)
    tokens = build_contexts(model, Corpus("t", DATA_TEXTS), 64, max_contexts=256).tokens
    with torch.no_grad():
        acts = model.cache_activations(tokens, SAE_HOOK)[SAE_HOOK]
        fired = (sae.encode(acts.reshape(-1, acts.shape[-1])) > 0).double().mean(0)
    assert stats["n_tokens"] == tokens.numel()
    assert stats["dead_fraction"] == pytest.approx(float((fired == 0).double().mean()))
    by_feature = {f["feature"]: f["frequency"] for f in stats["most_frequent"]}
    assert by_feature and all(v == pytest.approx(float(fired[f]), rel=1e-5) for f, v in by_feature.items())
    assert max(by_feature.values()) == pytest.approx(float(fired.max()), rel=1e-5)
    assert sum(stats["histogram"]["counts"]) == int((fired > 0).sum())
    transcoder = client.post("/api/jobs", json={"kind": "feature_stats", "source": "transcoder.L0"}).json()["job"]
    assert _wait(client, transcoder)["state"] == "done"
    _no_hooks(workbench)
    unknown = client.post("/api/jobs", json={"kind": "feature_stats", "source": "nowhere"})
    assert unknown.status_code == 404 and "the sources are" in unknown.json()["error"]
    assert not _job_threads()


def test_a_steering_sweep_job_equals_the_library_sweep(client: TestClient, workbench: Workbench) -> None:
    import torch

    from circuitscope.steering import actadd_vector, steering_sweep, target_logprob
    from tests.serve.conftest import DATA_TEXTS

    body = {"kind": "steering_sweep", "positive": "love", "negative": "hate", "prompt": "i feel", "targets": ["a"]}
    body |= {"layers": [0, 1], "coefficients": [0.0, 2.0, 8.0]}
    job = client.post("/api/jobs", json=body).json()["job"]
    status = _wait(client, job)
    assert status["state"] == "done", status
    result = client.get(f"/api/jobs/{job}/result").json()
    model = workbench.model
    make = lambda layer: actadd_vector(model, "love", "hate", f"blocks.{layer}.hook_resid_pre")  # noqa: E731
    effect = target_logprob(["i feel"], ["a"])
    sweep = steering_sweep(model, make, [0, 1], [0.0, 2.0, 8.0], effect, DATA_TEXTS, on_progress=lambda *_: None)
    torch.testing.assert_close(torch.tensor(result["scores"]), sweep.effect, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.tensor(result["damage"]), sweep.damage, rtol=1e-5, atol=1e-6)
    assert result["scores"][0][0] == pytest.approx(result["baseline_effect"], rel=1e-5)  # coefficient 0 steers nothing
    assert result["neutral_texts"] == len(DATA_TEXTS)
    _no_hooks(workbench)
    bad = [
        ({"layers": [0, 99]}, "layer 99 is out of range"),
        ({"layers": list(range(2)), "coefficients": [float(c) for c in range(40)]}, "over the limit of 64"),
        ({"targets": ["ab"]}, "target word"),
        ({"targets": []}, "at least one target"),
        ({"positive": ""}, "positive prompt is empty"),
    ]
    for change, message in bad:
        answer = client.post("/api/jobs", json=body | change)
        assert answer.status_code == 400 and message in answer.json()["error"], (change, answer.text)
    assert not _job_threads()
