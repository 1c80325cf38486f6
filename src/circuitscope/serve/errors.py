"""Errors the explorer's API answers with a 4xx status: what was wrong with the request and how to fix it.

Every one is a :class:`~circuitscope.errors.CircuitscopeError`; the app turns it into ``{"error": message,
"type": class name}`` with the class's ``status``. Any other ``CircuitscopeError`` a library call raises on a
request (a prompt that does not tokenise, an SAE for another model) is a 400 too; nothing a request can cause
is a 500 with a traceback.
"""

from __future__ import annotations

from typing import ClassVar

from circuitscope.errors import CircuitscopeError

__all__ = [
    "ServeBusyError",
    "ServeClientGoneError",
    "ServeError",
    "ServeInputError",
    "ServeNotFoundError",
    "ServePathError",
    "ServeTooLargeError",
    "ServeUnauthorizedError",
]


class ServeError(CircuitscopeError):
    """Base of the explorer's request errors."""

    status: ClassVar[int] = 400


class ServeInputError(ServeError, ValueError):
    """A request whose content is wrong: an unknown field value, a layer or head out of range, a prompt too long."""

    status: ClassVar[int] = 400


class ServeUnauthorizedError(ServeError):
    """A request without the access token a server bound to a non-loopback host requires."""

    status: ClassVar[int] = 401


class ServePathError(ServeError):
    """A file argument that resolves outside the folders given at start-up (``..``, absolute, a symlink out)."""

    status: ClassVar[int] = 403


class ServeNotFoundError(ServeError, KeyError):
    """An unknown job, SAE, vector, session or file."""

    status: ClassVar[int] = 404

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text.
        return str(self.args[0]) if self.args else ""


class ServeTooLargeError(ServeError):
    """A request body over the server's size limit."""

    status: ClassVar[int] = 413


class ServeBusyError(ServeError):
    """The concurrent-job limit is reached: wait for a job to finish or cancel one."""

    status: ClassVar[int] = 429


class ServeClientGoneError(ServeError):
    """The client closed its connection while its request waited for the model: the view was not computed."""

    status: ClassVar[int] = 499  # "client closed request": nobody reads it, the log says why nothing ran
