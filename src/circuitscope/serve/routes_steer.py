"""Routes of steering: build or load a vector (kept in the server), and stream plain and steered generations.

``POST /api/steer/generate`` answers ``application/x-ndjson``: one ``GenerationStep`` per line as each token is
made, then ``{"done": true, "plain": ..., "steered": ...}`` (the whole generated texts). The steps come from
:func:`~circuitscope.serve.views.steering.generation_steps`, which takes the model lock per step, so other
requests interleave with a long generation. A client that disconnects stops the generation at the next step:
the generator is closed, which detaches its hooks and never leaves the lock held.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from circuitscope.serve.config import ServeConfig
from circuitscope.serve.errors import ServeInputError
from circuitscope.serve.responses import Body, json_response
from circuitscope.serve.security import resolve_inside
from circuitscope.serve.workbench import Workbench, vector_layer

if TYPE_CHECKING:
    from circuitscope.steering.vector import SteeringVector

__all__ = ["steer_routes"]


class VectorBody(Body):
    kind: Literal["actadd", "file"]
    positive: str | None = None
    negative: str | None = None
    layer: int | None = None
    path: str | None = None


class GenerateBody(Body):
    prompt: str
    vector: str | None = None
    source: str | None = None
    index: int | None = None
    coefficient: float = 1.0
    max_new_tokens: int = Field(16, ge=1)


def _line(payload: dict[str, Any]) -> bytes:
    return (json.dumps(payload, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def steer_routes(workbench: Workbench, config: ServeConfig) -> APIRouter:
    """The steering routes on ``workbench``; file vectors resolve inside its folders and ``config.files``."""
    router = APIRouter(prefix="/api/steer")
    roots = (*workbench.roots, *config.files)

    def built(body: VectorBody) -> SteeringVector:
        if body.kind == "file":
            if body.path is None:
                raise ServeInputError("a file vector needs 'path': a .safetensors file inside the server's folders")
            from circuitscope.steering.io import load_vector

            return load_vector(resolve_inside(roots, body.path), workbench.model)
        missing = [k for k in ("positive", "negative", "layer") if getattr(body, k) is None]
        if missing:
            raise ServeInputError(f"an ActAdd vector needs {', '.join(missing)}: two prompts and a layer")
        assert body.positive is not None and body.negative is not None and body.layer is not None
        workbench.check_prompt(body.positive, config.max_prompt_tokens, "positive prompt")
        workbench.check_prompt(body.negative, config.max_prompt_tokens, "negative prompt")
        from circuitscope.serve.views.steering import actadd_view

        with workbench.lock:
            return actadd_view(workbench.model, body.positive, body.negative, body.layer)

    @router.post("/vector")
    def vector(body: VectorBody) -> Response:
        made = built(body)
        key = workbench.add_vector(made)
        return json_response({"vector": key, "layer": vector_layer(made), "norm": float(made.vector.norm())})

    def chosen(body: GenerateBody) -> SteeringVector | None:
        if body.vector is not None and (body.source is not None or body.index is not None):
            raise ServeInputError("give either 'vector' or 'source' and 'index' (a feature's direction), not both")
        if body.vector is not None:
            return workbench.vector(body.vector)
        if body.source is not None or body.index is not None:
            if body.source is None or body.index is None:
                raise ServeInputError("a feature's steering needs both 'source' and 'index'")
            from circuitscope.serve.views.steering import feature_vector

            return feature_vector(workbench.source(body.source), body.index)
        return None

    @router.post("/generate")
    def generate(body: GenerateBody) -> Response:
        if body.max_new_tokens > config.max_new_tokens:
            raise ServeInputError(
                f"max_new_tokens {body.max_new_tokens} is over this server's limit of {config.max_new_tokens} "
                "(--max-new-tokens): ask for fewer"
            )
        from circuitscope.serve.views.steering import generation_steps

        workbench.check_prompt(body.prompt, config.max_prompt_tokens)
        steps = generation_steps(
            workbench.model,
            body.prompt,
            vector=chosen(body),
            coefficient=body.coefficient,
            max_new_tokens=body.max_new_tokens,
            lock=workbench.lock,
        )
        first = next(steps, None)  # the inputs are checked here: a bad request is a 4xx, not a broken stream
        return StreamingResponse(_stream(workbench, steps, first), media_type="application/x-ndjson")

    return router


async def _stream(workbench: Workbench, steps: Iterator[Any], first: Any) -> AsyncIterator[bytes]:
    """The NDJSON lines of ``steps``; closing it (a client gone) closes the generator between two steps."""
    end = object()
    texts = {"plain": "", "steered": ""}
    with workbench.streaming():
        try:
            step: Any = first
            while step is not None and step is not end:
                payload = step.to_json()
                texts = {"plain": payload["plain_text"], "steered": payload["steered_text"]}
                yield _line(payload)
                step = await run_in_threadpool(next, steps, end)
            yield _line({"done": True, **texts})
        finally:
            getattr(steps, "close", lambda: None)()
