"""``circuitscope steer``: an ActAdd vector swept over layers x coefficients, with steered generations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import torch
import typer

from circuitscope.cli._options import JsonFlag, LayersOpt, ModelOpt, OutOpt, check_choice
from circuitscope.cli._output import reporting_errors
from circuitscope.cli._paths import Writes, check_output_file
from circuitscope.cli._ranges import parse_floats, parse_layers
from circuitscope.core.loading import DEFAULT_MODEL
from circuitscope.errors import OptionError
from circuitscope.progress import OnProgress
from circuitscope.steering.vector import Mode

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel
    from circuitscope.report.html import Report
    from circuitscope.steering.sweep import SteeringSweep, SweepCell
    from circuitscope.steering.vector import SteeringVector

EFFECT_PROMPTS = ["I think that you are", "My feelings about this are", "Honestly, the whole thing makes me feel"]
NEUTRAL_TEXTS = [
    "The train leaves the station at seven in the morning and reaches the coast before noon.",
    "Water boils at one hundred degrees Celsius at sea level, and at a lower temperature on a mountain.",
    "The committee will meet on Tuesday to review the budget for the coming year.",
    "A triangle has three sides, and the sum of its interior angles is one hundred and eighty degrees.",
    "She opened the window, put the kettle on, and sat down to read the morning paper.",
    "The library is closed on public holidays but open late on Thursdays.",
]

TargetsOpt = Annotated[
    str, typer.Option(help="Target words (single tokens, comma-separated); default: the positive word.")
]
EndPosOpt = Annotated[
    int, typer.Option(help="One past the last steered position; 0 = no end (steer every later position).", min=0)
]


@dataclass(frozen=True)
class _Recipe:
    """How the ActAdd vector is made at a layer: the prompt pair, the mode and the steered positions."""

    positive: str
    negative: str
    mode: str
    start_pos: int
    end_pos: int

    def make(self, hooked: HookedModel, layer: int) -> SteeringVector:
        from circuitscope.steering import actadd_vector

        return actadd_vector(
            hooked,
            self.positive,
            self.negative,
            f"blocks.{layer}.hook_resid_pre",
            mode=self.mode,  # type: ignore[arg-type]
            start_pos=self.start_pos,
            end_pos=self.end_pos or None,
        )


@dataclass(frozen=True)
class _Steering:
    """What ``steer`` found: the sweep, its best cell, the layer steered for the samples, the samples."""

    targets: list[str]
    sweep: SteeringSweep
    best: SweepCell | None
    layer: int
    vector: SteeringVector
    generations: list[dict[str, Any]]


@torch.no_grad()  # scoped to the command: no process-wide autograd switch
def steer(
    model: ModelOpt = DEFAULT_MODEL,
    positive: Annotated[str, typer.Option(help="ActAdd positive prompt.")] = "Love",
    negative: Annotated[str, typer.Option(help="ActAdd negative prompt.")] = "Hate",
    layers: LayersOpt = "2-12",
    coeffs: Annotated[str, typer.Option(help="Coefficients to sweep, comma-separated.")] = "1,2,4,8",
    prompt: Annotated[str, typer.Option(help="Prompt to generate from (and one of the effect prompts).")] = (
        "I hate you because"
    ),
    targets: TargetsOpt = "",
    mode: Annotated[str, typer.Option(help="'add' or 'project' (remove the direction).")] = "add",
    start_pos: Annotated[int, typer.Option(help="First steered position (1 skips BOS).", min=0)] = 1,
    end_pos: EndPosOpt = 2,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens to generate per steered sample.", min=1)] = 24,
    max_damage: Annotated[float, typer.Option(help="Damage budget (nats/token) for picking the best cell.")] = 0.5,
    out: OutOpt = Path("steer_report.html"),
    save_vector: Annotated[Path | None, typer.Option(help="Save the best layer's vector (.safetensors).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Sweep an ActAdd steering vector over layers x coefficients: effect on target words, damage on neutral text."""
    from circuitscope.core.loading import load_model

    with reporting_errors(as_json, ValueError):
        check_choice(mode, Mode, "--mode", error=ValueError)
    coeff_list = parse_floats(coeffs)
    recipe = _Recipe(positive, negative, mode, start_pos, end_pos)
    with reporting_errors(as_json):
        _check_outputs(start_pos, end_pos, out, save_vector)
        hooked = load_model(model)
        layer_list = parse_layers(layers, hooked.cfg.n_layers)
        found = _steer(hooked, recipe, layer_list, coeff_list, _targets(hooked, targets, positive), prompt,
                       max_damage, max_new_tokens)  # fmt: skip
    writes = Writes(as_json)
    saved = None
    if save_vector is not None:
        from circuitscope.steering import save_vector as write_vector

        best_vector = found.vector.with_(coefficient=found.best.coefficient if found.best else 1.0)
        saved = writes.attempt("the steering vector", save_vector, lambda: write_vector(best_vector, save_vector))
    report = _report(found, model, recipe, prompt)
    path = writes.attempt("the HTML report", out, lambda: report.write(out))
    if as_json:
        writes.emit_json(_payload(found, model, recipe, path, saved))
        return
    _print(found, prompt, path)
    writes.done()


def _check_outputs(start_pos: int, end_pos: int, out: Path, save_vector: Path | None) -> None:
    """The steered positions and the output paths, checked before the model loads."""
    if end_pos and end_pos <= start_pos:
        raise OptionError(
            f"--end-pos {end_pos} is not after --start-pos {start_pos}: steer positions start_pos..end_pos-1, "
            "so give an --end-pos above --start-pos (or 0 to steer every later position)"
        )
    check_output_file(out, "--out")
    if save_vector is not None:
        check_output_file(save_vector, "--save-vector", "vector.safetensors")


def _targets(hooked: HookedModel, targets: str, positive: str) -> list[str]:
    """The target words (``--targets``, or the positive word with a leading space), each checked to be one token."""
    if targets:
        words = [w for w in targets.split(",") if w.strip()]
    else:
        words = list(dict.fromkeys([" " + positive.strip().lower(), " " + positive.strip()]))
    for w in words:
        hooked.to_single_token(w)  # a clear error if a target is not one token
    return words


def _steer(
    hooked: HookedModel,
    recipe: _Recipe,
    layers: list[int],
    coefficients: list[float],
    targets: list[str],
    prompt: str,
    max_damage: float,
    max_new_tokens: int,
) -> _Steering:
    """The sweep, its best cell under ``max_damage``, and the samples steered at the best layer."""
    from circuitscope.progress import stages
    from circuitscope.steering import steering_sweep, target_logprob

    def make(layer: int) -> SteeringVector:
        return recipe.make(hooked, layer)

    with stages("steer") as on_progress:  # progress on stderr, also under --json
        effect = target_logprob([prompt, *EFFECT_PROMPTS], targets)
        sweep = steering_sweep(hooked, make, layers, coefficients, effect, NEUTRAL_TEXTS, on_progress=on_progress)
        best = sweep.best(max_damage)
        layer = best.layer if best else layers[len(layers) // 2]
        vector = make(layer)
        generations = _generations(hooked, vector, layer, coefficients, prompt, max_new_tokens, on_progress)
    return _Steering(targets, sweep, best, layer, vector, generations)


def _generations(
    hooked: HookedModel,
    vector: SteeringVector,
    layer: int,
    coefficients: list[float],
    prompt: str,
    max_new_tokens: int,
    on_progress: OnProgress,
) -> list[dict[str, Any]]:
    """The unsteered continuation of ``prompt``, then one per coefficient steered at ``layer``."""
    from circuitscope.progress import track
    from circuitscope.steering import steering_hooks

    stage = f"generating {len(coefficients) + 1} x {max_new_tokens} tokens"
    generations: list[dict[str, Any]] = []
    for c in track([None, *coefficients], stage, on_progress):  # None: the unsteered baseline
        if c is None:
            generations.append(
                {"coefficient": 0.0, "layer": None, "text": hooked.generate(prompt, max_new_tokens).text}
            )
            continue
        hooks = steering_hooks(vector.with_(coefficient=c), hooked)
        text = hooked.generate(prompt, max_new_tokens, hooks=hooks).text
        generations.append({"coefficient": c, "layer": layer, "text": text})
    return generations


def _report(found: _Steering, model: str, recipe: _Recipe, prompt: str) -> Report:
    from circuitscope.report.steering import steering_report

    return steering_report(
        found.sweep,
        found.best,
        found.generations,
        model=model,
        positive=recipe.positive,
        negative=recipe.negative,
        mode=recipe.mode,
        start_pos=recipe.start_pos,
        end_pos=recipe.end_pos,
        prompt=prompt,
        layer=found.layer,
        n_effect_prompts=1 + len(EFFECT_PROMPTS),
        n_neutral_texts=len(NEUTRAL_TEXTS),
    )


def _payload(found: _Steering, model: str, recipe: _Recipe, path: str | None, saved: str | None) -> dict[str, Any]:
    return {
        "model": model,
        "positive": recipe.positive,
        "negative": recipe.negative,
        "targets": found.targets,
        "mode": recipe.mode,
        "start_pos": recipe.start_pos,
        "end_pos": recipe.end_pos or None,
        "sweep": found.sweep.to_dict(),
        "best": found.best.to_json() if found.best else None,
        "generations": found.generations,
        "report": path,
        "vector": saved,
    }


def _print(found: _Steering, prompt: str, path: str | None) -> None:
    """The sweep as a layer x coefficient table of effect (damage), then the samples."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    sweep = found.sweep
    table = Table(title=f"Δ {escape(sweep.effect_name)} (damage in nats/token)")
    table.add_column("layer")
    for c in sweep.coefficients:
        table.add_column(f"c={c:g}", justify="right")
    for i, layer in enumerate(sweep.layers):
        table.add_row(
            str(layer),
            *[
                f"{float(sweep.effect_change[i, j]):+.2f} ({float(sweep.damage[i, j]):+.2f})"
                for j in range(len(sweep.coefficients))
            ],
        )
    console.print(table)
    for g in found.generations:
        label = "unsteered" if g["layer"] is None else f"layer {g['layer']}, c={g['coefficient']:g}"
        console.print(f"[bold]{label}[/]: {escape(prompt)}[cyan]{escape(g['text'])}[/]", highlight=False)
    if path is not None:
        console.print(f"report: {path}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("steer")(steer)
