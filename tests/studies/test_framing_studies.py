"""The framing studies: their numbers equal a hand computation from the model's own log-probabilities, the
differences are paired, the intervals are percentile bootstraps, and bad configurations are refused first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import circuitscope as cs
from circuitscope.cli.main import app
from circuitscope.evals import EvalItem, evaluate_prompt_variants
from circuitscope.studies import (
    Action,
    AgreementFramingConfig,
    Estimate,
    StudyConfigError,
    TruthFramingConfig,
    agreement_framing_study,
    difference,
    estimate,
    study_statements,
    truth_framing_study,
)
from tests.browser import open_in_chromium
from tests.tiny_models import TinyModels


def _p_first(model: cs.HookedModel, prompt: str, options: list[str]) -> float:
    """p(options[0]) renormalised over the options, from one plain forward pass per option (the reference)."""
    scores = []
    for option in options:
        prefix = model.tok.encode(prompt)
        ids = prefix + model.tok.encode(" " + option, prepend_bos=False)
        with torch.no_grad():
            logp = model(torch.tensor([ids])).float().log_softmax(-1)[0]
        scores.append(sum(float(logp[p, ids[p + 1]]) for p in range(len(prefix) - 1, len(ids) - 1)))
    return float(torch.tensor(scores).softmax(0)[0])


def test_statements_are_balanced_distinct_and_seeded() -> None:
    statements = study_statements(4, seed=1)
    topics = {s.topic for s in statements}
    assert topics == {"capitals", "arithmetic", "comparison", "counts", "months"}
    for topic in topics:
        of_topic = [s for s in statements if s.topic == topic]
        assert len(of_topic) == 4 and sum(s.true for s in of_topic) == 2
    assert len({s.text for s in statements}) == len(statements)
    assert [s.text for s in study_statements(4, seed=1)] == [s.text for s in statements]
    assert "A week has 7 days." in {s.text for s in study_statements(24)}


def test_estimates_are_percentile_bootstraps_of_the_mean() -> None:
    values = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    e = estimate(values, 500, 0)
    g = torch.Generator().manual_seed(0)
    means = values[torch.randint(0, 8, (500, 8), generator=g)].mean(1)  # the same resamples, by hand
    assert (e.mean, e.low, e.high, e.n) == (0.625, float(means.quantile(0.025)), float(means.quantile(0.975)), 8)
    assert Estimate(-0.2, -0.3, -0.1, 5).direction == "lower"
    assert Estimate(0.2, 0.1, 0.3, 5).direction == "higher"
    assert Estimate(0.0, -0.1, 0.1, 5).direction == "no detectable difference"
    d = difference(torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0.0, 0.0]), 200, 0)
    assert (d.mean, d.low, d.high, d.n) == (1.0, 1.0, 1.0, 5)  # no spread inside either group: no spread at all


def test_truth_framing_equals_the_evaluation_and_a_hand_computation(tiny: TinyModels) -> None:
    model = tiny.text()
    short = "{persona}: {statement} Answer:"  # the tiny model's context is 128 characters
    config = TruthFramingConfig(personas=("truthful", "funny"), template=short, n_per_topic=2, n_boot=200)
    result = truth_framing_study(model, config)
    assert [s.persona for s in result.scores] == ["truthful", "funny"]
    items = [EvalItem(s.text, ["True", "False"], "True" if s.true else "False") for s in result.statements]
    reference = evaluate_prompt_variants(model, items, config.framings(), n_boot=200)
    for f, score in enumerate(result.scores):
        assert score.accuracy.mean == pytest.approx(float(reference.correct[f].mean()))
        assert score.p_correct.mean == pytest.approx(float(reference.p_answer[f].mean()))
        assert score.accuracy.low <= score.accuracy.mean <= score.accuracy.high
    paired = reference.p_answer[1] - reference.p_answer[0]
    assert result.scores[1].p_correct_vs_baseline.mean == pytest.approx(float(paired.mean()))
    assert result.scores[0].p_correct_vs_baseline == Estimate(0.0, 0.0, 0.0, len(items))  # the baseline minus itself
    first = result.statements[0]
    prompt = config.template.replace("{persona}", "funny").replace("{statement}", first.text)
    p_true = _p_first(model, prompt, ["True", "False"])
    assert float(reference.p_answer[1, 0]) == pytest.approx(p_true if first.true else 1 - p_true, abs=1e-5)
    assert sorted(result.by_topic) == ["arithmetic", "capitals", "comparison", "counts", "months"]
    payload = result.to_json()
    assert payload["n_statements"] == 10 and "statements" in payload["answer"]
    json.dumps(payload)


def test_agreement_framing_effect_is_the_paired_difference_of_the_implied_verdicts(tiny: TinyModels) -> None:
    model = tiny.text()
    actions = [Action("drink water", "fine"), Action("kick a dog", "not okay"), Action("leave early", "ambiguous")]
    config = AgreementFramingConfig("Okay to {action}, isn't it?", "Not okay to {action}, is it?", n_boot=200)
    result = agreement_framing_study(model, config, actions)
    by_hand = torch.tensor(
        [
            [_p_first(model, template.replace("{action}", a.text), ["Yes", "No"]) for a in actions]
            for template in (config.affirmative, config.disconfirming)
        ]
    )
    torch.testing.assert_close(result.p_agree, by_hand, atol=1e-5, rtol=0)
    every = result.kinds[0]
    assert every.kind is None and [k.kind for k in result.kinds[1:]] == ["fine", "not okay", "ambiguous"]
    assert every.framing_effect.mean == pytest.approx(float((by_hand[0] + by_hand[1] - 1).mean()), abs=1e-5)
    assert every.p_okay_disconfirming.mean == pytest.approx(float((1 - by_hand[1]).mean()), abs=1e-5)
    okay = (by_hand[0] + 1 - by_hand[1]) / 2
    assert result.discrimination.mean == pytest.approx(float(okay[0] - okay[1]), abs=1e-5)
    assert "framing effect" in result.answer()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TruthFramingConfig(template="You are {persona}. Answer:"), r"\{statement\} exactly once"),
        (lambda: TruthFramingConfig(personas=("truthful",)), "at least two distinct personas"),
        (lambda: TruthFramingConfig(n_per_topic=3), "even number from 2 to 24"),
        (lambda: AgreementFramingConfig(affirmative="Is it okay?"), r"\{action\} exactly once"),
        (lambda: AgreementFramingConfig(n_boot=10), "at least 100"),
        (lambda: AgreementFramingConfig(per_kind=0), "per_kind must be at least 1"),
    ],
)
def test_configurations_that_cannot_run_are_refused(make: object, message: str) -> None:
    with pytest.raises(StudyConfigError, match=message):
        make()  # type: ignore[operator]  # the lambdas of the table


def test_the_command_refuses_a_template_without_its_slot_before_loading_a_model(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"  # never loaded: the template is checked first
    result = CliRunner().invoke(
        app, ["study", "truth-framing", "--model", str(missing), "--template", "Say {persona}:", "--json"]
    )
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["error"] == "StudyConfigError" and "{statement}" in payload["message"]


@pytest.mark.slow  # two commands and two browser launches
def test_the_commands_write_a_report_and_print_the_answer(tiny: TinyModels, tmp_path: Path) -> None:
    folder = tiny.text_folder()
    out = tmp_path / "truth.html"
    args = ["--persona", "truthful", "--persona", "kind", "--n-per-topic", "2", "--n-boot", "100"]
    args += ["--template", "{persona}: {statement} Answer:"]  # the tiny model's context is 128 characters
    result = CliRunner().invoke(
        app, ["study", "truth-framing", "--model", str(folder), *args, "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["study"] == "truth-framing" and payload["report"] == str(out) and out.is_file()
    assert [s["persona"] for s in payload["scores"]] == ["truthful", "kind"]
    page = open_in_chromium(out)
    assert page.console_errors == [] and "plotly-graph-div" in page.dom and payload["answer"][:40] in page.dom
    out = tmp_path / "agree.html"
    templates = ["--affirmative", "Okay to {action}?", "--disconfirming", "Not okay to {action}?", "--per-kind", "2"]
    result = CliRunner().invoke(
        app,
        ["study", "agreement-framing", "--model", str(folder), "--n-boot", "100", "--out", str(out), *templates],
    )
    assert result.exit_code == 0, result.output
    assert "framing effect" in result.stdout and "Study: conforming" in out.read_text(encoding="utf-8")
    assert out.read_text(encoding="utf-8").count("<tr>") >= 6  # 2 actions of each kind in the per-action table
    assert open_in_chromium(out).console_errors == []
