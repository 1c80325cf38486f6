"""``circuitscope steer``: an ActAdd vector swept over layers x coefficients, with steered generations."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import torch
import typer

from circuitscope.cli._paths import Writes, check_output_file
from circuitscope.cli._ranges import parse_floats, parse_layers
from circuitscope.cli.output import fail
from circuitscope.core.loading import DEFAULT_MODEL
from circuitscope.errors import CircuitscopeError, OptionError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel
    from circuitscope.steering.vector import SteeringVector

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout.")]

EFFECT_PROMPTS = ["I think that you are", "My feelings about this are", "Honestly, the whole thing makes me feel"]
NEUTRAL_TEXTS = [
    "The train leaves the station at seven in the morning and reaches the coast before noon.",
    "Water boils at one hundred degrees Celsius at sea level, and at a lower temperature on a mountain.",
    "The committee will meet on Tuesday to review the budget for the coming year.",
    "A triangle has three sides, and the sum of its interior angles is one hundred and eighty degrees.",
    "She opened the window, put the kettle on, and sat down to read the morning paper.",
    "The library is closed on public holidays but open late on Thursdays.",
]


@torch.no_grad()  # scoped to the command: no process-wide autograd switch
def steer(
    model: Annotated[str, typer.Option("--model", help="Hub id, model folder, .gguf, or the embedded default.")] = (
        DEFAULT_MODEL
    ),
    positive: Annotated[str, typer.Option(help="ActAdd positive prompt.")] = "Love",
    negative: Annotated[str, typer.Option(help="ActAdd negative prompt.")] = "Hate",
    layers: Annotated[str, typer.Option(help="Layers to sweep: '2-12', '0,4,8' or 'all'.")] = "2-12",
    coeffs: Annotated[str, typer.Option(help="Coefficients to sweep, comma-separated.")] = "1,2,4,8",
    prompt: Annotated[str, typer.Option(help="Prompt to generate from (and one of the effect prompts).")] = (
        "I hate you because"
    ),
    targets: Annotated[
        str, typer.Option(help="Target words (single tokens, comma-separated); default: the positive word.")
    ] = "",
    mode: Annotated[str, typer.Option(help="'add' or 'project' (remove the direction).")] = "add",
    start_pos: Annotated[int, typer.Option(help="First steered position (1 skips BOS).", min=0)] = 1,
    end_pos: Annotated[
        int, typer.Option(help="One past the last steered position; 0 = no end (steer every later position).", min=0)
    ] = 2,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens to generate per steered sample.", min=1)] = 24,
    max_damage: Annotated[float, typer.Option(help="Damage budget (nats/token) for picking the best cell.")] = 0.5,
    out: Annotated[Path, typer.Option(help="Where to write the HTML report.")] = Path("steer_report.html"),
    save_vector: Annotated[Path | None, typer.Option(help="Save the best layer's vector (.safetensors).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Sweep an ActAdd steering vector over layers x coefficients: effect on target words, damage on neutral text."""

    from circuitscope.core.loading import load_model
    from circuitscope.progress import stages
    from circuitscope.steering import (
        actadd_vector,
        plot_sweep,
        steering_sweep,
        target_logprob,
    )
    from circuitscope.steering import (
        save_vector as write_vector,
    )

    if mode not in ("add", "project"):
        raise fail(ValueError(f"--mode must be 'add' or 'project', got {mode!r}"), as_json)
    coeff_list = parse_floats(coeffs)
    try:
        if end_pos and end_pos <= start_pos:
            raise OptionError(
                f"--end-pos {end_pos} is not after --start-pos {start_pos}: steer positions start_pos..end_pos-1, "
                "so give an --end-pos above --start-pos (or 0 to steer every later position)"
            )
        check_output_file(out, "--out")
        if save_vector is not None:
            check_output_file(save_vector, "--save-vector", "vector.safetensors")
        hooked = load_model(model)
        layer_list = parse_layers(layers, hooked.cfg.n_layers)
        if targets:
            target_words = [w for w in targets.split(",") if w.strip()]
        else:
            target_words = list(dict.fromkeys([" " + positive.strip().lower(), " " + positive.strip()]))
        for w in target_words:
            hooked.to_single_token(w)  # a clear error if a target is not one token

        def make(layer: int):
            return actadd_vector(
                hooked,
                positive,
                negative,
                f"blocks.{layer}.hook_resid_pre",
                mode=mode,
                start_pos=start_pos,
                end_pos=end_pos or None,
            )

        with stages("steer") as on_progress:  # progress on stderr, also under --json
            effect = target_logprob([prompt, *EFFECT_PROMPTS], target_words)
            sweep = steering_sweep(hooked, make, layer_list, coeff_list, effect, NEUTRAL_TEXTS, on_progress=on_progress)
            best = sweep.best(max_damage)
            best_layer = best["layer"] if best else layer_list[len(layer_list) // 2]
            vector = make(best_layer)
            generations = _generations(hooked, vector, best_layer, coeff_list, prompt, max_new_tokens, on_progress)
    except CircuitscopeError as err:
        raise fail(err, as_json) from err
    writes = Writes(as_json)
    saved = None
    if save_vector is not None:
        best_vector = vector.with_(coefficient=best["coefficient"] if best else 1.0)
        saved = writes.attempt("the steering vector", save_vector, lambda: write_vector(best_vector, save_vector))

    from circuitscope.report.html import Report

    report = Report(
        f"Steering: '{positive}' - '{negative}'",
        f"{model} · ActAdd at blocks.L.hook_resid_pre · mode {mode} · positions {start_pos}..{end_pos or 'end'}",
    )
    report.add_kpis(
        "Best cell under the damage budget",
        {
            "layer": str(best["layer"]) if best else "none",
            "coefficient": f"{best['coefficient']:g}" if best else "-",
            f"Δ {sweep.effect_name}": f"{best['effect_change']:+.3f}" if best else "-",
            "damage (nats/token)": f"{best['damage']:+.3f}" if best else "-",
            "baseline loss": f"{sweep.baseline_loss:.3f}",
        },
    )
    report.add_figure(
        "Sweep: effect and damage",
        plot_sweep(sweep),
        f"Effect: change in {sweep.effect_name} over {1 + len(EFFECT_PROMPTS)} prompts. Damage: change in mean "
        f"next-token loss on {len(NEUTRAL_TEXTS)} neutral sentences.",
    )
    report.add_table(
        f"Generations from {prompt!r} (greedy), steered at layer {best_layer}",
        ["coefficient", "continuation"],
        [[g["coefficient"], g["text"]] for g in generations],
    )
    rows = [
        [layer, c, float(sweep.effect_change[i, j]), float(sweep.damage[i, j])]
        for i, layer in enumerate(sweep.layers)
        for j, c in enumerate(sweep.coefficients)
    ]
    report.add_table("All cells", ["layer", "coefficient", "Δ effect", "damage"], rows)
    path = writes.attempt("the HTML report", out, lambda: report.write(out))
    payload = {
        "model": model,
        "positive": positive,
        "negative": negative,
        "targets": target_words,
        "mode": mode,
        "start_pos": start_pos,
        "end_pos": end_pos or None,
        "sweep": sweep.to_dict(),
        "best": best,
        "generations": generations,
        "report": path,
        "vector": saved,
    }
    if as_json:
        writes.emit_json(payload)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    table = Table(title=f"Δ {escape(sweep.effect_name)} (damage in nats/token)")
    table.add_column("layer")
    for c in sweep.coefficients:
        table.add_column(f"c={c:g}", justify="right")
    for i, layer in enumerate(sweep.layers):
        table.add_row(
            str(layer),
            *[
                f"{float(sweep.effect_change[i, j]):+.2f} ({float(sweep.damage[i, j]):+.2f})"
                for j in range(len(coeff_list))
            ],
        )
    console.print(table)
    for g in generations:
        label = "unsteered" if g["layer"] is None else f"layer {g['layer']}, c={g['coefficient']:g}"
        console.print(f"[bold]{label}[/]: {escape(prompt)}[cyan]{escape(g['text'])}[/]", highlight=False)
    if path is not None:
        console.print(f"report: {path}", markup=False)
    writes.done()


def _generations(
    hooked: HookedModel,
    vector: SteeringVector,
    layer: int,
    coefficients: list[float],
    prompt: str,
    max_new_tokens: int,
    on_progress: Callable[[str, int, int], None],
) -> list[dict[str, Any]]:
    """The unsteered continuation of ``prompt``, then one per coefficient steered at ``layer``."""
    from circuitscope.steering import steering_hooks

    stage = f"generating {len(coefficients) + 1} x {max_new_tokens} tokens"
    on_progress(stage, 0, len(coefficients) + 1)
    generations: list[dict[str, Any]] = [
        {"coefficient": 0.0, "layer": None, "text": hooked.generate(prompt, max_new_tokens).text}
    ]
    for c in coefficients:
        on_progress(stage, len(generations), len(coefficients) + 1)
        hooks = steering_hooks(vector.with_(coefficient=c), hooked)
        text = hooked.generate(prompt, max_new_tokens, hooks=hooks).text
        generations.append({"coefficient": c, "layer": layer, "text": text})
    on_progress(stage, len(generations), len(coefficients) + 1)
    return generations


def register(app: typer.Typer) -> None:
    app.command("steer")(steer)
