"""What keeps the explorer to its user: the access token and file arguments confined to the start-up folders.

A server bound to a loopback address answers only its own machine; on any other address every request
must carry the access token (:func:`token_matches`). A file a request names (a graph, a circuit, a
steering vector) is a path relative to one of the folders given at start-up, resolved by
:func:`resolve_inside`: absolute paths, ``..`` and symlinks leading out of the folders are refused.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath

from circuitscope.serve.errors import ServeNotFoundError, ServePathError

__all__ = ["bearer_token", "is_loopback", "resolve_inside", "token_matches"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``127.0.0.0/8``, ``::1`` or ``localhost``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def bearer_token(authorization: str | None, query_token: str | None) -> str | None:
    """The token a request carries: ``Authorization: Bearer TOKEN``, else the ``token`` query parameter."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return query_token or None


def token_matches(given: str | None, expected: str) -> bool:
    """Whether ``given`` is the access token (compared in constant time)."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def resolve_inside(roots: Sequence[Path], relative: str) -> Path:
    """The existing file ``relative`` names inside one of ``roots``, the first root that has it.

    Refused (:class:`~circuitscope.serve.errors.ServePathError`): an empty path, an absolute path, a
    ``..`` component, and a path whose real location (symlinks followed) is outside its root. A path
    that is allowed but names no file is :class:`~circuitscope.serve.errors.ServeNotFoundError`.
    """
    if not isinstance(relative, str) or not relative.strip():
        raise ServePathError("the file path is empty: give a path relative to one of the server's folders")
    if "\x00" in relative:
        raise ServePathError("the file path holds a NUL character: give a plain relative path")
    posix, windows = PurePosixPath(relative), PureWindowsPath(relative)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or relative.startswith(("/", "\\", "~")):
        raise ServePathError(f"{relative!r} is an absolute path: give a path relative to one of the server's folders")
    if ".." in posix.parts or ".." in windows.parts:
        raise ServePathError(f"{relative!r} goes up a folder ('..'): give a path inside one of the server's folders")
    if not roots:
        raise ServeNotFoundError(f"no file {relative!r}: the server was started without folders of files (--files)")
    for root in roots:
        base = root.resolve()
        candidate = (base / posix).resolve()
        if not candidate.is_relative_to(base):
            raise ServePathError(
                f"{relative!r} leads outside the server's folders (a symlink out of {root}): give a file inside them"
            )
        if candidate.is_file():
            return candidate
    raise ServeNotFoundError(f"no file {relative!r} in the server's folders ({', '.join(str(r) for r in roots)})")
