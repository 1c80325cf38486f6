"""The IOI circuit's evaluation: mean ablation over ABC prompts, faithfulness, completeness, minimality,
the circuit file, and the published GPT-2 small circuit."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

import circuitscope as cs
from circuitscope.circuits.circuit import Circuit
from circuitscope.circuits.graph import CircuitError
from circuitscope.circuits.ioi.ablation import (
    HeadMeanAblation,
    TemplateMeans,
    task_template_means,
    template_groups,
    template_means,
)
from circuitscope.circuits.ioi.evaluate import (
    ablated_logit_diffs,
    circuit_of,
    evaluate_circuit,
    ioi_template_means,
)
from circuitscope.circuits.ioi.reference import _parse, gpt2_small
from circuitscope.circuits.ioi.result import HEAD_CLASSES
from circuitscope.cli.main import app
from circuitscope.core.fingerprint import model_fingerprint
from circuitscope.progress import SILENT
from circuitscope.tasks.ioi import NAMES, IOIConfig, ioi_abc_prompts, ioi_task
from circuitscope.tasks.task import Task
from tests.circuits.ioi_fixtures import CIRCUIT, N_HEADS, N_LAYERS, hand_classes, ioi_model

Head = tuple[int, int]
ALL_HEADS = frozenset((a, b) for a in range(N_LAYERS) for b in range(N_HEADS))


@pytest.fixture(scope="module")
def model() -> cs.HookedModel:
    return ioi_model()


@pytest.fixture(scope="module")
def task(model: cs.HookedModel) -> Task:
    return ioi_task(model, IOIConfig(n_prompts=6, seed=1))


@pytest.fixture(scope="module")
def means(model: cs.HookedModel, task: Task) -> TemplateMeans:
    return ioi_template_means(model, task, 3, seed=0, batch_size=4, on_progress=SILENT)


def _naive_f(model: cs.HookedModel, task: Task, means: TemplateMeans, ablated: frozenset[Head]) -> float:
    """F by hand: one prompt at a time, each ablated head's hook_z overwritten by its template's mean."""
    total = 0.0
    for i in range(len(task)):
        t = means.templates.index(task.labels["template"][i])
        n = int(task.answer_pos[i]) + 1

        def hook(z: torch.Tensor, hook: Any, t: int = t) -> torch.Tensor:
            layer = int(hook.name.split(".")[1])
            z = z.clone()
            for a, b in ablated:
                if a == layer:
                    z[0, :, b] = means.z[t, a, : z.shape[1], b]
            return z

        with torch.no_grad(), model.hooks([("blocks.*.attn.hook_z", hook)]):
            logits = model(task.clean_tokens[i : i + 1, :n])[0, -1]
        total += float(logits[task.correct[i]] - logits[task.incorrect[i]])
    return total / len(task)


def test_abc_prompts_name_three_distinct_people_and_keep_the_template(model: cs.HookedModel) -> None:
    prompts = ioi_abc_prompts(model, ["BABA0", "ABBA4", "BABA0"], 5, seed=2)
    assert list(prompts) == ["BABA0", "ABBA4"]
    for texts in prompts.values():
        assert len(texts) == 5
        for text in texts:
            names = [w.strip(",.") for w in text.split() if w.strip(",.") in NAMES]
            assert len(names) == 3 and len(set(names)) == 3  # IO, S1, S2 all different: no repeated name
    assert prompts["BABA0"][0].startswith("Then, ") and " went to the " in prompts["BABA0"][0]
    assert ioi_abc_prompts(model, ["BABA0"], 5, seed=2)["BABA0"] == prompts["BABA0"]  # seeded
    with pytest.raises(cs.CircuitscopeError, match="unknown IOI template"):
        ioi_abc_prompts(model, ["CABA1"], 2)


def test_template_means_are_the_mean_of_each_prompt_run_alone(model: cs.HookedModel, task: Task) -> None:
    prompts = ioi_abc_prompts(model, task.labels["template"], 3, seed=0)
    got = template_means(model, prompts, batch_size=4, on_progress=SILENT)
    for t, label in enumerate(got.templates):
        zs = []
        for text in prompts[label]:
            _, cache = model.run_with_cache(text, names=["blocks.2.attn.hook_z"])
            zs.append(cache["blocks.2.attn.hook_z"][0])
        n = got.lengths[t]
        assert zs[0].shape[0] == n
        torch.testing.assert_close(got.z[t, 2, :n], torch.stack(zs).mean(0), rtol=1e-5, atol=1e-6)
        assert bool((got.z[t, :, n:] == 0).all())


def test_a_tasks_own_template_means_average_its_corrupted_prompts_and_ablate_stacked_copies(
    model: cs.HookedModel, task: Task
) -> None:
    """The means over the task's own ABC prompts (head classes, step 5) are each template's plain mean of its rows,
    unequal group sizes included; the ablation applies the same rows to every stacked copy of the batch."""
    got = task_template_means(model, task, batch_size=4, on_progress=SILENT)
    groups = template_groups(task)
    _, cache = model.run_with_cache(task.corrupted_tokens, names=["blocks.1.attn.hook_z"])
    for t, label in enumerate(got.templates):
        rows = [i for i, g in enumerate(groups) if g == label]
        expected = cache["blocks.1.attn.hook_z"][rows].mean(0)
        torch.testing.assert_close(got.z[t, 1], expected, rtol=1e-5, atol=1e-6)
    assert got.n_reference == min(groups.count(label) for label in got.templates)
    rows = torch.tensor([got.index(g) for g in groups])
    ablated = torch.zeros(len(task), N_LAYERS, N_HEADS, dtype=torch.bool)
    ablated[:, 1, 2] = True
    with model.apply(HeadMeanAblation(got, rows, ablated)):
        once = model(task.clean_tokens)
        twice = model(task.clean_tokens.repeat(2, 1))
    torch.testing.assert_close(twice, once.repeat(2, 1, 1), rtol=1e-5, atol=1e-5)


def test_mean_ablating_one_head_gives_it_its_template_mean_and_leaves_the_rest(
    model: cs.HookedModel, task: Task, means: TemplateMeans
) -> None:
    b, width = len(task), task.seq_len
    rows = torch.tensor([means.index(t) for t in task.labels["template"]])
    ablated = torch.zeros(b, N_LAYERS, N_HEADS, dtype=torch.bool)
    ablated[:, 1, 2] = True
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(N_LAYERS)]
    _, clean = model.run_with_cache(task.clean_tokens, names=names)
    with model.apply(HeadMeanAblation(means, rows, ablated)):
        _, run = model.run_with_cache(task.clean_tokens, names=names)
    z1 = run["blocks.1.attn.hook_z"]
    torch.testing.assert_close(z1[:, :, 2], means.z[rows, 1, :width, 2])
    others = [h for h in range(N_HEADS) if h != 2]
    torch.testing.assert_close(z1[:, :, others], clean["blocks.1.attn.hook_z"][:, :, others], rtol=0, atol=0)
    torch.testing.assert_close(run["blocks.0.attn.hook_z"], clean["blocks.0.attn.hook_z"], rtol=0, atol=0)
    assert not torch.allclose(run["blocks.3.attn.hook_z"], clean["blocks.3.attn.hook_z"])  # it reaches later layers
    # the batched F of that set equals the prompt-by-prompt hand computation
    (f,) = ablated_logit_diffs(model, task, means, [frozenset({(1, 2)})], batch_size=4)
    assert f == pytest.approx(_naive_f(model, task, means, frozenset({(1, 2)})), abs=1e-5)


def test_the_ablation_refuses_another_model_or_batch(model: cs.HookedModel, task: Task, means: TemplateMeans) -> None:
    rows = torch.zeros(2, dtype=torch.long)
    ablation = HeadMeanAblation(means, rows, torch.ones(2, N_LAYERS, N_HEADS, dtype=torch.bool))
    with pytest.raises(cs.CircuitscopeError, match="rows"), model.apply(ablation):
        model(task.clean_tokens[:3])
    other = dataclasses.replace(means, fingerprint="gpt2-12L-768d-50257v-0")
    with pytest.raises(CircuitError, match="take them again"):
        everything = torch.ones(2, N_LAYERS, N_HEADS, dtype=torch.bool)
        model(task.clean_tokens[:2], interventions=[HeadMeanAblation(other, rows, everything)])
    with pytest.raises(cs.CircuitscopeError, match="batch, layer, head"):
        HeadMeanAblation(means, rows, torch.ones(2, 4, dtype=torch.bool))


def test_f_of_the_whole_model_is_the_clean_logit_difference(model: cs.HookedModel, task: Task) -> None:
    everything = {name: [h for h in sorted(ALL_HEADS) if h[1] == i % N_HEADS] for i, name in enumerate(HEAD_CLASSES)}
    classes = hand_classes(everything)
    assert set(classes.all_heads) == ALL_HEADS
    ev = evaluate_circuit(model, task, classes, n_reference=2, n_random=0, seed=0, batch_size=8, on_progress=SILENT)
    with torch.no_grad():
        logits = model(task.clean_tokens)
    rows = torch.arange(len(task))
    last = logits[rows, task.answer_pos]
    clean = float((last[rows, task.correct] - last[rows, task.incorrect]).mean())
    assert ev.f_model == pytest.approx(clean, abs=1e-5)
    assert ev.f_circuit == ev.f_model  # nothing outside the circuit: the same set, the same forward pass
    assert ev.faithfulness == pytest.approx(1.0)


def test_f_of_the_empty_circuit_is_every_head_mean_ablated(
    model: cs.HookedModel, task: Task, means: TemplateMeans
) -> None:
    ev = evaluate_circuit(model, task, hand_classes({}), n_reference=3, n_random=4, seed=0, batch_size=5)
    assert ev.f_circuit == pytest.approx(_naive_f(model, task, means, ALL_HEADS), abs=1e-5)
    assert [p.label for p in ev.completeness] == ["empty"] and ev.minimality == []


def test_completeness_and_minimality_follow_their_definitions(
    model: cs.HookedModel, task: Task, means: TemplateMeans
) -> None:
    classes = hand_classes(CIRCUIT)
    circuit = frozenset(classes.all_heads)
    outside = ALL_HEADS - circuit
    ev = evaluate_circuit(model, task, classes, n_reference=3, n_random=3, seed=0, batch_size=16, on_progress=SILENT)
    assert ev.n_reference == 3
    labels = [p.label for p in ev.completeness]
    assert labels == ["empty"] + [f"class:{c}" for c in HEAD_CLASSES] + ["random:0", "random:1", "random:2"]
    assert ev.completeness[0].f_circuit == ev.f_circuit and ev.completeness[0].f_model == ev.f_model
    for p in ev.completeness:
        assert (p.removed and set(p.removed) <= circuit) or p.label == "empty"
        if p.label.startswith("class:"):
            assert p.removed == classes.heads(p.label[6:])  # type: ignore[arg-type]
    # one point recomputed by hand, prompt by prompt
    point = ev.completeness[labels.index("class:s_inhibition")]
    k = frozenset(CIRCUIT["s_inhibition"])
    assert point.f_circuit == pytest.approx(_naive_f(model, task, means, outside | k), abs=1e-5)
    assert point.f_model == pytest.approx(_naive_f(model, task, means, k), abs=1e-5)
    assert point.gap == pytest.approx(abs(point.f_circuit - point.f_model))
    # minimality: one point per head, the K (of the three candidates) with the largest change
    assert [p.head for p in ev.minimality] == sorted(circuit)
    v = (3, 1)  # the name mover: its partners are the backup and negative name movers
    got = next(p for p in ev.minimality if p.head == v)
    assert got.head_class == "name_mover" and v not in got.removed
    candidates = [frozenset(), frozenset(), frozenset({(3, 0), (3, 2)})]  # ∅, its class without it, partners
    changes = [abs(_naive_f(model, task, means, outside | c) - _naive_f(model, task, means, outside | c | {v}))
               for c in candidates]  # fmt: skip
    assert got.change == pytest.approx(max(changes), abs=1e-5)
    assert frozenset(got.removed) == candidates[changes.index(max(changes))]
    again = evaluate_circuit(model, task, classes, n_reference=3, n_random=3, seed=0, batch_size=7, on_progress=SILENT)
    assert [p.removed for p in again.completeness] == [p.removed for p in ev.completeness]  # seeded
    assert again.f_circuit == pytest.approx(ev.f_circuit, abs=1e-5)  # another batch layout, the same numbers
    assert json.loads(json.dumps(ev.to_json()))["completeness"][0]["label"] == "empty"


def test_a_task_without_templates_or_with_misaligned_ones_is_refused(model: cs.HookedModel, task: Task) -> None:
    bare = dataclasses.replace(task, labels={})
    with pytest.raises(CircuitError, match="ioi_task"):
        evaluate_circuit(model, bare, hand_classes(CIRCUIT), n_reference=1, n_random=0, seed=0, batch_size=4)
    n = int(task.answer_pos[0]) + 1
    other = next(  # a template whose prompts are not as long as the first clean prompt
        label for label in (f"BABA{i}" for i in range(15))
        if len(model.tok.encode(ioi_abc_prompts(model, [label], 1)[label][0])) != n
    )  # fmt: skip
    wrong = dataclasses.replace(task, labels={**task.labels, "template": [other, *task.labels["template"][1:]]})
    with pytest.raises(CircuitError, match="do not line up"):
        ioi_template_means(model, wrong, 1, seed=0, batch_size=4, on_progress=SILENT)


def test_the_circuit_file_has_the_class_edges_and_round_trips(
    model: cs.HookedModel, task: Task, tmp_path: Path
) -> None:
    misplaced = {**CIRCUIT, "induction": [(1, 1), (2, 2)]}  # L2H2 cannot reach the S-inhibition heads of layer 2
    circuit = circuit_of(model, hand_classes(misplaced), task, model_name="tiny")
    assert circuit.method == "ioi-classes" and circuit.ablation == "mean"
    assert circuit.fingerprint == model_fingerprint(model)
    # 4 query heads share 2 key/value heads: heads 0, 1 read kv0; heads 2, 3 read kv1
    expected = {
        ("a0.h0", "a1.kv0<k>"), ("a0.h0", "a2.kv1<k>"),  # previous-token -> induction (k)
        *{(s, f"a2.kv{g}<{x}>") for s in ("a0.h3", "a1.h1") for g in (0, 1) for x in "kv"},  # -> S-inhibition
        *{(s, f"a3.h{r}<q>") for s in ("a2.h0", "a2.h3") for r in (0, 1, 2)},  # S-inhibition -> movers (q)
        ("a3.h0", "logits"), ("a3.h1", "logits"), ("a3.h2", "logits"),
        *{("input", f"a{a}.h{b}<q>") for a, b in hand_classes(misplaced).all_heads},
        *{("input", f"a{a}.kv{b // 2}<{x}>") for a, b in hand_classes(misplaced).all_heads for x in "kv"},
    }  # fmt: skip
    assert {(s, r) for s, r, _ in circuit.edge_list()} == expected
    assert sorted(circuit.info["unreachable"]) == sorted(f"a2.h2->a2.kv{g}<{x}>" for x in "kv" for g in (0, 1))
    assert circuit.info["classes"]["a2.h2"] == "induction" and circuit.info["classes"]["a3.h2"] == "negative_name_mover"
    path = circuit.save(tmp_path / "ioi.json")
    loaded = Circuit.load(path, model=model)
    assert loaded.to_dict() == circuit.to_dict()
    assert torch.equal(loaded.edges, circuit.edges)


def test_circuit_eval_reads_the_circuit_file(tmp_path: Path) -> None:
    folder = tmp_path / "tiny-ioi"
    built = ioi_model()
    built.hf_model.save_pretrained(folder)
    built.tokenizer.save_pretrained(folder)
    model = cs.load_model(str(folder))
    task = ioi_task(model, IOIConfig(n_prompts=4, seed=0))
    path = circuit_of(model, hand_classes(CIRCUIT), task, model_name=str(folder)).save(tmp_path / "ioi.json")
    result = CliRunner().invoke(
        app, ["circuit-eval", str(path), "--model", str(folder), "--n-prompts", "4", "--batch-size", "4", "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    with torch.no_grad():
        logits = model(task.clean_tokens)
    rows = torch.arange(len(task))
    last = logits[rows, task.answer_pos]
    assert payload["full"] == pytest.approx(
        float((last[rows, task.correct] - last[rows, task.incorrect]).mean()), abs=1e-5
    )
    assert payload["n_edges"] == Circuit.load(path).n_edges and payload["ablation"] == "mean"


def test_the_published_gpt2_small_circuit_ships_as_data() -> None:
    published = gpt2_small()
    assert list(published.classes) == list(HEAD_CLASSES)
    assert published.classes == {
        "name_mover": [(9, 6), (9, 9), (10, 0)],
        "negative_name_mover": [(10, 7), (11, 10)],
        "s_inhibition": [(7, 3), (7, 9), (8, 6), (8, 10)],
        "induction": [(5, 5), (5, 8), (5, 9), (6, 9)],
        "duplicate_token": [(0, 1), (0, 10), (3, 0)],
        "previous_token": [(2, 2), (4, 11)],
        "backup_name_mover": [(9, 0), (9, 7), (10, 1), (10, 2), (10, 6), (10, 10), (11, 2), (11, 9)],
    }
    assert sum(len(v) for v in published.classes.values()) == 26
    assert published.model == "gpt2" and published.n_layers == 12
    assert published.clean_logit_diff == 3.55 and published.faithfulness == 0.87
    assert "arXiv:2211.00593" in published.source and "Interpretability in the Wild" in published.source
    assert published.to_json()["classes"]["name_mover"] == ["L9H6", "L9H9", "L10H0"]


def test_a_damaged_published_circuit_is_a_clear_error() -> None:
    from importlib import resources

    text = resources.files("circuitscope.circuits.ioi").joinpath("data").joinpath("gpt2_small_ioi.json").read_text()
    data = json.loads(text)
    del data["classes"]["induction"]
    with pytest.raises(CircuitError, match=r"malformed.*induction"):
        _parse(data, "x.json")
    data = json.loads(text)
    data["classes"]["name_mover"]["heads"] = ["12.0"]
    with pytest.raises(CircuitError, match="outside 12 layers"):
        _parse(data, "x.json")
    with pytest.raises(CircuitError, match="not a published circuit"):
        _parse({"format": "other"}, "x.json")
