"""The explorer server's settings: where it listens, its access token, its limits and the folders it may read.

A :class:`ServeConfig` is checked when it is made (``__post_init__``): a bad value is an
:class:`~circuitscope.errors.OptionError` saying what is wrong and how to fix it, before anything is loaded.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from pathlib import Path

from circuitscope.errors import OptionError
from circuitscope.serve.security import is_loopback

__all__ = ["ServeConfig"]


@dataclass(frozen=True)
class ServeConfig:
    """How ``circuitscope serve`` listens and what it allows a request to do."""

    host: str = "127.0.0.1"
    """Address to bind; anything but a loopback address needs an access token (generated unless --token gives one)."""
    port: int = 8000
    """TCP port to listen on (0: a free port chosen by the system)."""
    token: str | None = None
    """Access token every request must carry (``Authorization: Bearer TOKEN`` or ``?token=TOKEN``); none on loopback."""
    max_prompt_tokens: int = 256
    """Longest prompt a request may send, in tokens."""
    max_request_bytes: int = 1 << 20
    """Largest request body, in bytes (checked before the body is parsed: a larger one is refused with 413)."""
    max_new_tokens: int = 64
    """Most tokens one steered generation may produce."""
    max_jobs: int = 1
    """Background jobs (attribution graphs) that may run at once; another one is refused with 429."""
    feature_contexts: int = 64
    """Contexts cut from the --data texts that a feature page searches for its top activating ones."""
    files: tuple[Path, ...] = ()
    """Folders of graph, circuit and steering-vector files the page may open (nothing outside them)."""
    sessions: Path | None = None
    """Folder of saved sessions (default: <CIRCUITSCOPE_HOME>/sessions)."""

    def __post_init__(self) -> None:
        if not self.host.strip():
            raise OptionError("the host is empty: give an address to bind, e.g. 127.0.0.1")
        if not 0 <= self.port <= 65535:
            raise OptionError(f"port {self.port} is out of range: give a port in 0-65535 (0: any free port)")
        if self.token is not None and len(self.token) < 8:
            raise OptionError(
                "the access token is shorter than 8 characters: give a longer one, or none to generate it"
            )
        for name in ("max_prompt_tokens", "max_request_bytes", "max_new_tokens", "max_jobs", "feature_contexts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionError(f"{name} must be a whole number >= 1, got {value!r}")
        object.__setattr__(self, "files", tuple(Path(f) for f in self.files))
        for folder in self.files:
            if not folder.is_dir():
                raise OptionError(f"--files {folder} is not a folder: give a folder of graph, circuit or vector files")

    @property
    def needs_token(self) -> bool:
        """Whether requests must carry the access token (the host is not a loopback address)."""
        return not is_loopback(self.host)

    def with_token(self) -> ServeConfig:
        """This config, with a newly generated token when the host needs one and none was given."""
        if self.token is not None or not self.needs_token:
            return self
        return dataclasses.replace(self, token=secrets.token_urlsafe(24))
