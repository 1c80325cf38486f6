"""Causal tracing over a fact set: each fact's trace is causal_trace's, and two gloo ranks that split the facts
return what one process computes, bit for bit; ranks given different arguments are refused before any work."""

from __future__ import annotations

import os

import pytest
import torch
import transformers as tf

import circuitscope as cs
from circuitscope.analysis import FactTraceResult, causal_trace, trace_facts
from circuitscope.engine.distributed import DistributedError, process_group
from circuitscope.tasks.facts import Fact
from tests.ranks import run_ranks
from tests.tiny_models import char_tokenizer, text_llama_config

FACTS = [
    Fact("cat", "sits_on", "the {} sat on the", " mat"),
    Fact("dog", "sits_on", "a {} lay on a", " rug"),
    Fact("the bird", "sits_on", "{} sang in the", " tree"),
]


def _model() -> cs.HookedModel:
    """A 2-layer Llama on characters, the same weights in every process (seeded)."""
    tok = char_tokenizer()
    torch.manual_seed(0)
    return cs.HookedModel(tf.LlamaForCausalLM(text_llama_config(tok, initializer_range=0.4)).eval(), tok)


def _traced(kind: str, n_samples: int) -> FactTraceResult:
    return trace_facts(_model(), FACTS, kind=kind, n_samples=n_samples, window=2)  # type: ignore[arg-type]  # a str for the Literal option


def _on_ranks(kind: str) -> tuple[FactTraceResult, str]:
    """The facts traced across the ranks, then a launch given another ``n_samples`` on each rank (one spawn)."""
    with process_group():
        result = _traced(kind, 2)
        try:
            _traced("resid", 2 + int(os.environ["RANK"]))
        except DistributedError as e:
            return result, str(e)
        return result, "accepted"


def test_each_fact_is_its_causal_trace() -> None:
    result = _traced("mlp", 2)
    model = _model()
    assert [t.baseline.subject for t in result.traces] == [f.subject for f in FACTS]
    for fact, trace in zip(FACTS, result.traces, strict=True):
        alone = causal_trace(model, fact.prompt, fact.subject, kind="mlp", n_samples=2, window=2, target=fact.object[0])
        assert trace.baseline.target == fact.object[0]  # the object's first token (a character here)
        torch.testing.assert_close(trace.restored, alone.restored, atol=0, rtol=0)
    first = FACTS[0].prompt.index("cat") + 1 + 2  # BOS, then the subject's last character
    torch.testing.assert_close(
        result.subject_last_effect[0], result.traces[0].indirect_effect[:, first], atol=0, rtol=0
    )
    payload = result.to_json()
    assert payload["kind"] == "mlp" and payload["window"] == 2 and len(payload["traces"]) == 3
    with pytest.raises(cs.CircuitscopeError, match="no facts"):
        trace_facts(model, [])


@pytest.mark.slow  # two spawned processes that import torch and transformers: ~20 s on a busy 2-core machine
def test_two_ranks_split_the_facts_and_equal_one_process() -> None:
    one = _traced("resid", 2)
    on_ranks = run_ranks(_on_ranks, 2, "resid")
    for result, _ in on_ranks:  # every rank gets every fact's trace, in fact order
        assert len(result.traces) == 3
        for a, b in zip(one.traces, result.traces, strict=True):
            assert a.baseline == b.baseline
            torch.testing.assert_close(a.restored, b.restored, atol=0, rtol=0)
    assert all("n_samples: rank 0=2, rank 1=3" in message for _, message in on_ranks)
