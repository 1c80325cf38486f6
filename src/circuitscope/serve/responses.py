"""How the explorer's routes answer: a view's JSON, serialised once, and the request bodies' common base."""

from __future__ import annotations

import json
from typing import Any, Protocol

from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

__all__ = ["Body", "ToJson", "json_response"]


class ToJson(Protocol):
    """A view result: anything with ``to_json()``."""

    def to_json(self) -> dict[str, Any]: ...


class Body(BaseModel):
    """A request body: strict types (``"3"`` is not a number) and no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid")


def json_response(payload: ToJson | dict[str, Any] | list[Any], status: int = 200) -> Response:
    """``payload`` (a view, or JSON already) as a compact JSON response, without FastAPI's per-value encoder."""
    data = payload if isinstance(payload, (dict, list)) else payload.to_json()
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return Response(text.encode(), status_code=status, media_type="application/json")
