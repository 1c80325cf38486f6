"""Routes of background jobs: start one, list them, watch one, cancel it, fetch its result.

Three kinds: an attribution graph (:func:`~circuitscope.serve.views.graphs.graph_job`), corpus feature
statistics over the ``--data`` texts (:func:`~circuitscope.serve.views.feature_stats.feature_stats_job`) and a
steering sweep (:func:`~circuitscope.serve.views.sweep.sweep_job`). Each runs on the workbench's second model
copy (:meth:`~circuitscope.serve.workbench.Workbench.job_model`), so the views stay responsive while it runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import Field

from circuitscope.progress import OnProgress
from circuitscope.serve.config import ServeConfig
from circuitscope.serve.errors import ServeInputError
from circuitscope.serve.jobs import JobManager
from circuitscope.serve.responses import Body, json_response
from circuitscope.serve.workbench import Workbench

__all__ = ["job_routes"]


class JobBody(Body):
    kind: Literal["graph", "feature_stats", "steering_sweep"]
    prompt: str = ""
    max_feature_nodes: int = Field(256, ge=1, le=4096)
    source: str | None = None
    positive: str = ""
    negative: str = ""
    targets: list[str] = Field(default_factory=list, max_length=16)
    layers: list[int] = Field(default_factory=list, max_length=64)
    coefficients: list[float] = Field(default_factory=list, max_length=64)


def job_routes(workbench: Workbench, config: ServeConfig, jobs: JobManager) -> APIRouter:
    """The job routes: jobs on ``workbench``'s job copy of the model, at most ``config.max_jobs`` at once."""
    router = APIRouter(prefix="/api/jobs")

    @router.post("")
    def start(body: JobBody) -> Response:
        if body.kind == "feature_stats":
            work = _feature_stats(workbench, body)
        elif body.kind == "steering_sweep":
            work = _sweep(workbench, config, body)
        else:
            work = _graph(workbench, config, body)
        return json_response({"job": jobs.submit(body.kind, work).id})

    @router.get("")
    def listing() -> Response:
        return json_response({"jobs": [job.to_json() for job in jobs.jobs()]})

    @router.get("/{key}")
    def status(key: str) -> Response:
        return json_response(jobs.get(key).to_json())

    @router.delete("/{key}")
    def cancel(key: str) -> Response:
        return json_response(jobs.cancel(key).to_json())

    @router.get("/{key}/result")
    def result(key: str) -> Response:
        return json_response(jobs.result(key))

    return router


def _graph(workbench: Workbench, config: ServeConfig, body: JobBody) -> Callable[[OnProgress], dict[str, Any]]:
    """A graph job's work, its inputs checked before it is queued."""
    if workbench.transcoders is None:
        raise ServeInputError("graphs need transcoders: start the server with --transcoders DIR")
    workbench.check_prompt(body.prompt, config.max_prompt_tokens)

    from circuitscope.serve.views.graphs import graph_job

    def work(on_progress: OnProgress) -> dict[str, Any]:
        with workbench.job_model() as (model, transcoders):
            assert transcoders is not None  # checked above
            return graph_job(
                model, transcoders, body.prompt, max_feature_nodes=body.max_feature_nodes, on_progress=on_progress
            )

    return work


def _feature_stats(workbench: Workbench, body: JobBody) -> Callable[[OnProgress], dict[str, Any]]:
    """A feature-statistics job's work, its source and texts checked before it is queued."""
    from circuitscope.serve.views.feature_stats import feature_stats_job
    from circuitscope.serve.views.features import source_named

    source = source_named(workbench.sources, body.source)
    if not workbench.data:
        raise ServeInputError("feature statistics need texts: start the server with --data DIR")
    texts = workbench.data

    def work(on_progress: OnProgress) -> dict[str, Any]:
        with workbench.job_model() as (model, _):
            return feature_stats_job(model, source, texts, on_progress=on_progress).to_json()

    return work


def _sweep(workbench: Workbench, config: ServeConfig, body: JobBody) -> Callable[[OnProgress], dict[str, Any]]:
    """A steering sweep's work, its request checked against the model before it is queued."""
    from circuitscope.serve.views.sweep import SweepRequest, check_sweep, sweep_job

    request = SweepRequest(
        body.positive, body.negative, body.prompt, tuple(body.targets), tuple(body.layers), tuple(body.coefficients)
    )
    for text, what in ((body.positive, "positive prompt"), (body.negative, "negative prompt"), (body.prompt, "prompt")):
        workbench.check_prompt(text, config.max_prompt_tokens, what)
    with workbench.lock:
        check_sweep(workbench.model, request)
    neutral = list(workbench.data or [])

    def work(on_progress: OnProgress) -> dict[str, Any]:
        with workbench.job_model() as (model, _):
            return sweep_job(model, request, neutral, on_progress=on_progress)

    return work
