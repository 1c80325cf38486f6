"""Running the explorer's app with uvicorn: in the foreground (:func:`serve`), or in a thread (:func:`running`).

The address is known once the socket is bound (``port=0`` picks a free one), so both report it then:
:func:`serve` through ``on_started(url)``, :func:`running` by yielding it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from circuitscope.serve.app import create_app
from circuitscope.serve.config import ServeConfig
from circuitscope.serve.workbench import Workbench

__all__ = ["base_url", "running", "serve"]


def base_url(host: str, port: int) -> str:
    """``http://host:port`` (an IPv6 host in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Server(uvicorn.Server):
    """uvicorn's server, telling ``on_started`` its address once it listens."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[str], None] | None) -> None:
        super().__init__(config)
        self.on_started = on_started
        self.url = ""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started or not self.servers or not self.servers[0].sockets:
            return
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        self.url = base_url(self.config.host if host in ("0.0.0.0", "::") else host, port)
        if self.on_started is not None:
            self.on_started(self.url)


def _uvicorn_config(app: FastAPI, config: ServeConfig, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(app, host=config.host, port=config.port, log_level=log_level, access_log=False,
                          lifespan="on", timeout_graceful_shutdown=5)  # fmt: skip


def serve(workbench: Workbench, config: ServeConfig, *, on_started: Callable[[str], None] | None = None) -> None:
    """Serve the explorer on ``workbench`` until interrupted (Ctrl-C); ``on_started(url)`` once it listens."""
    app = create_app(workbench, config)
    _Server(_uvicorn_config(app, config, "warning"), on_started).run()


@contextmanager
def running(app: FastAPI, config: ServeConfig, timeout: float = 30.0) -> Iterator[str]:
    """``app`` served in a thread for the block; its base URL. The server is shut down (and joined) after."""
    server = _Server(_uvicorn_config(app, config, "error"), None)
    thread = threading.Thread(target=server.run, name="circuitscope-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.url:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the explorer did not start on {config.host}:{config.port} within {timeout:g} s")
        time.sleep(0.01)
    try:
        yield server.url
    finally:
        server.should_exit = True
        thread.join(timeout)
