"""The rewiring study: a zero-step fine-tune changes nothing, every comparison on a tiny pair equals the
same quantity computed by hand, toy checkpoints run without text, and the commands write a report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import circuitscope as cs
from circuitscope.circuits import faithfulness
from circuitscope.cli.main import app
from circuitscope.diffing import component_of
from circuitscope.finetune import FinetuneConfig, finetune, finetune_data
from circuitscope.progress import SILENT
from circuitscope.studies.errors import StudyConfigError
from circuitscope.studies.rewiring import RewiringConfig, RewiringResult, rewiring_study
from circuitscope.tasks import Task
from circuitscope.tasks.ioi import IOIConfig, ioi_task
from circuitscope.toy.checkpoint_model import load_toy_checkpoint
from circuitscope.toy.induction import repeated_segment_batch
from circuitscope.toy.model import build_toy
from circuitscope.toy.trainer import TrainConfig, seeded_batches, train
from tests.browser import open_in_chromium
from tests.circuits.ioi_fixtures import ioi_model

STUDY = RewiringConfig(
    n_contexts=8, n_ood=4, n_ablation=4, ioi_prompts=6, circuit_method="eap", top_k=3, batch_size=8, n_boot=100
)


def _tuned(steps: int) -> tuple[cs.HookedModel, cs.HookedModel, torch.Tensor]:
    """The tiny IOI model, its LoRA fine-tune of ``steps`` steps on IOI prompts, and the held-out contexts."""
    before = ioi_model()
    config = FinetuneConfig(
        steps=steps, lr=5e-2, batch_size=4, context_size=16, n_contexts=16, n_heldout=8, lora_rank=4, warmup_steps=0
    )
    data = finetune_data(before, ioi_task(before, IOIConfig(n_prompts=48, seed=3)), config)
    return before, finetune(before, data, config, on_progress=SILENT).model, data.heldout


@pytest.fixture(scope="module")
def pair() -> tuple[cs.HookedModel, cs.HookedModel, torch.Tensor, RewiringResult]:
    before, after, heldout = _tuned(3)
    return before, after, heldout, rewiring_study(before, after, heldout, STUDY, on_progress=SILENT)


@pytest.mark.slow  # a fine-tune, then every comparison of the study (two circuit searches) on the tiny model
def test_a_zero_step_finetune_leaves_every_comparison_at_zero_change() -> None:
    before, after, heldout = _tuned(0)
    result = rewiring_study(before, after, heldout, STUDY, on_progress=SILENT)
    for change in (result.in_domain, result.out_of_domain):
        assert change is not None and (change.change.mean, change.change.low, change.change.high) == (0, 0, 0)
        assert change.improved == [] and change.worsened == []
    assert result.weights.total_relative == 0 and set(result.weights.diff_norm) == {0.0}
    assert torch.equal(result.heads.change, torch.zeros_like(result.heads.change))
    assert result.heads.correlation == pytest.approx(1.0)
    assert result.attention is not None and float(result.attention.distance.abs().max()) == 0
    assert result.cka is not None and torch.allclose(result.cka.cka, torch.ones_like(result.cka.cka), atol=1e-5)
    circuit = result.circuit
    assert circuit is not None and circuit.jaccard == 1 and circuit.retained == 1
    assert circuit.faithfulness_change.mean == 0 and circuit.logit_diff_change.mean == 0
    assert result.circuit_verdict() == "unchanged" and "identical weights" in result.answer()


def _loss_per_context(model: cs.HookedModel, tokens: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of each context, one plain forward pass per context."""
    with torch.no_grad():
        return torch.stack([
            torch.nn.functional.cross_entropy(model(row[None])[0, :-1].float(), row[1:]) for row in tokens
        ])  # fmt: skip


def _logit_diff(model: cs.HookedModel, task: Task) -> torch.Tensor:
    with torch.no_grad():
        logits = model(task.clean_tokens)[torch.arange(len(task)), task.answer_pos]
    rows = torch.arange(len(task))
    return logits[rows, task.correct] - logits[rows, task.incorrect]


@pytest.mark.slow  # the module's study run: a fine-tune and two circuit searches
def test_every_comparison_on_a_tiny_pair_equals_the_hand_computation(pair) -> None:
    before, after, heldout, result = pair
    tokens = heldout[: STUDY.n_contexts]
    loss_b, loss_a = _loss_per_context(before, tokens), _loss_per_context(after, tokens)
    assert result.in_domain.before.mean == pytest.approx(float(loss_b.mean()), abs=1e-5)
    assert result.in_domain.change.mean == pytest.approx(float((loss_a - loss_b).mean()), abs=1e-5)
    assert result.in_domain.change.low <= result.in_domain.change.mean <= result.in_domain.change.high
    # the weight change of each component: the Frobenius norm of the difference of its parameters
    pa, pb = before.hf_model.state_dict(), after.hf_model.state_dict()
    for component, diff in zip(result.weights.components, result.weights.diff_norm, strict=True):
        by_hand = math.sqrt(
            sum(float((pb[n] - pa[n]).double().pow(2).sum()) for n in pa if component_of(n) == component)
        )
        assert diff == pytest.approx(by_hand, rel=1e-6)
    assert result.weights.diff_norm[result.weights.components.index("embed")] == 0  # LoRA leaves embeddings alone
    # one head mean-ablated by hand: its hook_z replaced by its mean over the batch and positions
    layer, head = 2, 1
    ablate = tokens[: STUDY.n_ablation]
    _, cache = before.run_with_cache(ablate, names=[f"blocks.{layer}.attn.hook_z"])
    mean_z = cache[f"blocks.{layer}.attn.hook_z"][..., head, :].mean((0, 1))

    def hook(z: torch.Tensor, hook: object) -> torch.Tensor:
        z = z.clone()
        z[..., head, :] = mean_z
        return z

    with torch.no_grad():
        ablated, clean = before.run_with_hooks(ablate, [(f"blocks.{layer}.attn.hook_z", hook)]), before(ablate)
    rise = float(torch.nn.functional.cross_entropy(ablated[:, :-1].flatten(0, 1), ablate[:, 1:].flatten()))
    rise -= float(torch.nn.functional.cross_entropy(clean[:, :-1].flatten(0, 1), ablate[:, 1:].flatten()))
    assert float(result.heads.before.loss_increase[layer, head]) == pytest.approx(rise, abs=1e-5)
    # the circuits: Jaccard of the edge sets, faithfulness as circuits.faithfulness reports it, the logit difference
    circuit = result.circuit
    assert circuit is not None and circuit.after.n_edges == circuit.before.n_edges
    old = {tuple(e) for e in circuit.before.edges.nonzero().tolist()}
    new = {tuple(e) for e in circuit.after.edges.nonzero().tolist()}
    assert circuit.jaccard == pytest.approx(len(old & new) / len(old | new))
    task = ioi_task(before, IOIConfig(n_prompts=STUDY.ioi_prompts, seed=STUDY.seed))
    on_before = faithfulness(before, task, circuit.before.edges, ablation="corrupted")
    on_after = faithfulness(after, task, circuit.before.edges, ablation="corrupted")
    assert circuit.faithfulness_before.mean == pytest.approx(on_before.normalized, abs=1e-5)
    assert circuit.faithfulness_after.mean == pytest.approx(on_after.normalized, abs=1e-5)
    assert circuit.retained == pytest.approx(on_after.normalized / on_before.normalized, rel=1e-4)
    change = _logit_diff(after, task) - _logit_diff(before, task)
    assert circuit.logit_diff_change.mean == pytest.approx(float(change.mean()), abs=1e-4)
    assert result.circuit_verdict() in ("re-weighted", "re-routed", "new")
    assert f"{circuit.jaccard:.2f}" in result.answer() and result.in_domain.change.text() in result.answer()
    json.dumps(result.to_json())


def test_two_toy_checkpoints_are_compared_on_token_contexts_without_text(tmp_path: Path) -> None:
    model = build_toy(seed=0, d_vocab=16, n_ctx=16, d_model=16, n_layers=2, n_heads=2)

    def make(g: torch.Generator) -> tuple[torch.Tensor, ...]:
        return (repeated_segment_batch(g, 8, 16, 16),)

    def loss(m: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return m(batch[0], labels=batch[0]).loss

    train(model, loss, seeded_batches(make, 0), TrainConfig(steps=6, checkpoint_every=3, lr=1e-2), out=tmp_path)
    early = load_toy_checkpoint(tmp_path / "checkpoints" / "step_0000003")
    late = load_toy_checkpoint(tmp_path / "checkpoints" / "step_0000006")
    tokens = repeated_segment_batch(torch.Generator().manual_seed(1), 8, 16, 16)
    alone = rewiring_study(early, late, tokens, STUDY, on_progress=SILENT)
    assert alone.out_of_domain is None and any("out-of-domain" in note for note in alone.notes)
    ood = torch.randint(0, 16, (4, 16), generator=torch.Generator().manual_seed(2))
    result = rewiring_study(early, late, tokens, STUDY, out_of_domain=ood, on_progress=SILENT)
    assert result.circuit is None and result.attention is None and result.cka is None
    assert any("tokenizer" in note for note in result.notes) and result.circuit_verdict() == "not measured"
    with torch.no_grad():
        by_hand = torch.stack([late.hf_model(row[None], labels=row[None]).loss for row in tokens]).mean()
    assert result.in_domain.after.mean == pytest.approx(float(by_hand), abs=1e-5)
    assert "not compared" in result.answer()


@pytest.mark.slow  # two commands and a browser launch
def test_the_commands_finetune_then_write_the_rewiring_report(tmp_path: Path) -> None:
    before = ioi_model()
    folder = tmp_path / "ioi"
    before.hf_model.save_pretrained(folder)
    before.tokenizer.save_pretrained(folder)
    tuned = tmp_path / "tuned"
    args = ["--task", "ioi", "--steps", "2", "--context-size", "16", "--n-contexts", "16", "--n-heldout", "8"]
    result = CliRunner().invoke(app, ["finetune", "--model", str(folder), *args, "--out-dir", str(tuned), "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["loss"]) == 2 and (tuned / "model" / "finetune.json").is_file()
    out = tmp_path / "rewiring.html"
    study = ["--ioi-prompts", "6", "--n-ood", "4", "--n-contexts", "8", "--circuit-method", "eap", "--n-boot", "100"]
    result = CliRunner().invoke(
        app, ["study", "rewiring", "--before", str(folder), "--after", str(tuned), *study, "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["study"] == "rewiring" and payload["report"] == str(out) and payload["circuit"] is not None
    page = open_in_chromium(out)
    assert page.console_errors == [] and "plotly-graph-div" in page.dom and payload["answer"][:40] in page.dom


def test_bad_settings_are_refused_before_any_model_loads() -> None:
    with pytest.raises(StudyConfigError, match="n_boot"):
        RewiringConfig(n_boot=10)
    with pytest.raises(StudyConfigError, match="threads"):
        RewiringConfig(threads=0)
    result = CliRunner().invoke(app, ["study", "rewiring", "--before", "gpt2", "--json"])
    assert result.exit_code == 1 and "--finetune" in json.loads(result.stdout)["message"]
    result = CliRunner().invoke(app, ["study", "rewiring", "--config", "huge", "--finetune", "--json"])
    assert result.exit_code == 1 and "--config must be 'default' or 'thorough'" in json.loads(result.stdout)["message"]


def test_the_thorough_config_is_the_larger_setting_and_the_default_the_field_defaults() -> None:
    assert RewiringConfig.preset("default") == RewiringConfig()
    thorough = RewiringConfig.preset("thorough")
    assert (thorough.n_contexts, thorough.n_ood, thorough.n_ablation, thorough.ioi_prompts) == (32, 32, 8, 32)
    assert thorough.circuit_method == "eap-ig" and RewiringConfig().circuit_method == "eap"
    for name in ("n_contexts", "n_ood", "n_ablation", "ioi_prompts"):
        assert getattr(thorough, name) >= 2 * getattr(RewiringConfig(), name)
    with pytest.raises(StudyConfigError, match="unknown rewiring config"):
        RewiringConfig.preset("huge")


def test_the_study_runs_under_the_configs_thread_count_and_restores_it() -> None:
    before, after, heldout = _tuned(1)
    previous = torch.get_num_threads()
    config = RewiringConfig(n_contexts=2, n_ood=2, n_ablation=1, ioi_prompts=4, circuit_method="eap", threads=1)
    result = rewiring_study(before, after, heldout, config, on_progress=SILENT)
    assert result.threads == 1 and result.to_json()["threads"] == 1 and torch.get_num_threads() == previous
