"""The graph's edges, and edge interventions: exact with every edge kept, the ablated run with none."""

from __future__ import annotations

import pytest
import torch

from circuitscope.analysis.attribution import answer_logits
from circuitscope.circuits import CircuitError, EdgeRun, Graph, graph_of, reference_outputs, sender_outputs
from tests.tiny_models import VOCAB, TinyModels

FAMILIES = ["gpt2", "llama_gqa", "llama_mqa", "gpt_neox", "gpt_neox_sequential", "gemma3", "gemma2_softcap", "qwen3"]


def _tokens(seed: int, n: int = 3, seq: int = 7) -> torch.Tensor:
    return torch.randint(1, VOCAB, (n, seq), generator=torch.Generator().manual_seed(seed))


def test_graph_counts_by_hand() -> None:
    g = Graph(n_layers=2, n_heads=2, n_kv_heads=1)
    assert [s.name for s in g.senders] == ["input", "a0.h0", "a0.h1", "m0", "a1.h0", "a1.h1", "m1"]
    assert [r.name for r in g.receivers] == [
        "a0.h0<q>", "a0.h1<q>", "a0.kv0<k>", "a0.kv0<v>", "m0",
        "a1.h0<q>", "a1.h1<q>", "a1.kv0<k>", "a1.kv0<v>", "m1", "logits",
    ]  # fmt: skip
    # layer 0 attention reads the input only (4 receivers x 1), m0 reads input + 2 heads,
    # layer 1 attention reads 4 senders (4 receivers x 4), m1 reads 6, logits read all 7
    assert g.n_edges == 4 * 1 + 3 + 4 * 4 + 6 + 7
    assert g.edge("a0.h1->a1.kv0<k>") == (2, 7)
    with pytest.raises(CircuitError, match="cannot reach"):
        g.edge("m1->a1.h0<q>")
    with pytest.raises(CircuitError, match="kv"):
        g.receiver("a1.h0<k>")
    parallel = Graph(n_layers=2, n_heads=2, n_kv_heads=2, parallel=True)
    assert not parallel.allowed[parallel.sender("a0.h0"), parallel.receiver("m0")]
    assert parallel.allowed[parallel.sender("a0.h0"), parallel.receiver("m1")]


@pytest.mark.parametrize("family", FAMILIES)
def test_every_edge_kept_is_the_model_and_none_is_the_ablated_run(tiny: TinyModels, family: str) -> None:
    model = tiny.hooked(family)
    graph = graph_of(model)
    clean, corrupted = _tokens(0), _tokens(1)
    answer_pos = torch.tensor([6, 4, 6])
    with torch.no_grad():
        expected_clean, _ = answer_logits(model, clean, answer_pos)
        expected_corrupted, _ = answer_logits(model, corrupted, answer_pos)
        ablated = sender_outputs(model, graph, corrupted)
        keep_all = EdgeRun(model, graph, 3, 7, coeff=torch.zeros(graph.allowed.shape), ablated=ablated)
        keep_none = EdgeRun(model, graph, 3, 7, coeff=graph.allowed.float(), ablated=ablated)
        # hook_result is live in an edge run, so each attention output is the sum of its heads' products instead
        # of one o_proj product (core/head_products.py): equal to float32 rounding, not bit for bit
        torch.testing.assert_close(keep_all.answer_logits(clean, answer_pos), expected_clean, atol=1e-5, rtol=1e-5)
        # every receiver input rebuilt as clean + (corrupted - clean) sender sums: float32 rounding (2.4e-7 on ~1)
        torch.testing.assert_close(keep_none.answer_logits(clean, answer_pos), expected_corrupted, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "llama_gqa", "gpt_neox"])
def test_senders_add_up_to_the_residual_stream(tiny: TinyModels, family: str) -> None:
    """input + every head + every MLP (+ constant biases) is the final residual stream."""
    model = tiny.hooked(family)
    graph = graph_of(model)
    tokens = _tokens(2)
    last = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    with torch.no_grad():
        acts = sender_outputs(model, graph, tokens)
        _, cache = model.run_with_cache(tokens, names=[last])
    bias = model.b_O.sum(0)  # the only constant these families add (attention output biases)
    # sender outputs summed vs the model's running residual additions: float32 rounding (1.2e-7 on ~0.8)
    torch.testing.assert_close(acts.sum(0) + bias, cache[last], atol=1e-5, rtol=1e-5)


def test_one_ablated_edge_equals_a_hand_made_intervention(tiny: TinyModels) -> None:
    """Ablating head a0.h1 -> MLP m1 only changes what m1 reads: its norm input loses a0.h1's clean output and
    gains its corrupted one."""
    model = tiny.hooked("llama_gqa")
    graph = graph_of(model)
    clean, corrupted = _tokens(3), _tokens(4)
    answer_pos = torch.tensor([6, 6, 6])
    u, r = graph.edge("a0.h1->m1")
    with torch.no_grad():
        clean_acts = sender_outputs(model, graph, clean)
        ablated = sender_outputs(model, graph, corrupted)
        coeff = torch.zeros(graph.allowed.shape)
        coeff[u, r] = 1
        got = EdgeRun(model, graph, 3, 7, coeff=coeff, ablated=ablated).answer_logits(clean, answer_pos)
        _, cache = model.run_with_cache(clean, names=["blocks.1.hook_resid_mid"])
        x = cache["blocks.1.hook_resid_mid"] - clean_acts[u] + ablated[u]
        ln2 = model.wiring.blocks[1].ln2
        assert ln2 is not None
        mlp_in = ln2.forward(x)
        with model.hooks([("blocks.1.ln2.hook_normalized", lambda y, hook: mlp_in)]):
            expected, _ = answer_logits(model, clean, answer_pos)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)  # another sum order: 1.2e-7 on ~1
    assert not torch.allclose(got, answer_logits(model, clean, answer_pos)[0])  # the edit moves logits by ~0.15


@pytest.mark.parametrize("ablation", ["corrupted", "mean", "resample", "zero"])
def test_reference_outputs(tiny: TinyModels, ablation: str) -> None:
    from circuitscope.tasks import Task

    model = tiny.hooked("gpt2")
    graph = graph_of(model)
    clean, corrupted = _tokens(5, n=4), _tokens(6, n=4)
    answer_pos = torch.tensor([6, 6, 5, 6])
    task = Task("t", ["c"] * 4, ["x"] * 4, clean, corrupted, answer_pos, torch.zeros(4, dtype=torch.long),
                torch.ones(4, dtype=torch.long))  # fmt: skip
    ref = reference_outputs(model, graph, task, ablation)  # type: ignore[arg-type]  # a parametrized str for the Literal option
    with torch.no_grad():
        corr = sender_outputs(model, graph, corrupted)
    assert ref.shape == corr.shape
    if ablation == "corrupted":
        assert torch.equal(ref, corr)
    elif ablation == "zero":
        assert not bool(ref.any())
    elif ablation == "mean":
        # position 6 only counts the three prompts that reach it
        # a masked sum / count vs mean(): another reduction order, ~1 ulp (default float32 tolerances)
        torch.testing.assert_close(ref[:, 0, 6], corr[:, [0, 1, 3], 6].mean(1))
        torch.testing.assert_close(ref[:, 2, 3], corr[:, :, 3].mean(1))
    else:  # each prompt gets another prompt of its own length; the lone length-6 prompt keeps its own
        assert torch.equal(ref[:, 2], corr[:, 2])
        for i in (0, 1, 3):
            matches = [j for j in (0, 1, 3) if torch.equal(ref[:, i], corr[:, j])]
            assert matches and matches[0] != i
    with pytest.raises(CircuitError, match="unknown ablation"):
        reference_outputs(model, graph, task, "noise")  # type: ignore[arg-type]  # the bad input under test


def test_unsupported_models_are_refused(tiny: TinyModels) -> None:
    model = tiny.hooked("bert")
    with pytest.raises(CircuitError):
        graph_of(model)
