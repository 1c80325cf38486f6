"""``circuitscope study rewiring``: is fine-tuning re-weighting existing circuits rather than building new ones?

``--before MODEL --after FOLDER`` compares a model with its fine-tuned folder (``circuitscope finetune``'s
``--out-dir`` or its ``model/``); ``--finetune`` runs the default fine-tune of ``--before`` first.
``--before CKPT --after CKPT`` compares two checkpoints of one toy run (``RUN/checkpoints/step_XXXXXXX``):
they have no tokenizer, so the study runs on generated token contexts (repeated random segments in-domain,
uniform random tokens out of domain) and leaves out IOI, attention and CKA (the report says so).
``--config default`` runs in minutes on 2 cores; ``--config thorough`` is the larger setting (32 contexts and
IOI prompts, EAP-IG); an option given on its own (``--ioi-prompts 32``) overrides the config's value.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from circuitscope.cli._config_options import Configured, config_options
from circuitscope.cli._options import JsonFlag, OutOpt, check_choice
from circuitscope.cli._output import reporting_errors
from circuitscope.cli._paths import Writes, check_output_dir, check_output_file
from circuitscope.cli.study import study_app
from circuitscope.core.loading import DEFAULT_MODEL
from circuitscope.studies.errors import StudyConfigError
from circuitscope.studies.rewiring import RewiringConfig, RewiringPreset

if TYPE_CHECKING:
    import torch

    from circuitscope.core.hooked_model import HookedModel
    from circuitscope.progress import OnProgress

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


def _threads(model: HookedModel) -> int:
    """The faster torch thread count for ``model`` now (1 or 2), measured on the default fine-tune's text."""
    from circuitscope.finetune import FinetuneConfig, finetune_data
    from circuitscope.studies.threads import forward_threads

    return forward_threads(model, finetune_data(model, None, FinetuneConfig()).train[:2], model.cfg.n_layers // 2)


def _finetune(model: HookedModel, folder: Path, threads: int | None, on_progress: OnProgress) -> None:
    """The default LoRA fine-tune of ``model`` into ``folder`` (resumed if there), on ``threads`` torch threads."""
    from circuitscope.finetune import FinetuneConfig, finetune_into

    finetune_into(model, folder, config=FinetuneConfig(threads=threads), on_progress=on_progress)


def _check(before: str, after: str | None, finetune: bool, finetune_dir: Path, out: Path) -> None:
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


_PRESET_FIELDS = ("n_contexts", "n_ood", "n_ablation", "ioi_prompts", "circuit_method")
"""The fields a ``--config`` sets; each one given on the command line overrides it."""
ConfigOpt = Annotated[
    str,
    typer.Option(
        "--config",
        help="'default' (minutes on 2 cores: 16 contexts, 16 IOI prompts, EAP) or 'thorough' (32 contexts, "
        "32 IOI prompts, EAP-IG; several times slower).",
    ),
]


@config_options(
    RewiringConfig,
    "n_contexts>=1 n_ood>=1 n_ablation>=1 ioi_prompts>=1 circuit_method n_boot>=100 seed threads>=1",
    defaults=dict.fromkeys(_PRESET_FIELDS),
    helps={
        "n_contexts": "In-domain held-out contexts used (default: the --config's, 16 or 32).",
        "n_ood": "Out-of-domain contexts, generated statements (default: the --config's, 16 or 32).",
        "n_ablation": "In-domain contexts the head ablations run on (default: the --config's, 4 or 8).",
        "ioi_prompts": "IOI prompts the circuits are found and evaluated on (default: the --config's, 16 or 32).",
        "circuit_method": "How the circuits are found: eap, eap-ig or acdc (default: the --config's).",
    },
)
def rewiring(
    before: BeforeOpt = DEFAULT_MODEL,
    after: AfterOpt = None,
    finetune: FinetuneFlag = False,
    finetune_dir: FinetuneDirOpt = Path("rewiring-finetune"),
    config_name: ConfigOpt = "default",
    *,
    options: Configured[RewiringConfig],
    out: OutOpt = Path("study-rewiring.html"),
    as_json: JsonFlag = False,
) -> None:
    """Is fine-tuning rewiring and re-weighting circuits that already exist, rather than building new ones?"""
    from rich.console import Console

    from circuitscope.finetune import model_folder
    from circuitscope.progress import stages
    from circuitscope.report.rewiring import rewiring_report
    from circuitscope.studies.rewiring import rewiring_study

    with reporting_errors(as_json):
        given = {k: v for k, v in options.values.items() if v is not None}
        preset = check_choice(config_name, RewiringPreset, "--config", error=StudyConfigError)
        config = replace(RewiringConfig.preset(preset), **given)  # checked here, before any model loads
        _check(before, after, finetune, finetune_dir, out)
        model_before = _open(before)
        with stages("study rewiring") as on_progress:
            if finetune:
                config = replace(config, threads=config.threads or _threads(model_before))  # one count for both
                _finetune(model_before, finetune_dir, config.threads, on_progress)
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
