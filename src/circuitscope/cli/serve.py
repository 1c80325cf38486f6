"""``circuitscope serve``: the local explorer in the browser, for a model, its features and its circuits.

Everything is loaded before the server starts (the model, each ``--sae`` folder, ``--transcoders``,
``--data``), so a bad folder, an SAE of another model or an unknown model is a clear error and exit
code 1 with nothing listening. Then the address is printed (with the access token when the host is not a
loopback address; ``--json``: one JSON line ``{"address", "token"}``) and uvicorn serves until Ctrl-C.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from circuitscope.cli._config_options import Configured, config_options
from circuitscope.cli._options import JsonFlag, ModelOpt
from circuitscope.cli._output import reporting_errors
from circuitscope.core.loading import DEFAULT_MODEL
from circuitscope.serve.config import ServeConfig

SaeOpt = Annotated[
    list[Path] | None, typer.Option("--sae", help="An SAE folder (repeat for more).", show_default=False)
]
TranscodersOpt = Annotated[
    Path | None, typer.Option("--transcoders", help="A transcoder folder (graphs, feature pages).", show_default=False)
]
DataOpt = Annotated[
    Path | None,
    typer.Option("--data", help="A folder of .txt/.md/.jsonl texts (feature pages' contexts).", show_default=False),
]
FilesOpt = Annotated[
    list[Path] | None,
    typer.Option("--files", help="A folder of graph, circuit and vector files the page may open (repeat for more).",
                 show_default=False),
]  # fmt: skip


def _started(url: str, token: str | None, as_json: bool) -> None:
    address = url if token is None else f"{url}/?token={token}"
    if as_json:
        sys.stdout.write(json.dumps({"address": url, "url": address, "token": token}) + "\n")
    else:
        typer.echo(f"circuitscope explorer on {address}" + ("" if token is None else f"\naccess token: {token}"))
        typer.echo("Ctrl-C stops it.")
    sys.stdout.flush()


@config_options(
    ServeConfig,
    "host port>=0 token max_prompt_tokens>=1 max_request_bytes>=1 max_new_tokens>=1 max_jobs>=1 "
    "feature_contexts>=1 sessions",
)
def serve(
    options: Configured[ServeConfig],
    model: ModelOpt = DEFAULT_MODEL,
    sae: SaeOpt = None,
    transcoders: TranscodersOpt = None,
    data: DataOpt = None,
    files: FilesOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Explore a model in the browser: prompts, attention, interventions, features, graphs, steering."""
    from circuitscope.serve import Workbench
    from circuitscope.serve.server import serve as run

    with reporting_errors(as_json):
        config = options.build(files=tuple(files or ())).with_token()
        workbench = Workbench.load(model, saes=list(sae or ()), transcoders=transcoders, data=data)
        run(
            workbench,
            config,
            on_started=lambda url: _started(url, config.token if config.needs_token else None, as_json),
        )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
