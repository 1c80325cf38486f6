"""The explorer's ASGI app: ``create_app(workbench, config)`` -> a FastAPI app serving the page and its API.

Every request passes :class:`_Guard` first: the access token (when the host is not loopback; 401 without it),
the body size (413 over ``max_request_bytes``, counted before anything parses the body), and a last net for an
unexpected exception (500 ``{"error": "internal error: <class>: <message>"}``, the traceback only in the
server's log). The handlers turn a :class:`~circuitscope.serve.errors.ServeError` into its status, any other
:class:`~circuitscope.errors.CircuitscopeError` into 400, and a malformed request (a missing field, a value of
the wrong type, a body that is not JSON) into 400 naming the field; every error body is
``{"error": message, "type": class name}``. There is no CORS middleware: the page is served by the app itself.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from circuitscope.errors import CircuitscopeError
from circuitscope.serve.config import ServeConfig
from circuitscope.serve.errors import ServeError, ServeInputError, ServeTooLargeError, ServeUnauthorizedError
from circuitscope.serve.jobs import JobManager
from circuitscope.serve.routes_files import file_routes
from circuitscope.serve.routes_jobs import job_routes
from circuitscope.serve.routes_model import model_routes
from circuitscope.serve.routes_steer import steer_routes
from circuitscope.serve.security import bearer_token, resolve_inside, token_matches
from circuitscope.serve.sessions import SessionStore, default_sessions_folder
from circuitscope.serve.workbench import Workbench

__all__ = ["create_app", "error_body", "static_folders"]

_log = logging.getLogger(__name__)


def error_body(err: BaseException) -> dict[str, str]:
    """``{"error": message, "type": class name}``, the body of every error response."""
    return {"error": str(err), "type": type(err).__name__}


def _error_response(err: ServeError | CircuitscopeError) -> JSONResponse:
    status = err.status if isinstance(err, ServeError) else 400
    return JSONResponse(error_body(err), status_code=status)


def static_folders() -> list[Path]:
    """The page's files (serve/static), then the graph viewer's (report/static)."""
    return [Path(str(resources.files(f"circuitscope.{p}") / "static")) for p in ("serve", "report")]


class _Guard:
    """Pure ASGI middleware: the token check, the body-size limit, and a 500 for an unexpected exception."""

    def __init__(self, app: ASGIApp, config: ServeConfig) -> None:
        self.app = app
        self.config = config

    def _authorized(self, scope: Scope) -> bool:
        if not self.config.needs_token:
            return True
        path = scope.get("path", "")
        if path.startswith("/static/"):
            return True  # the page's own scripts and styles; every call that reaches the model needs the token
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [None])[0]
        expected = self.config.token or ""
        return bool(expected) and token_matches(bearer_token(headers.get("authorization"), query), expected)

    async def _body(self, scope: Scope, receive: Receive) -> list[Message] | None:
        """The request's body messages, or None when they add up to more than the limit."""
        limit = self.config.max_request_bytes
        for key, value in scope.get("headers", []):
            if key.lower() == b"content-length" and value.isdigit() and int(value) > limit:
                return None
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            size += len(message.get("body", b""))
            if size > limit:
                return None
            if not message.get("more_body", False):
                return messages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self._authorized(scope):
            err = ServeUnauthorizedError(
                "this server needs its access token: send 'Authorization: Bearer TOKEN' or add ?token=TOKEN to "
                "the address (circuitscope serve printed it at start-up)"
            )
            await _error_response(err)(scope, receive, send)
            return
        messages = await self._body(scope, receive)
        if messages is None:
            err = ServeTooLargeError(
                f"the request body is over this server's limit of {self.config.max_request_bytes} bytes "
                "(--max-request-bytes): send less"
            )
            await _error_response(err)(scope, receive, send)
            return
        replay = iter(messages)

        async def replayed() -> Message:
            message = next(replay, None)
            return message if message is not None else await receive()

        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, replayed, watched)
        except Exception as err:  # the last net: never a traceback to the client
            _log.error("%s %s failed", scope.get("method"), scope.get("path"), exc_info=err)
            if not started:
                body = {"error": f"internal error: {type(err).__name__}: {err}", "type": "InternalError"}
                await JSONResponse(body, status_code=500)(scope, receive, send)


def _validation_message(err: RequestValidationError) -> str:
    parts = []
    for problem in err.errors():
        loc = list(problem.get("loc", ()))
        where = ".".join(str(x) for x in (loc[1:] if loc[:1] in (["body"], ["query"], ["path"]) else loc))
        if problem.get("type") == "json_invalid":
            parts.append(f"the request body is not valid JSON ({problem.get('ctx', {}).get('error', 'unreadable')})")
        elif problem.get("type") == "missing":
            parts.append(f"{where or 'the body'} is missing")
        else:
            parts.append(f"{where or 'the body'}: {problem.get('msg', 'invalid')}")
    return "bad request: " + "; ".join(parts) + " (see the API in docs/serve.md)"


def create_app(workbench: Workbench, config: ServeConfig | None = None) -> FastAPI:
    """The explorer's app on ``workbench`` with ``config``'s token and limits (default: :class:`ServeConfig`)."""
    config = config or ServeConfig()
    if config.needs_token and config.token is None:
        raise ServeInputError(
            f"host {config.host} is not a loopback address, so the server needs an access token: "
            "give one (ServeConfig(token=...)) or call ServeConfig.with_token()"
        )
    jobs = JobManager(config.max_jobs)
    sessions = SessionStore(config.sessions or default_sessions_folder(), workbench.fingerprint)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        jobs.shutdown()

    app = FastAPI(title="circuitscope explorer", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.workbench, app.state.config, app.state.jobs, app.state.sessions = workbench, config, jobs, sessions

    @app.exception_handler(ServeError)
    async def _serve_error(_request: Request, err: ServeError) -> JSONResponse:
        return _error_response(err)

    @app.exception_handler(CircuitscopeError)
    async def _library_error(_request: Request, err: CircuitscopeError) -> JSONResponse:
        return _error_response(err)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _validation_message(err), "type": "ServeInputError"}, status_code=400)

    folders = static_folders()

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return FileResponse(resolve_inside(folders[:1], "index.html"), headers={"Cache-Control": "no-cache"})

    @app.get("/static/{name:path}", include_in_schema=False)
    def static(name: str) -> Response:
        return FileResponse(resolve_inside(folders, name), headers={"Cache-Control": "no-cache"})

    app.include_router(model_routes(workbench, config))
    app.include_router(steer_routes(workbench, config))
    app.include_router(job_routes(workbench, config, jobs))
    app.include_router(file_routes(workbench, config, sessions))
    app.add_middleware(_Guard, config=config)
    return app
