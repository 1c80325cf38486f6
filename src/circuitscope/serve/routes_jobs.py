"""Routes of background jobs: start one, list them, watch one, cancel it, fetch its result.

A graph job runs :func:`~circuitscope.serve.views.graphs.graph_job` on the workbench's second model copy
(:meth:`~circuitscope.serve.workbench.Workbench.job_model`), so the views stay responsive while it runs.
"""

from __future__ import annotations

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
    kind: Literal["graph"]
    prompt: str
    max_feature_nodes: int = Field(256, ge=1, le=4096)


def job_routes(workbench: Workbench, config: ServeConfig, jobs: JobManager) -> APIRouter:
    """The job routes: jobs on ``workbench``'s job copy of the model, at most ``config.max_jobs`` at once."""
    router = APIRouter(prefix="/api/jobs")

    @router.post("")
    def start(body: JobBody) -> Response:
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
