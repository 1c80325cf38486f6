"""Routes of the views on the server's model: info, prompt, attention, intervene, token features, feature pages.

Each route checks the prompt against the server's token limit, then calls its view function
(:mod:`circuitscope.serve.views`) holding the workbench's model lock for the whole call
(:meth:`~circuitscope.serve.workbench.Workbench.turn`: a request whose client has gone by its turn is dropped).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import Field

from circuitscope.serve.config import ServeConfig
from circuitscope.serve.responses import Body, json_response
from circuitscope.serve.workbench import Workbench

__all__ = ["MAX_LISTED", "listed_files", "model_routes"]

MAX_LISTED = 500
"""Files of each kind /api/info lists."""


class PromptBody(Body):
    prompt: str
    answer: str | None = None
    wrong: str | None = None
    top_k: int = Field(10, ge=1, le=100)


class AttentionBody(Body):
    prompt: str


class InterveneBody(Body):
    prompt: str
    answer: str | None = None
    wrong: str | None = None
    top_k: int = Field(10, ge=1, le=100)
    interventions: list[dict[str, Any]]


class FeaturesBody(Body):
    prompt: str
    source: str
    top_k: int = Field(5, ge=1, le=100)


def _kind(path: Path) -> str | None:
    """``graphs``, ``circuits`` or ``vectors`` for a file the page can open, from its name and first bytes."""
    if path.suffix == ".safetensors":
        return "vectors"
    if path.suffix != ".json":
        return None
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return None
    if b'"circuitscope.circuit"' in head:
        return "circuits"
    return "graphs" if b'"metadata"' in head or b'"nodes"' in head else None


def listed_files(folders: tuple[Path, ...]) -> dict[str, list[str]]:
    """The graph, circuit and vector files in ``folders``, as paths relative to their folder."""
    found: dict[str, list[str]] = {"graphs": [], "circuits": [], "vectors": []}
    for folder in folders:
        base = folder.resolve()
        for path in sorted(folder.rglob("*")):
            kind = _kind(path) if path.is_file() and path.resolve().is_relative_to(base) else None
            if kind is not None and len(found[kind]) < MAX_LISTED:
                found[kind].append(path.relative_to(folder).as_posix())
    return found


def model_routes(workbench: Workbench, config: ServeConfig) -> APIRouter:
    """The routes of the model views on ``workbench``."""
    router = APIRouter(prefix="/api")
    model, turn, limit = workbench.model, workbench.turn, config.max_prompt_tokens

    @router.get("/info")
    def info() -> Response:
        cfg = model.cfg
        return json_response(
            {
                "model": workbench.name,
                "fingerprint": workbench.fingerprint,
                "n_layers": cfg.n_layers,
                "n_heads": cfg.n_heads,
                "d_model": cfg.d_model,
                "d_vocab": cfg.d_vocab,
                "sources": [s.to_json() for s in workbench.sources.values()],
                "transcoders": workbench.transcoders is not None,
                "data": workbench.data is not None,
                "files": listed_files(config.files),
                "limits": {
                    "max_prompt_tokens": config.max_prompt_tokens,
                    "max_new_tokens": config.max_new_tokens,
                    "max_request_bytes": config.max_request_bytes,
                    "max_jobs": config.max_jobs,
                },
            }
        )

    @router.post("/prompt")
    def prompt(body: PromptBody, request: Request) -> Response:
        from circuitscope.serve.views.prompt import prompt_view

        workbench.check_prompt(body.prompt, limit)
        with turn(request):
            view = prompt_view(model, body.prompt, answer=body.answer, wrong=body.wrong, top_k=body.top_k)
        return json_response(view)

    @router.post("/attention")
    def attention(body: AttentionBody, request: Request) -> Response:
        from circuitscope.serve.views.attention import attention_view

        workbench.check_prompt(body.prompt, limit)
        scores = workbench.head_scores()
        with turn(request):
            view = attention_view(model, body.prompt, scores)
        return json_response(view)

    @router.post("/intervene")
    def intervene(body: InterveneBody, request: Request) -> Response:
        from circuitscope.serve.views.intervene import InterventionSpec, intervene_view

        workbench.check_prompt(body.prompt, limit)
        specs = [InterventionSpec.from_json(spec, model) for spec in body.interventions]
        for spec in specs:
            if spec.source is not None:
                workbench.check_prompt(spec.source, limit, "patch source prompt")
        with turn(request):
            view = intervene_view(model, body.prompt, specs, answer=body.answer, wrong=body.wrong, top_k=body.top_k)
        return json_response(view)

    @router.post("/features")
    def features(body: FeaturesBody, request: Request) -> Response:
        from circuitscope.serve.views.features import token_features_view

        source = workbench.source(body.source)
        workbench.check_prompt(body.prompt, limit)
        with turn(request):
            view = token_features_view(model, source, body.prompt, top_k=body.top_k)
        return json_response(view)

    @router.get("/feature")
    def feature(source: str, index: int, request: Request) -> Response:
        from circuitscope.serve.views.features import feature_page_view

        found = workbench.source(source)
        with turn(request):
            view = feature_page_view(model, found, index, workbench.data or [], max_contexts=config.feature_contexts)
        return json_response(view)

    return router
