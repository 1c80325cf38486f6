"""``circuitscope serve``: a local explorer in the browser for a model, its features and its circuits (issue 19).

:class:`ServeConfig` holds where the server listens and its limits, :class:`Workbench` what it works on (the
model, its SAEs or transcoders, the folders it may read), :func:`create_app` makes the ASGI app and
:func:`serve` runs it with uvicorn. The views behind each endpoint are in :mod:`circuitscope.serve.views`.

``create_app`` and ``serve`` are imported on first use, so that ``circuitscope --help`` (whose ``serve`` command
reads :class:`ServeConfig`) does not import FastAPI and uvicorn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from circuitscope.serve import errors
from circuitscope.serve.config import ServeConfig
from circuitscope.serve.errors import *  # noqa: F403 (every error, as errors.__all__ lists them)
from circuitscope.serve.workbench import Workbench

if TYPE_CHECKING:
    from circuitscope.serve.app import create_app
    from circuitscope.serve.server import serve

__all__ = ["ServeConfig", "Workbench", "create_app", "serve"]
__all__ += errors.__all__


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from circuitscope.serve.app import create_app

        return create_app
    if name == "serve":
        from circuitscope.serve.server import serve

        return serve
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
