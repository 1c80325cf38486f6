"""Routes of background jobs: start one, list them, watch one, cancel it, fetch its result.

A graph job runs :func:`~circuitscope.serve.views.graphs.graph_job`, a feature-statistics job
:func:`~circuitscope.serve.views.feature_stats.feature_stats_job` over the ``--data`` texts, both on the workbench's
second model copy (:meth:`~circuitscope.serve.workbench.Workbench.job_model`), so the views stay responsive.
"""

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
    kind: Literal["graph", "feature_stats"]
    prompt: str = ""
    max_feature_nodes: int = Field(256, ge=1, le=4096)
    source: str | None = None


def job_routes(workbench: Workbench, config: ServeConfig, jobs: JobManager) -> APIRouter:
    """The job routes: jobs on ``workbench``'s job copy of the model, at most ``config.max_jobs`` at once."""
    router = APIRouter(prefix="/api/jobs")

    @router.post("")
    def start(body: JobBody) -> Response:
        work = _feature_stats(workbench, body) if body.kind == "feature_stats" else _graph(workbench, config, body)
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
