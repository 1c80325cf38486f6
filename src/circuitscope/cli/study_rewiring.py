"""``circuitscope study rewiring``: is fine-tuning re-weighting existing circuits rather than building new ones?

``--before MODEL --after FOLDER`` compares a model with its fine-tuned folder (``circuitscope finetune``'s
``--out-dir`` or its ``model/``); ``--finetune`` runs the default fine-tune of ``--before`` first.
``--before CKPT --after CKPT`` compares two checkpoints of one toy run (``RUN/checkpoints/step_XXXXXXX``):
they have no tokenizer, so the study runs on generated token contexts (repeated random segments in-domain,
uniform random tokens out of domain) and leaves out IOI, attention and CKA (the report says so).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from circuitscope.cli._config_options import Configured, config_options
from circuitscope.cli._options import JsonFlag, OutOpt
from circuitscope.cli._output import reporting_errors
from circuitscope.cli._paths import Writes, check_output_dir, check_output_file
from circuitscope.cli.study import study_app
from circuitscope.core.loading import DEFAULT_MODEL
from circuitscope.studies.rewiring import RewiringConfig

if TYPE_CHECKING:
    import torch

    from circuitscope.core.hooked_model import HookedModel

BeforeOpt = Annotated[str, typer.Option("--before", help="The model before: a model (as --model) or a toy CKPT.")]
AfterOpt = Annotated[
    str | None,
    typer.Option("--after", help="The model after: a fine-tuned folder (circuitscope finetune), a model or a CKPT."),
]
FinetuneFlag = Annotated[bool, typer.Option("--finetune", help="Run the default LoRA fine-tune of --before first.")]
FinetuneDirOpt = Annotated[
    Path, typer.Option("--finetune-dir", help="Where --finetune writes its run (resumed if there).")
]


def _open(spec: str) -> HookedModel:
    from circuitscope.core.loading import load_model
    from circuitscope.finetune import model_folder, read_record
    from circuitscope.toy.checkpoint_model import is_toy_checkpoint, load_toy_checkpoint

    if is_toy_checkpoint(spec):
        return load_toy_checkpoint(spec)
    inner = model_folder(spec)
    return load_model(inner if read_record(inner) is not None else spec)


def _contexts(before: HookedModel, after: str, config: RewiringConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """In-domain contexts (the fine-tune's held-out ones) and out-of-domain ones (None: the study's default)."""
    import torch

    from circuitscope.finetune import FinetuneConfig, finetune_data, model_folder, read_record
    from circuitscope.toy.induction import repeated_segment_batch

    if before.tokenizer is None:  # a toy pair
        n_ctx, d_vocab, n = before.cfg.n_ctx, before.cfg.d_vocab, config.n_contexts
        g = torch.Generator().manual_seed(config.seed)
        return repeated_segment_batch(g, n, n_ctx, d_vocab), torch.randint(
            0, d_vocab, (config.n_ood, n_ctx), generator=g
        )
    for folder in (model_folder(after), Path(after)):
        record = read_record(folder) if folder.is_dir() else None
        if record is not None:
            return record.heldout, None
    return finetune_data(before, None, FinetuneConfig()).heldout, None  # the default fine-tune's held-out text


def _check(before: str, after: str | None, finetune: bool, finetune_dir: Path, out: Path) -> None:
    from circuitscope.studies.errors import StudyConfigError
    from circuitscope.toy.checkpoint_model import is_toy_checkpoint

    check_output_file(out, "--out")
    if (after is None) == (not finetune):
        raise StudyConfigError("give --after FOLDER (the fine-tuned model) or --finetune (fine-tune --before first)")
    if finetune:
        if is_toy_checkpoint(before):
            raise StudyConfigError("--finetune fine-tunes a text model; for a toy run give --after CKPT")
        check_output_dir(finetune_dir, "--finetune-dir")
    elif after is not None and is_toy_checkpoint(before) != is_toy_checkpoint(after):
        raise StudyConfigError("--before and --after must both be toy checkpoints, or neither")


@config_options(RewiringConfig, "n_contexts>=1 n_ood>=1 n_ablation>=1 ioi_prompts>=1 circuit_method n_boot>=100 seed")
def rewiring(
    before: BeforeOpt = DEFAULT_MODEL,
    after: AfterOpt = None,
    finetune: FinetuneFlag = False,
    finetune_dir: FinetuneDirOpt = Path("rewiring-finetune"),
    *,
    options: Configured[RewiringConfig],
    out: OutOpt = Path("study-rewiring.html"),
    as_json: JsonFlag = False,
) -> None:
    """Is fine-tuning rewiring and re-weighting circuits that already exist, rather than building new ones?"""
    from rich.console import Console

    from circuitscope.progress import stages
    from circuitscope.report.rewiring import rewiring_report
    from circuitscope.studies.rewiring import rewiring_study

    with reporting_errors(as_json):
        config = options.build()
        _check(before, after, finetune, finetune_dir, out)
        model_before = _open(before)
        with stages("study rewiring") as on_progress:
            if finetune:
                from circuitscope.finetune import finetune_into, model_folder

                finetune_into(model_before, finetune_dir, on_progress=on_progress)
                after = str(model_folder(finetune_dir))
            assert after is not None
            model_after = _open(after)
            in_domain, ood = _contexts(model_before, after, config)
            result = rewiring_study(  # not under no_grad: circuit discovery takes gradients
                model_before, model_after, in_domain, config, out_of_domain=ood, on_progress=on_progress
            )
    writes = Writes(as_json)
    report = rewiring_report(result, before=before, after=after)
    path = writes.attempt("the HTML report", out, lambda: report.write(out))
    if as_json:
        writes.emit_json({"before": before, "after": after, "study": "rewiring", **result.to_json(), "report": path})
        return
    console = Console()
    console.print(result.answer(), markup=False)
    for note in result.notes:  # what this pair could not be compared on
        console.print(f"note: {note}", markup=False)
    if path:
        Console(stderr=True).print(f"report: {path}", markup=False)
    writes.done()


def register(app: typer.Typer) -> None:
    """Add ``rewiring`` to ``circuitscope study`` (``study`` registers the group first: modules load in name order)."""
    del app
    study_app.command("rewiring")(rewiring)
