"""The task library on a tiny model with a GPT-2-style BPE tokenizer: every generator, the registry, the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import transformers as tf
import typer
from tokenizers import Tokenizer, decoders, models
from typer.testing import CliRunner

import circuitscope as cs
from circuitscope.cli import circuit, tasks, trace
from circuitscope.tasks import (
    TASK_NAMES,
    Task,
    TaskCheck,
    TaskError,
    TaskName,
    check_task_spec,
    corruption_span,
    make_task,
    resolve_task,
    survey_tasks,
    task_accuracy,
)
from circuitscope.tasks.counting import COUNTS
from circuitscope.tasks.generate import task_words
from tests.tasks.bpe_model import LEFT_OUT, bpe_model, save_bpe_model

runner = CliRunner()


@pytest.fixture(scope="module")
def model() -> cs.HookedModel:
    return bpe_model()


def _char_model() -> cs.HookedModel:
    """A tokenizer of single characters only: no word is one token."""
    chars = [chr(c) for c in range(32, 127)]
    vocab = {t: i for i, t in enumerate(["<pad>", "<bos>", "<eos>", "<unk>", *chars])}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.decoder = decoders.Fuse()
    tok = tf.PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    config = tf.LlamaConfig(
        vocab_size=len(tok), hidden_size=16, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )  # fmt: skip
    return cs.HookedModel(tf.LlamaForCausalLM(config).eval(), tok)


# ---------------------------------------------------------------------------------------------- every task


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_task_is_seeded_aligned_and_single_token(model: cs.HookedModel, name: str) -> None:
    task = make_task(model, name, n_prompts=12, seed=0)  # type: ignore[arg-type]
    again = make_task(model, name, n_prompts=12, seed=0)  # type: ignore[arg-type]
    other = make_task(model, name, n_prompts=12, seed=1)  # type: ignore[arg-type]
    assert len(task) == 12 and task.name == name
    assert task.clean_prompts == again.clean_prompts and task.corrupted_prompts == again.corrupted_prompts
    assert torch.equal(task.clean_tokens, again.clean_tokens) and torch.equal(task.correct, again.correct)
    assert task.clean_prompts != other.clean_prompts
    for i in range(len(task)):
        clean, corrupted = task.clean_prompts[i], task.corrupted_prompts[i]
        assert clean != corrupted
        assert len(model.tok.encode(clean)) == len(model.tok.encode(corrupted)) == int(task.answer_pos[i]) + 1
        correct, incorrect = int(task.correct[i]), int(task.incorrect[i])
        assert correct != incorrect
        for token in (correct, incorrect):
            text = str(model.to_string(token))
            assert model.to_single_token(text) == token  # the answer is one token, as text too
            for prompt in (clean, corrupted):  # and the token the tokenizer writes right after the prompt
                assert model.tok.encode(prompt + text) == [*model.tok.encode(prompt), token]
        words = set(re.findall(r"[A-Za-z]+", clean + corrupted + str(model.to_string([correct, incorrect]))))
        assert not words & {*LEFT_OUT, *(w.lower() for w in LEFT_OUT)}  # split words are dropped


def test_a_pair_grows_with_n_prompts_unchanged(model: cs.HookedModel) -> None:
    few, many = make_task(model, "counting", n_prompts=3, seed=4), make_task(model, "counting", n_prompts=9, seed=4)
    assert many.clean_prompts[:3] == few.clean_prompts and many.corrupted_prompts[:3] == few.corrupted_prompts


# ---------------------------------------------------------------------------------------------- each generator


def _answers(model: cs.HookedModel, task: Task, i: int) -> tuple[str, str]:
    return str(model.to_string(int(task.correct[i]))), str(model.to_string(int(task.incorrect[i])))


# Checked by hand, per generator: the first pair for seed 0 (clean, corrupted, correct answer, incorrect answer).
# greater-than: start 1143, so an end year 1153 ("5", later) against 1133 ("3", earlier).
FIRST_PAIRS: dict[TaskName, tuple[str, str, str, str]] = {
    "greater-than": (
        "The truce began in the year 1143 and ended in the year 11",
        "The truce began in the year 1101 and ended in the year 11",
        "5",
        "3",
    ),
    "acronyms": ("The Eastern Youth Board (EY", "The Eastern Youth Network (EY", "B", "N"),
    "capital-after-period": (
        "They moved to a new town. The kettle began to whistle.",
        "They moved to a new town. The kettle began to whistle,",
        " The",
        " the",
    ),
    "pronoun": ("After the long meeting, Steven said that", "After the long meeting, Anna said that", " he", " she"),
    "verb-agreement": ("The tree on the hill", "The trees on the hill", " is", " are"),
    "sentiment": (
        "My friends loathed that trip. They said it was",
        "My friends loved that trip. They said it was",
        " bad",
        " good",
    ),
    "counting": (
        "I bought a cup, a key and a candle late one rainy evening. In total, I bought",
        "I bought a cup, a key, a candle and a coin yesterday. In total, I bought",
        " three",
        " four",
    ),
    "email": ("The email address of Kate Brown is", "The email address of Thomas Brown is", " kate", " thomas"),
}


@pytest.mark.parametrize("name", sorted(FIRST_PAIRS))
def test_first_pair_is_the_hand_checked_one(model: cs.HookedModel, name: TaskName) -> None:
    task = make_task(model, name, n_prompts=16, seed=0)
    assert (task.clean_prompts[0], task.corrupted_prompts[0], *_answers(model, task, 0)) == FIRST_PAIRS[name]


def test_greater_than(model: cs.HookedModel) -> None:
    task = make_task(model, "greater-than", n_prompts=16, seed=0)
    for i, clean in enumerate(task.clean_prompts):
        start = re.search(r"year (\d\d)(\d\d) ", clean)
        assert start is not None and clean.endswith(f"year {start.group(1)}")
        yy = int(start.group(2))
        assert task.corrupted_prompts[i] == clean.replace(start.group(0), f"year {start.group(1)}01 ")
        assert _answers(model, task, i) == (str((yy + 10) // 10), str((yy - 10) // 10))  # digit tokens: tens


def test_acronyms(model: cs.HookedModel) -> None:
    task = make_task(model, "acronyms", n_prompts=16, seed=0)
    for i, clean in enumerate(task.clean_prompts):
        w1, w2, w3, letters = re.fullmatch(r"The (\w+) (\w+) (\w+) \((\w+)", clean).groups()  # type: ignore[union-attr]
        other = task.corrupted_prompts[i].split()[3]
        assert letters == w1[0] + w2[0] and task.corrupted_prompts[i] == clean.replace(f" {w3} ", f" {other} ")
        assert _answers(model, task, i) == (w3[0], other[0]) and w3[0] != other[0]


def test_capital_after_period(model: cs.HookedModel) -> None:
    task = make_task(model, "capital-after-period", n_prompts=16, seed=0)
    for i, clean in enumerate(task.clean_prompts):
        correct, incorrect = _answers(model, task, i)
        assert clean.endswith(".") and task.corrupted_prompts[i] == clean[:-1] + ","
        assert correct == " " + task.labels["opener"][i] and incorrect == correct.lower() != correct


# Two-sided tasks: the label that names a pair's side, and each side's (correct, incorrect) answers.
SIDES: dict[TaskName, tuple[str, dict[str, tuple[str, str]]]] = {
    "pronoun": ("gender", {"female": (" she", " he"), "male": (" he", " she")}),
    "verb-agreement": ("number", {"singular": (" is", " are"), "plural": (" are", " is")}),
    "sentiment": ("polarity", {"positive": (" good", " bad"), "negative": (" bad", " good")}),
}


@pytest.mark.parametrize("name", sorted(SIDES))
def test_answers_follow_the_side_and_both_sides_occur(model: cs.HookedModel, name: TaskName) -> None:
    task = make_task(model, name, n_prompts=16, seed=0)
    label, answers = SIDES[name]
    assert [_answers(model, task, i) for i in range(len(task))] == [answers[side] for side in task.labels[label]]
    assert set(task.labels[label]) == set(answers)


def test_pronoun(model: cs.HookedModel) -> None:
    task = make_task(model, "pronoun", n_prompts=16, seed=0)
    words = task_words("pronoun")
    for i, clean in enumerate(task.clean_prompts):
        name, female = task.labels["name"][i], task.labels["gender"][i] == "female"
        swapped = next(
            w.strip(",") for w, v in zip(task.corrupted_prompts[i].split(), clean.split(), strict=True) if w != v
        )
        assert (name in words["female_names"]) == female and (swapped in words["male_names"]) == female
        assert (name in words["male_names"]) != female


def test_verb_agreement(model: cs.HookedModel) -> None:
    task = make_task(model, "verb-agreement", n_prompts=16, seed=0)
    for clean, corrupted, subject in zip(
        task.clean_prompts, task.corrupted_prompts, task.labels["subject"], strict=True
    ):
        assert clean.split()[1] == subject and corrupted.split()[2:] == clean.split()[2:]


def test_sentiment(model: cs.HookedModel) -> None:
    task = make_task(model, "sentiment", n_prompts=16, seed=0)
    for clean, corrupted, verb in zip(task.clean_prompts, task.corrupted_prompts, task.labels["verb"], strict=True):
        assert verb in clean.split() and verb not in corrupted.split()


def test_counting(model: cs.HookedModel) -> None:
    task = make_task(model, "counting", n_prompts=16, seed=0)
    objects = task_words("counting")["objects"]
    for i in range(len(task)):
        listed = [sum(f"a {o}" in p for o in objects) for p in (task.clean_prompts[i], task.corrupted_prompts[i])]
        assert listed[0] != listed[1] and task.clean_prompts[i].count(" a ") == listed[0]
        assert _answers(model, task, i) == (" " + COUNTS[listed[0]], " " + COUNTS[listed[1]])


def test_email(model: cs.HookedModel) -> None:
    task = make_task(model, "email", n_prompts=16, seed=0)
    for i in range(len(task)):
        first = task.labels["name"][i].split()[0]
        assert first in task.clean_prompts[i] and first not in task.corrupted_prompts[i]
        correct, incorrect = _answers(model, task, i)
        assert correct == " " + first.lower() and incorrect.strip().capitalize() in task.corrupted_prompts[i]


# ---------------------------------------------------------------------------------------------- errors


def test_a_tokenizer_without_word_tokens_is_a_clear_error() -> None:
    chars = _char_model()
    for name in TASK_NAMES:
        with pytest.raises(TaskError) as info:
            make_task(chars, name, n_prompts=4, seed=0)  # type: ignore[arg-type]
        message = str(info.value)
        assert ("too few" in message or "could be made" in message) and ("ioi" in message.lower() or name in message)
    survey = survey_tasks(chars, n_prompts=4)
    assert survey.checks == [] and list(survey.unavailable) == list(TASK_NAMES)


def test_specs_names_and_files(model: cs.HookedModel, tmp_path: Path) -> None:
    for name in TASK_NAMES:
        check_task_spec(name)
    with pytest.raises(TaskError, match="unknown task 'bogus'") as info:
        check_task_spec("bogus")
    assert all(name in str(info.value) for name in TASK_NAMES)
    with pytest.raises(TaskError, match="does not exist") as info:
        check_task_spec(str(tmp_path / "missing.jsonl"))
    assert "greater-than" in str(info.value)
    with pytest.raises(TaskError, match="unknown task"):
        make_task(model, "bogus", n_prompts=2, seed=0)  # type: ignore[arg-type]
    with pytest.raises(TaskError, match="n_prompts"):
        make_task(model, "pronoun", n_prompts=0, seed=0)
    pairs = tmp_path / "pairs.jsonl"
    row = {
        "clean": "Then Mary went home because",
        "corrupted": "Then John went home because",
        "correct": " she",
        "incorrect": " he",
    }
    pairs.write_text(json.dumps(row) + "\n")
    loaded = resolve_task(model, str(pairs), n_prompts=5, seed=0)
    assert loaded.name == "pairs" and loaded.clean_prompts == [row["clean"]]
    assert (
        resolve_task(model, "email", n_prompts=3, seed=2).clean_prompts
        == make_task(model, "email", n_prompts=3, seed=2).clean_prompts
    )


# ---------------------------------------------------------------------------------------------- accuracy


def test_task_accuracy_matches_full_logits(model: cs.HookedModel) -> None:
    task = make_task(model, "sentiment", n_prompts=10, seed=3)
    check = task_accuracy(model, task, batch_size=3)
    rows = torch.arange(len(task))
    with torch.no_grad():
        clean = model(task.clean_tokens)[rows, task.answer_pos]
        corrupted = model(task.corrupted_tokens)[rows, task.answer_pos]
    diff = clean[rows, task.correct] - clean[rows, task.incorrect]
    corr = corrupted[rows, task.correct] - corrupted[rows, task.incorrect]
    assert check.n_prompts == 10 and check.task == "sentiment"
    assert check.accuracy == pytest.approx(float((diff > 0).float().mean()))
    assert check.top1 == pytest.approx(float((clean.argmax(-1) == task.correct).float().mean()))
    assert check.logit_diff == pytest.approx(float(diff.mean()), abs=1e-5)
    assert check.corrupted_logit_diff == pytest.approx(float(corr.mean()), abs=1e-5)
    assert check.to_json()["near_chance"] == check.near_chance


def test_near_chance_and_its_warning() -> None:
    def check(accuracy: float) -> TaskCheck:
        return TaskCheck("counting", 32, accuracy, 0.0, 0.1, -0.1)

    assert check(0.6).near_chance and check(0.2).near_chance and not check(0.7).near_chance
    warning = check(0.5).warning
    assert warning is not None and "near chance" in warning and "50% of 32" in warning
    assert check(0.9).warning is None and check(0.9).to_json()["warning"] is None


def test_corruption_span_gives_the_corrupted_prompt_back(model: cs.HookedModel) -> None:
    for name in TASK_NAMES:
        task = make_task(model, name, n_prompts=6, seed=0)  # type: ignore[arg-type]
        for i in range(len(task)):
            span = corruption_span(task, i)
            assert span.corrupted == task.corrupted_prompts[i] and span.prompt == task.clean_prompts[i]
            assert span.prompt.find(span.subject) == span.start and span.subject != span.replacement
    ioi = make_task(model, "ioi", n_prompts=1, seed=0)
    span = corruption_span(ioi, 0)  # checked by hand: from the first name to the last
    assert (span.subject, span.replacement) == (
        "Jason and Sean had a long argument. Afterwards Sean", "Jessica and Amy had a long argument. Afterwards Eric"
    )  # fmt: skip
    years = corruption_span(make_task(model, "greater-than", n_prompts=1, seed=0), 0)
    assert (years.subject, years.replacement) == ("1143", "1101")  # whole words, not just "43" -> "01"
    with pytest.raises(TaskError, match="has 1 pairs"):
        corruption_span(ioi, 1)


# ---------------------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_bpe_model(tmp_path_factory.mktemp("bpe-model"))


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Only the commands under test."""

    for module in (circuit, tasks, trace):
        module.register(app)
    return app


def test_cli_tasks_lists_and_checks(folder: Path, model: cs.HookedModel) -> None:
    listed = runner.invoke(_app(), ["tasks", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [t["name"] for t in json.loads(listed.stdout)["tasks"]] == list(TASK_NAMES)
    people = runner.invoke(_app(), ["tasks"])
    assert people.exit_code == 0 and all(name in people.stdout for name in TASK_NAMES)
    checked = runner.invoke(_app(), ["tasks", "--model", str(folder), "--check", "--n-prompts", "4", "--json"])
    assert checked.exit_code == 0, checked.output
    payload = json.loads(checked.stdout)
    assert [t["task"] for t in payload["tasks"]] == list(TASK_NAMES) and payload["unavailable"] == {}
    direct = task_accuracy(model, make_task(model, "pronoun", n_prompts=4, seed=0))
    row = next(t for t in payload["tasks"] if t["task"] == "pronoun")
    assert row["logit_diff"] == pytest.approx(direct.logit_diff, abs=1e-5) and row["n_prompts"] == 4


def test_cli_circuit_takes_a_task_name(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    args = ["circuit", "--model", str(folder), "--task", "pronoun", "--method", "eap", "--edges", "5", "--no-curve",
            "--n-prompts", "4", "--out", str(out), "--json"]  # fmt: skip
    result = runner.invoke(_app(), args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["task"]["name"] == "pronoun" and payload["n_edges"] == 5 and out.is_file()
    evaluated = runner.invoke(
        _app(), ["circuit-eval", str(out), "--model", str(folder), "--task", "pronoun", "--n-prompts", "4", "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert "normalized" in json.loads(evaluated.stdout)
    bad = runner.invoke(_app(), ["circuit", "--model", str(folder), "--task", "bogus", "--json"])
    assert bad.exit_code == 1
    error = json.loads(bad.stdout)
    assert error["error"] == "CircuitError"  # as `circuit --task` has always said it
    assert "unknown task 'bogus'" in error["message"] and "email" in error["message"]
    help_text = runner.invoke(_app(), ["circuit", "--help"], env={"COLUMNS": "300"}).stdout
    assert "greater-than" in help_text and "capital-after-period" in help_text


def test_cli_trace_takes_a_task_pair(folder: Path, model: cs.HookedModel, tmp_path: Path) -> None:
    out = tmp_path / "t.html"
    args = ["trace", "--model", str(folder), "--task", "sentiment", "--pair", "2", "--kind", "resid",
            "--out", str(out), "--json"]  # fmt: skip
    result = runner.invoke(_app(), args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    task = make_task(model, "sentiment", n_prompts=3, seed=0)
    verb = task.labels["verb"][2]
    assert payload["prompt"] == task.clean_prompts[2] and payload["task"]["corrupted"] == task.corrupted_prompts[2]
    swapped = next(
        w for w, v in zip(task.corrupted_prompts[2].split(), task.clean_prompts[2].split(), strict=True) if w != v
    )
    assert payload["corruption"] == "resample" and payload["replacement_subjects"] == [swapped]
    assert payload["target_id"] == int(task.correct[2]) and payload["subject"].strip() == verb
    start, stop = payload["subject_range"]
    assert payload["tokens"][start:stop] == [" " + verb]
    # the corrupted run is the pair's corrupted prompt: its probability of the target, computed directly
    with torch.no_grad():
        logits = model(task.corrupted_tokens[2:3])[0, int(task.answer_pos[2])]
    assert payload["corrupted_prob"] == pytest.approx(float(logits.softmax(-1)[task.correct[2]]), abs=1e-5)
    both = runner.invoke(_app(), ["trace", "--model", str(folder), "--task", "email", "--fact", "0", "--json"])
    assert both.exit_code == 1 and "drop --fact" in json.loads(both.stdout)["message"]
    unknown = runner.invoke(_app(), ["trace", "--model", str(tmp_path / "no-model"), "--task", "bogus", "--json"])
    assert unknown.exit_code == 1 and "unknown task 'bogus'" in json.loads(unknown.stdout)["message"]  # before loading
