"""Options generated from a config dataclass (cli/_config_options.py), and the commands that use them."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Literal

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from circuitscope.analysis.copying import CopyingConfig
from circuitscope.analysis.heads_analysis import HeadsConfig
from circuitscope.cli._config_options import Configured, config_options, field_docs
from circuitscope.cli._launch import _spellings
from circuitscope.cli._options import JsonFlag
from circuitscope.cli._output import emit_json, reporting_errors
from circuitscope.cli.main import app
from circuitscope.errors import CircuitscopeError
from circuitscope.sae.collect import CollectConfig
from circuitscope.sae.train_config import TrainConfig

runner = CliRunner()


class ShapeError(CircuitscopeError):
    """A bad shape, refused by the config."""


@dataclass(frozen=True)
class Base:
    name: str
    """The thing's name (``required``)."""


@dataclass(frozen=True)
class Shape(Base):
    kind: Literal["square", "circle"] = "square"
    """``square`` or ``circle``: see :class:`~pkg.mod.Kind`."""
    size: int = 3
    """Side or diameter."""
    scale: float | None = None
    """Optional scale."""
    filled: bool = True
    """Fill it."""
    note: str = "hidden"
    """Not on the command line."""

    def __post_init__(self) -> None:
        if self.kind not in ("square", "circle"):
            raise ShapeError(f"kind must be 'square' or 'circle', got {self.kind!r}")


def _shape_app() -> typer.Typer:
    shape_app = typer.Typer()

    @shape_app.command()
    @config_options(
        Shape, "name kind size>=1 scale>=0.5 filled", into="shape", flags={"size": "--side"}, defaults={"size": 4}
    )
    def draw(*, shape: Configured[Shape], note: str = "n", as_json: JsonFlag = False) -> None:
        with reporting_errors(as_json):
            built = shape.build(note=note)
        emit_json({"shape": [getattr(built, f.name) for f in fields(built)]})

    return shape_app


def test_field_docs_reads_the_docstring_under_each_field_of_the_class_and_its_bases() -> None:
    assert field_docs(Shape) == {
        "name": "The thing's name (``required``).",
        "kind": "``square`` or ``circle``: see :class:`~pkg.mod.Kind`.",
        "size": "Side or diameter.",
        "scale": "Optional scale.",
        "filled": "Fill it.",
        "note": "Not on the command line.",
    }
    assert field_docs(CollectConfig)["hook"] == "Hook name, e.g. ``blocks.6.hook_resid_post``."


@pytest.mark.parametrize("config", [CollectConfig, TrainConfig, HeadsConfig, CopyingConfig])
def test_every_field_of_a_config_the_cli_exposes_has_a_docstring(config: type) -> None:
    assert set(field_docs(config)) == {f.name for f in fields(config)}


def test_generated_options_parse_into_the_config() -> None:
    result = runner.invoke(_shape_app(), ["--name", "a", "--kind", "circle", "--side", "7", "--scale", "1.5",
                                          "--no-filled", "--note", "x"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["shape"] == ["a", "circle", 7, 1.5, False, "x"]
    defaults = runner.invoke(_shape_app(), ["--name", "b"])
    assert json.loads(defaults.stdout)["shape"] == ["b", "square", 4, None, True, "n"]  # the command's default size


def test_help_comes_from_the_field_docstrings() -> None:
    result = runner.invoke(_shape_app(), ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "The thing's name (required)." in result.stdout
    assert "square or circle: see Kind." in result.stdout  # Sphinx markup dropped
    assert "--side" in result.stdout and "--filled" in result.stdout and "--no-filled" in result.stdout
    assert "--size" not in result.stdout and "--note" in result.stdout


def test_the_config_is_the_validation_and_bounds_stay_typers() -> None:
    bad = runner.invoke(_shape_app(), ["--name", "a", "--kind", "hexagon", "--json"])
    assert bad.exit_code == 1
    assert json.loads(bad.stdout) == {
        "error": "ShapeError",
        "message": "kind must be 'square' or 'circle', got 'hexagon'",
    }
    assert runner.invoke(_shape_app(), ["--name", "a", "--side", "0"]).exit_code == 2
    assert runner.invoke(_shape_app(), ["--name", "a", "--scale", "0.25"]).exit_code == 2
    assert runner.invoke(_shape_app(), []).exit_code == 2  # --name is required: the field has no default


def test_a_spec_naming_no_field_or_a_taken_parameter_is_refused() -> None:
    def command(*, shape: Configured[Shape], size: int = 1) -> None: ...

    with pytest.raises(TypeError, match="has no field 'colour'"):
        config_options(Shape, "name colour")(command)
    with pytest.raises(TypeError, match="already has a parameter 'size'"):
        config_options(Shape, "name size", into="shape")(command)
    with pytest.raises(TypeError, match="no parameter 'options'"):
        config_options(Shape, "name")(command)


# The option names of the commands whose options are generated, as they were typed out by hand, and of those whose
# --batch-rows became a second spelling of --batch-size: a user's scripts keep working.
BEFORE = {
    "report task": "--batch-rows --batch-size --json --model --n-prompts --out --pairs --seed --task",
    "trace": "--batch-rows --batch-size --candidates --corruption --fact --facts --heads --heads-at --json --kind "
    "--list-facts --model --neurons --noise-scale --out --pair --prompt --samples --seed --subject --target --task "
    "--window",
    "heads": "--ablation --batch --composition --examples --html --json --k --model --n-tokens --no-composition "
    "--seed --seq-len --text --text-tokens --text-window --top",
    "sae collect": "--batch-size --context-size --corpus --dtype --hook --include-bos --json --model --out --out-dir "
    "--seed --text-field --tokens --tokens-per-shard",
    "sae train": "--acts --arch --batch-size --checkpoint-every --d-sae --expansion --json --k --lr --no-resume --out "
    "--out-dir --seed --sparsity --tokens",
}


@pytest.mark.parametrize("path", list(BEFORE))
def test_generated_commands_keep_their_option_names(path: str) -> None:
    command = typer.main.get_command(app)
    for name in path.split():
        command = command.commands[name]  # type: ignore[attr-defined]
    names = {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}
    assert names == set(BEFORE[path].split())


def test_the_older_spelling_is_the_same_option() -> None:
    result = runner.invoke(app, ["report", "task", "--task", "ioi", "--batch-rows", "0", "--json"])
    assert result.exit_code == 2 and "'--batch-size' / '--batch-rows'" in json.loads(result.stdout)["message"]


def test_under_torchrun_a_generated_option_is_named_by_its_spelling() -> None:
    from circuitscope.cli.sae import train

    spelled = _spellings(train)
    assert spelled["architecture"] == "--arch" and spelled["sparsity_coefficient"] == "--sparsity"
    assert spelled["checkpoint_every"] == "--checkpoint-every" and spelled["acts"] == "--acts"
