"""Tasks: the IOI generator and JSONL task files, with the real tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import circuitscope as cs
from circuitscope.tasks import IOIConfig, Task, TaskError, ioi_task, load_jsonl_task
from circuitscope.tasks.ioi import NAMES

pytestmark = pytest.mark.real


def test_ioi_prompts_pair_up(gemma: cs.HookedModel) -> None:
    for corruption in ("abc", "swap"):
        task = ioi_task(gemma, IOIConfig(n_prompts=40, seed=3, corruption=corruption))  # type: ignore[arg-type]
        assert len(task) == 40 and task.clean_tokens.shape == task.corrupted_tokens.shape
        for i in range(len(task)):
            n = int(task.answer_pos[i]) + 1
            assert int((task.clean_tokens[i] != gemma.tok.pad_token_id).sum()) == n  # same length, right-padded
            assert gemma.to_string(int(task.correct[i])) == " " + task.labels["io"][i]
            assert gemma.to_string(int(task.incorrect[i])) == " " + task.labels["s"][i]
            clean, bad = task.clean_prompts[i], task.corrupted_prompts[i]
            io, s = task.labels["io"][i], task.labels["s"][i]
            assert clean.count(s) == 2 and clean.count(io) == 1
            if corruption == "swap":
                assert bad.count(io) == 2 and bad.count(s) == 1
            else:
                assert io not in bad.split() and s not in bad.split()
                names = [w.strip(",.") for w in bad.split() if w.strip(",.") in NAMES]
                assert len(names) == 3 and len(set(names)) == 3
        assert {label[:4] for label in task.labels["order"]} == {"ABBA", "BABA"}


def test_ioi_is_seeded_and_single_length_on_request(gemma: cs.HookedModel) -> None:
    a = ioi_task(gemma, IOIConfig(n_prompts=10, seed=7))
    b = ioi_task(gemma, IOIConfig(n_prompts=10, seed=7))
    c = ioi_task(gemma, IOIConfig(n_prompts=10, seed=8))
    assert a.clean_prompts == b.clean_prompts and torch.equal(a.clean_tokens, b.clean_tokens)
    assert a.clean_prompts != c.clean_prompts
    one = ioi_task(gemma, IOIConfig(n_prompts=12, templates="one"))
    assert one.same_length


def test_the_model_does_ioi(gemma: cs.HookedModel) -> None:
    task = ioi_task(gemma, IOIConfig(n_prompts=32))
    rows = torch.arange(len(task))
    with torch.no_grad():
        logits = gemma(task.clean_tokens)[rows, task.answer_pos]
    diff = logits[rows, task.correct] - logits[rows, task.incorrect]
    print(f"Gemma-3-270M mean clean IOI logit difference on 32 prompts: {float(diff.mean()):.3f}")
    assert float(diff.mean()) > 0


def test_unequal_pairs_and_multi_token_answers_are_refused(gemma: cs.HookedModel) -> None:
    with pytest.raises(TaskError, match="different lengths") as info:
        Task.from_pairs(gemma, ["The cat sat"], ["The big cat sat"], [" on"], [" in"])
    assert "clean:" in str(info.value) and "corrupted:" in str(info.value)
    with pytest.raises(TaskError, match="not a single token"):
        Task.from_pairs(gemma, ["The cat sat"], ["The dog sat"], [" onomatopoeia-ish"], [" in"])


def test_jsonl_tasks_and_their_errors(gemma: cs.HookedModel, tmp_path: Path) -> None:
    good = tmp_path / "pairs.jsonl"
    rows = [
        {
            "clean": "The capital of France is",
            "corrupted": "The capital of Italy is",
            "correct": " Paris",
            "incorrect": " Rome",
        },
        {
            "clean": "The capital of Spain is",
            "corrupted": "The capital of Japan is",
            "correct": " Madrid",
            "incorrect": " Tokyo",
        },
    ]
    good.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    task = load_jsonl_task(gemma, good)
    assert len(task) == 2 and task.name == "pairs"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"clean": "a", "corrupted": "b", "correct": " c", "incorrect": " d"}\n{"clean": broken}\n')
    with pytest.raises(TaskError, match=r"bad\.jsonl:2: not valid JSON"):
        load_jsonl_task(gemma, bad)
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"clean": "a", "corrupted": "b"}\n')
    with pytest.raises(TaskError, match=r"missing\.jsonl:1: missing key"):
        load_jsonl_task(gemma, missing)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(TaskError, match="empty"):
        load_jsonl_task(gemma, empty)
