"""What one explorer server works on: the loaded model, its feature sources, the folders it may read.

Hooks are model-wide, so every use of :attr:`Workbench.model` holds :attr:`Workbench.lock` for one whole view
call (or one generation step). A view request takes its turn with :meth:`Workbench.turn`: one whose client has
closed the connection while it waited for the lock is dropped, not computed (a synchronous view cannot be
stopped once it runs, but a queue of abandoned requests no longer holds up the ones behind it).
Background jobs run on a second copy of the model (:meth:`Workbench.job_model`,
made on the first job from a deep copy of the Hugging Face model, with its own lock), so a long graph never
blocks the prompt view.
The head detector scores are computed once, on first use, and kept.
"""

from __future__ import annotations

import copy
import itertools
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import anyio.from_thread

from circuitscope.errors import OptionError, TokenizationError
from circuitscope.serve.errors import ServeClientGoneError, ServeInputError, ServeNotFoundError

if TYPE_CHECKING:
    from starlette.requests import Request

    from circuitscope.core.hooked_model import HookedModel
    from circuitscope.sae.base import SAE
    from circuitscope.serve.views.attention import HeadScoresView
    from circuitscope.serve.views.features import FeatureSource
    from circuitscope.steering.vector import SteeringVector
    from circuitscope.transcoders.modules import TranscoderSet

__all__ = ["MAX_VECTORS", "Workbench", "vector_layer"]

MAX_VECTORS = 64
"""Steering vectors a server keeps; building one more forgets the oldest."""

_LAYER = re.compile(r"^blocks\.(\d+)\.")


class Workbench:
    """The model a server explores, with its SAEs or transcoders, the --data texts and the readable folders."""

    def __init__(
        self,
        model: HookedModel,
        *,
        name: str = "",
        sources: dict[str, FeatureSource] | None = None,
        transcoders: TranscoderSet | None = None,
        data: Sequence[str] | None = None,
        roots: Sequence[Path] = (),
    ) -> None:
        self.model = model
        """The model every request runs (hold :attr:`lock` while using it)."""
        self.name = name or type(model.hf_model).__name__
        """What the page calls the model (the --model value)."""
        self.sources: dict[str, FeatureSource] = dict(sources or {})
        """The SAEs and transcoder layers, by name."""
        self.transcoders = transcoders
        """The transcoders attribution graphs replace the MLPs with (None: no graphs)."""
        self.data: list[str] | None = None if data is None else list(data)
        """The --data texts (feature pages' contexts, feature statistics); None: none given."""
        self.roots = tuple(Path(r) for r in roots)
        """The SAE, transcoder and --data folders (a request's file argument may name a file in them, or in the
        server's --files folders)."""
        self.lock = threading.Lock()
        """Held for every use of :attr:`model`."""
        self._job_lock = threading.Lock()
        self._job_copy: tuple[HookedModel, TranscoderSet | None] | None = None
        self._scores: HeadScoresView | None = None
        self._vectors: OrderedDict[str, SteeringVector] = OrderedDict()
        self._vector_ids = itertools.count(1)
        self._state = threading.Lock()
        self._streams = 0
        self.dropped = 0
        """View requests dropped because their client had gone before their turn."""

    @contextmanager
    def turn(self, request: Request | None = None) -> Iterator[HookedModel]:
        """The model, with :attr:`lock` held for the block; :class:`ServeClientGoneError` instead when ``request``'s
        client closed the connection while it waited (checked from the route's worker thread, in the server's
        event loop; a call from outside a server's worker thread is never dropped)."""
        with self.lock:
            if request is not None and _client_gone(request):
                with self._state:
                    self.dropped += 1
                raise ServeClientGoneError(f"the client of {request.url.path} closed the connection before its turn")
            yield self.model

    @classmethod
    def load(
        cls,
        model: str,
        *,
        saes: Sequence[Path] = (),
        transcoders: Path | None = None,
        data: Path | None = None,
    ) -> Workbench:
        """Load the model, the SAE folders, the transcoder folder and the --data texts, refusing any that
        does not fit (a bad folder, an SAE or transcoders of another model) before the server starts."""
        from circuitscope.core.loading import load_model
        from circuitscope.sae.io import load_sae
        from circuitscope.serve.views.features import feature_sources
        from circuitscope.transcoders.io import load_transcoders

        hooked = load_model(model)
        loaded_saes: list[SAE] = [load_sae(folder) for folder in saes]
        tc = None if transcoders is None else load_transcoders(transcoders, hooked)
        sources = feature_sources(hooked, loaded_saes, tc)
        texts = None if data is None else _data_texts(data)
        roots = [*saes, *([transcoders] if transcoders else []), *([data] if data else [])]
        return cls(hooked, name=model, sources=sources, transcoders=tc, data=texts, roots=roots)

    @cached_property
    def fingerprint(self) -> str:
        """The model's weights fingerprint (sessions and files record it)."""
        from circuitscope.core.fingerprint import model_fingerprint

        with self.lock:
            return model_fingerprint(self.model)

    def source(self, name: object) -> FeatureSource:
        """The feature source called ``name``, or a clear error listing the ones there are."""
        from circuitscope.serve.views.features import source_named

        return source_named(self.sources, name)

    def check_prompt(self, prompt: str, limit: int, what: str = "prompt") -> None:
        """Refuse a prompt that does not tokenise, or is longer than ``limit`` tokens (--max-prompt-tokens)."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise ServeInputError(f"the {what} is empty or not text ({type(prompt).__name__}): type some text")
        if len(prompt) > 16 * limit + 64:  # far over the limit: not worth tokenising
            raise ServeInputError(
                f"the {what} is {len(prompt)} characters, over the limit of {limit} tokens: shorten it"
            )
        try:
            n = int(self.model.to_tokens(prompt).shape[-1])
        except TokenizationError as err:
            raise ServeInputError(f"the {what} cannot be run: {err}") from err
        if n > limit:
            raise ServeInputError(
                f"the {what} is {n} tokens, over this server's limit of {limit} (--max-prompt-tokens): shorten it"
            )

    def head_scores(self) -> HeadScoresView:
        """The head detector scores of the model, computed on first use and kept."""
        from circuitscope.serve.views.attention import head_scores

        with self.lock:
            if self._scores is None:
                self._scores = head_scores(self.model)
            return self._scores

    @contextmanager
    def job_model(self) -> Iterator[tuple[HookedModel, TranscoderSet | None]]:
        """The second copy of the model and transcoders, for background jobs, held for the block."""
        with self._job_lock:
            if self._job_copy is None:
                self._job_copy = self._copy()
            yield self._job_copy

    def _copy(self) -> tuple[HookedModel, TranscoderSet | None]:
        """A deep copy of the model (wired afresh: ``HookedModel.__deepcopy__``) and of the transcoders."""
        with self.lock:  # no request's hooks are attached while the lock is held
            return copy.deepcopy(self.model), copy.deepcopy(self.transcoders)

    @property
    def job_copy(self) -> HookedModel | None:
        """The jobs' copy of the model, if a job made it (for leak checks)."""
        return None if self._job_copy is None else self._job_copy[0]

    def add_vector(self, vector: SteeringVector) -> str:
        """Keep a steering vector for the session; its id (the oldest is forgotten past :data:`MAX_VECTORS`)."""
        with self._state:
            key = f"v{next(self._vector_ids)}"
            self._vectors[key] = vector
            while len(self._vectors) > MAX_VECTORS:
                self._vectors.popitem(last=False)
            return key

    def vector(self, key: object) -> SteeringVector:
        """The steering vector with id ``key``."""
        with self._state:
            if not isinstance(key, str) or key not in self._vectors:
                raise ServeNotFoundError(
                    f"no steering vector {key!r:.40}: build one first (POST /api/steer/vector); the server keeps "
                    f"the last {MAX_VECTORS}"
                )
            return self._vectors[key]

    @contextmanager
    def streaming(self) -> Iterator[None]:
        """Counts a generation stream while it runs (:attr:`active_streams`)."""
        with self._state:
            self._streams += 1
        try:
            yield
        finally:
            with self._state:
                self._streams -= 1

    @property
    def active_streams(self) -> int:
        """Generation streams running now."""
        with self._state:
            return self._streams


def _client_gone(request: Request) -> bool:
    """Whether the request's client has disconnected (False outside an anyio worker thread of the server)."""
    try:
        return bool(anyio.from_thread.run(request.is_disconnected))
    except RuntimeError:  # not in a worker thread of a running event loop: a direct call, nothing to ask
        return False


def vector_layer(vector: SteeringVector) -> int | None:
    """The layer of a vector's hook (``blocks.5.hook_resid_pre`` -> 5), None for a hook outside the blocks."""
    match = _LAYER.match(vector.hook)
    return int(match.group(1)) if match else None


def _data_texts(folder: Path) -> list[str]:
    from circuitscope.sae.corpus import load_corpus

    if not folder.is_dir():
        raise OptionError(f"--data {folder} is not a folder: give a folder of .txt, .md or .jsonl files")
    texts = [t for t in load_corpus(folder).documents if t.strip()]
    if not texts:
        raise OptionError(f"--data {folder} holds no text (.txt, .md or .jsonl files): add some, or leave --data out")
    return texts
