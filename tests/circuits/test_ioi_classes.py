"""The IOI head classes: a planted circuit found head by head, and every step equal to its own path-patching call."""

from __future__ import annotations

import json

import pytest
import torch

from circuitscope import HookedModel
from circuitscope.analysis._path_patching import path_patching
from circuitscope.circuits.ioi import run
from circuitscope.circuits.ioi.classify import find_head_classes
from circuitscope.circuits.ioi.positions import ioi_positions
from circuitscope.circuits.ioi.reference import gpt2_small
from circuitscope.circuits.ioi.result import HEAD_CLASSES, HeadClasses, IOICircuitResult, ThresholdRule
from circuitscope.circuits.ioi.run import IOICircuitConfig, ioi_circuit
from circuitscope.progress import SILENT
from circuitscope.tasks.ioi import IOIConfig, ioi_task
from circuitscope.tasks.task import TaskError
from tests.circuits.ioi_fixtures import ioi_model
from tests.hand_ioi import IOI_ROLES, ioi_like_task, planted_ioi_model
from tests.tiny_models import BY_NAME, VOCAB


def _planted() -> HeadClasses:
    model = planted_ioi_model()
    task = ioi_like_task(model.cfg.d_vocab, n=8, seed=1)
    return find_head_classes(model, task, rule=ThresholdRule(k_std=1.0), on_progress=SILENT)


def test_positions_of_hand_checked_prompts() -> None:
    model = planted_ioi_model()
    task = ioi_like_task(model.cfg.d_vocab, n=4, seed=0, templates=2)
    positions = ioi_positions(model, task)
    for role, at in IOI_ROLES.items():
        expected = [at + (role == "END" and i % 2 == 1) for i in range(4)]  # odd prompts: one more filler
        assert positions.of(role).tolist() == expected, role
    row = task.clean_tokens[1]
    assert int(row[positions.io[1]]) == int(task.correct[1]) and int(row[positions.s2[1]]) == int(task.incorrect[1])
    assert positions.to_json()["S1+1"] == [4, 4, 4, 4]


def test_a_prompt_without_the_repeated_subject_is_refused() -> None:
    model = planted_ioi_model()
    task = ioi_like_task(model.cfg.d_vocab, n=3, seed=0)
    task.clean_tokens[2, 6] = 6  # S2 replaced by a filler: the subject appears once
    with pytest.raises(TaskError, match=r"prompt 2 .* not an IOI prompt.*S at \[3\]"):
        ioi_positions(model, task)


def test_the_planted_circuit_is_found_class_by_class() -> None:
    classes = _planted()
    assert list(classes.classes) == list(HEAD_CLASSES)
    assert classes.heads("name_mover") == [(1, 0)]
    assert classes.heads("negative_name_mover") == [(1, 1)]
    assert classes.heads("s_inhibition") == [(0, 0)]
    # hand-computed: clean logit difference 10 - 5 = 5, ABC 0; the name mover's path alone corrupted leaves
    # the negative mover's -5: (-5 - 5) / (0 - 5) = 2; the negative mover's alone leaves 10: -1
    mover, negative = classes.classes["name_mover"].members[0], classes.classes["negative_name_mover"].members[0]
    assert mover.score == pytest.approx(2.0, abs=1e-5) and negative.score == pytest.approx(-1.0, abs=1e-5)
    # without S (from the S-inhibition head) in its query, the mover splits between IO and S1: also -5, so 2
    assert classes.classes["s_inhibition"].members[0].score == pytest.approx(2.0, abs=1e-5)
    assert mover.attention["END->IO"] == pytest.approx(1.0, abs=1e-6) and mover.attention["END->S2"] < 1e-6
    assert mover.copy_score == 1.0 and negative.copy_score == 1.0  # OV copies / suppresses every name
    assert classes.classes["s_inhibition"].members[0].attention["END->S2"] == pytest.approx(1.0, abs=1e-6)
    # the S-inhibition head sits in layer 0: no sender can reach its keys or values, every score is 0
    for name in ("induction", "duplicate_token"):
        finding = classes.classes[name]
        assert finding.members == [] and bool((finding.scores.scores == 0).all()) and "no head passed" in finding.note
    assert classes.classes["previous_token"].note == "no induction heads found"
    assert torch.isnan(classes.classes["previous_token"].scores.scores).all()
    # knocked out, the name mover's direct effect (5 - (-5) = 10) is gone; no other head's changes
    growth = classes.classes["backup_name_mover"].scores.scores.clone()
    assert float(growth[1, 0]) == pytest.approx(-10.0, abs=1e-4)
    growth[1, 0] = 0
    assert float(growth.abs().max()) < 1e-4 and classes.classes["backup_name_mover"].members == []
    assert classes.all_heads == [(0, 0), (1, 0), (1, 1)] and classes.class_of(1, 1) == "negative_name_mover"
    json.dumps(classes.to_json())


def test_no_name_movers_means_no_classes_below_them() -> None:
    model = planted_ioi_model()
    task = ioi_like_task(model.cfg.d_vocab, n=4, seed=1)
    # one head past 10 standard deviations is impossible among 8 scores (at most sqrt(7) ~ 2.6)
    classes = find_head_classes(model, task, rule=ThresholdRule(k_std=10.0), on_progress=SILENT)
    assert classes.all_heads == []
    assert classes.classes["s_inhibition"].note == "no name movers found"
    assert classes.classes["induction"].note == classes.classes["duplicate_token"].note == "no S-inhibition heads found"
    assert classes.classes["backup_name_mover"].note == "no name movers found"


@pytest.mark.parametrize("family", ["gpt2", "llama_gqa"])
def test_every_step_is_its_own_path_patching_call_and_honours_the_rule(family: str) -> None:
    model = HookedModel(BY_NAME[family].build())
    task = ioi_like_task(VOCAB, n=6, seed=2, templates=2)
    rule = ThresholdRule(k_std=0.5, max_heads=2)
    classes = find_head_classes(model, task, rule=rule, batch_size=24, on_progress=SILENT)
    positions = ioi_positions(model, task)
    found = classes.classes
    steps = {  # class -> (receivers, inputs, positions), as the paper's steps define them
        "name_mover": ("logits", ("q",), None),
        "s_inhibition": (found["name_mover"].heads, ("q",), positions.end),
        "induction": (found["s_inhibition"].heads, ("k", "v"), positions.s2),
        "previous_token": (found["induction"].heads, ("k",), positions.s1_plus_1),
    }
    searched = 0
    for name, (receivers, inputs, at) in steps.items():
        if not receivers:
            assert torch.isnan(found[name].scores.scores).all() and found[name].note.startswith("no ")  # type: ignore[index]
            continue
        searched += 1
        direct = path_patching(model, task, receivers, inputs=inputs, metric="logit_diff", positions=at)  # type: ignore[arg-type]
        torch.testing.assert_close(found[name].scores.scores, direct.scores, atol=1e-5, rtol=1e-4)  # type: ignore[index]
    assert searched >= 2  # the chain goes at least one step below the name movers
    earlier: set[tuple[int, int]] = set()
    for name in HEAD_CLASSES:
        finding = found[name]
        if torch.isnan(finding.scores.scores).all():
            continue
        assert len(finding.members) <= rule.max_heads
        assert finding.cut == pytest.approx(rule.cut(finding.scores.scores, finding.direction))
        sign = 1 if finding.direction == "positive" else -1
        for member in finding.members:
            assert sign * (member.score - finding.cut) > 0 and (member.layer, member.head) not in earlier
            assert member.score == pytest.approx(float(finding.scores.scores[member.layer, member.head]))
            assert set(member.detectors) == {"previous_token", "duplicate_token", "induction"}
        if name in ("name_mover", "negative_name_mover", "s_inhibition", "previous_token"):
            # the strongest heads past the cut, none of an earlier class
            assert finding.heads == rule.select(finding.scores.scores, finding.direction, frozenset(earlier))
        earlier |= set(finding.heads)
    split = found["induction"].heads + found["duplicate_token"].heads
    assert len(set(split)) == len(split)  # the induction/duplicate split gives each head one class
    assert model.active_hooks() == []


def _run(monkeypatch: pytest.MonkeyPatch, min_accuracy: float) -> IOICircuitResult:
    monkeypatch.setattr(run, "MIN_ACCURACY", min_accuracy)
    config = IOICircuitConfig(n_prompts=6, rule=ThresholdRule(k_std=1.0, max_heads=2), n_reference=1, n_random=2)
    return ioi_circuit(ioi_model(), config, model_name="tiny-ioi", on_progress=SILENT)


def test_ioi_circuit_near_chance_searches_the_classes_but_builds_no_circuit(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(monkeypatch, 1.01)  # no accuracy reaches 101%: the model "does not do IOI"
    assert result.evaluation is None and result.circuit is None
    assert len(result.warnings) == 1 and "built on noise" in result.warnings[0]
    assert list(result.classes.classes) == list(HEAD_CLASSES) and result.classes.heads("name_mover")
    model = ioi_model()
    task = ioi_task(model, IOIConfig(n_prompts=6, seed=0))
    rows = torch.arange(len(task))
    with torch.no_grad():
        logits = model(task.clean_tokens)[rows, task.answer_pos]
    diffs = logits[rows, task.correct] - logits[rows, task.incorrect]
    assert result.clean_logit_diff == pytest.approx(float(diffs.mean()), abs=1e-5)
    assert result.clean_accuracy == float((diffs > 0).float().mean())
    assert (result.model_name, result.n_layers, result.n_heads, result.n_prompts) == ("tiny-ioi", 4, 4, 6)
    json.dumps(result.to_json())


def test_ioi_circuit_evaluates_the_circuit_it_found(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(monkeypatch, 0.0)
    assert result.warnings == [] and result.evaluation is not None and result.circuit is not None
    # F(M), measured by the evaluation through its own ablation runs with nothing ablated, is the clean logit diff
    assert result.evaluation.f_model == pytest.approx(result.clean_logit_diff, abs=1e-4)
    assert result.reference.model == gpt2_small().model and result.seconds > 0
    json.dumps(result.to_json())


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="n_prompts must be between 2"):
        IOICircuitConfig(n_prompts=1)
    with pytest.raises(ValueError, match="n_reference"):
        IOICircuitConfig(n_reference=0)
    with pytest.raises(ValueError, match="n_random"):
        IOICircuitConfig(n_random=-1)
    with pytest.raises(ValueError, match="batch_size"):
        IOICircuitConfig(batch_size=0)
    with pytest.raises(ValueError, match="ThresholdRule"):
        IOICircuitConfig(rule=2.0)  # type: ignore[arg-type]
