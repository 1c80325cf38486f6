"""Routes of files: graph and circuit files inside the server's folders, and the user's saved sessions."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from circuitscope.serve.config import ServeConfig
from circuitscope.serve.responses import Body, json_response
from circuitscope.serve.security import resolve_inside
from circuitscope.serve.sessions import SessionStore
from circuitscope.serve.workbench import Workbench

__all__ = ["file_routes"]


class SessionBody(Body):
    name: str
    work: dict[str, object]


def file_routes(workbench: Workbench, config: ServeConfig, sessions: SessionStore) -> APIRouter:
    """Graph and circuit files (inside ``workbench.roots`` and ``config.files``) and ``sessions``."""
    router = APIRouter(prefix="/api")
    roots = (*workbench.roots, *config.files)

    @router.get("/graph")
    def graph(path: str) -> Response:
        from circuitscope.serve.views.graphs import graph_file_view

        return json_response(graph_file_view(resolve_inside(roots, path)))

    @router.get("/circuit")
    def circuit(path: str) -> Response:
        from circuitscope.serve.views.graphs import circuit_file_view

        found = resolve_inside(roots, path)
        with workbench.lock:  # checked against the model (its fingerprint)
            return json_response(circuit_file_view(found, workbench.model))

    @router.get("/sessions")
    def listing() -> Response:
        return json_response({"sessions": [s.to_json() for s in sessions.saved()]})

    @router.post("/sessions")
    def save(body: SessionBody) -> Response:
        return json_response(sessions.save(body.name, body.work).to_json())

    @router.get("/sessions/{name}")
    def open_session(name: str) -> Response:
        return json_response(sessions.open(name))

    return router
