"""Causal tracing on tiny models: restoring everything gives the clean run, nothing the corrupted one,
and the batched traces equal one-forward-per-restoration loops written here from the definition."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import transformers as tf

import circuitscope as cs
from circuitscope.analysis.tracing import (
    TraceConfig,
    _prepare,
    _Restore,
    _restored_probs,
    causal_trace,
    embedding_noise,
    embedding_std,
    subject_span,
    trace_heads,
    trace_neurons,
)
from circuitscope.core.replay import BlockReplay
from circuitscope.errors import ShapeError, TokenizationError
from circuitscope.report.tracing import plot_heads, plot_neurons, plot_trace
from circuitscope.tasks.facts import Fact, load_facts
from circuitscope.tasks.task import TaskError
from tests.tiny_models import TinyModels, char_tokenizer, text_llama_config

PROMPT = "the cat sat on the mat"
SUBJECT = "cat"  # tokens 5..7 (BOS, 't', 'h', 'e', ' ', 'c', 'a', 't', ...)
WINDOW_HOOK = {"mlp": "hook_mlp_out", "attn": "hook_attn_out"}


@pytest.fixture(scope="module")
def model() -> cs.HookedModel:
    """A 4-layer Llama on characters, initialised large enough that the predictions are peaked."""
    tok = char_tokenizer()
    torch.manual_seed(0)
    config = text_llama_config(tok, num_hidden_layers=4, initializer_range=0.4)
    return cs.HookedModel(tf.LlamaForCausalLM(config).eval(), tok)


def _naive(
    model: cs.HookedModel,
    tokens: torch.Tensor,
    span: tuple[int, int],
    target: int,
    restore: list[tuple[str, Callable[[torch.Tensor, torch.Tensor], None]]],
    *,
    samples: int = 3,
    seed: int = 0,
    scale: float = 3.0,
) -> float:
    """One full forward pass of the noised prompt with the given clean activations written back."""
    noise = embedding_noise(model, span[1] - span[0], n_samples=samples, std=scale * embedding_std(model), seed=seed)
    _, clean = model.run_with_cache(tokens[None])

    def add_noise(x: torch.Tensor, hook: cs.HookPoint) -> torch.Tensor:
        x = x.clone()
        x[:, span[0] : span[1]] += noise
        return x

    def make(name: str, edit: Callable[[torch.Tensor, torch.Tensor], None]):
        def fn(x: torch.Tensor, hook: cs.HookPoint) -> torch.Tensor:
            x = x.clone()
            edit(x, clean[name])
            return x

        return fn

    hooks = [("hook_embed", add_noise)] + [(name, make(name, edit)) for name, edit in restore]
    with torch.no_grad():
        logits = model.run_with_hooks(tokens[None].repeat(samples, 1), fwd_hooks=hooks)
    return float(logits[:, -1].softmax(-1)[:, target].mean())


def _at(p: int, index: int | None = None) -> Callable[[torch.Tensor, torch.Tensor], None]:
    def edit(x: torch.Tensor, clean: torch.Tensor) -> None:
        if index is None:
            x[:, p] = clean[0, p]
        else:
            x[:, p, index] = clean[0, p, index]

    return edit


# ------------------------------------------------------------------------------------------- subject and inputs


def test_subject_span_covers_the_subject_tokens_with_or_without_the_leading_space(model: cs.HookedModel) -> None:
    tokens = model.to_tokens(PROMPT)[0]
    assert subject_span(model, tokens, "cat") == (5, 8)
    assert subject_span(model, tokens, " cat") == (4, 8)
    assert subject_span(model, tokens, "the mat") == (16, 23)
    assert subject_span(model, tokens, "at s") == (6, 10)  # a match inside tokens is widened to whole tokens


def test_a_subject_not_in_the_prompt_is_a_clear_error(model: cs.HookedModel) -> None:
    with pytest.raises(TokenizationError, match=r"subject 'dog' does not occur in the prompt.*'c', 'a', 't'"):
        causal_trace(model, PROMPT, "dog", n_samples=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": "   "}, "prompt is empty"),
        ({"window": 0}, "window must be"),
        ({"n_samples": 0}, "n_samples must be"),
        ({"corruption": "blur"}, "unknown corruption 'blur'"),
        ({"kind": "heads"}, "unknown trace kind 'heads'"),
        ({"noise_scale": float("nan")}, "noise_scale"),
        ({"target": " dog"}, "not a single token"),
        ({"subject": (3, 99)}, "subject span"),
        ({"corruption": "resample", "subjects": ["horse", "goat"]}, "no replacement subject has the token length"),
    ],
)
def test_bad_input_is_a_clear_error(model: cs.HookedModel, kwargs: dict, message: str) -> None:
    args = {"prompt": PROMPT, "subject": SUBJECT, "n_samples": 2} | kwargs
    with pytest.raises(cs.CircuitscopeError, match=message):
        causal_trace(model, **args)


def test_bad_head_and_neuron_options(model: cs.HookedModel) -> None:
    with pytest.raises(ShapeError, match="at must be"):
        trace_heads(model, PROMPT, SUBJECT, at="first", n_samples=1)  # type: ignore[arg-type]  # the bad input under test
    with pytest.raises(ShapeError, match="out of range"):
        trace_heads(model, PROMPT, SUBJECT, layers=[9], n_samples=1)
    with pytest.raises(ShapeError, match="neurons must be"):
        trace_neurons(model, PROMPT, SUBJECT, layer=1, neurons=[48], n_samples=1)


def test_embedding_std_is_in_the_units_the_model_sees(tiny: TinyModels) -> None:
    gpt2 = tiny.hooked("gpt2")
    assert embedding_std(gpt2) == pytest.approx(float(gpt2.W_E.detach().std()), rel=1e-5)
    gemma3 = tiny.hooked("gemma3")  # scales its embeddings by sqrt(d_model) inside the module
    assert embedding_std(gemma3) == pytest.approx(float(gemma3.W_E.detach().std()) * 32**0.5, rel=1e-5)


def test_noise_is_reproducible_from_the_seed(model: cs.HookedModel) -> None:
    a = embedding_noise(model, 3, n_samples=4, std=2.0, seed=7)
    torch.testing.assert_close(a, embedding_noise(model, 3, n_samples=4, std=2.0, seed=7), rtol=0, atol=0)
    assert not torch.equal(a, embedding_noise(model, 3, n_samples=4, std=2.0, seed=8))
    assert float(a.std()) == pytest.approx(2.0, rel=0.2)
    one = causal_trace(model, PROMPT, SUBJECT, n_samples=2, seed=3)
    two = causal_trace(model, PROMPT, SUBJECT, n_samples=2, seed=3)
    other = causal_trace(model, PROMPT, SUBJECT, n_samples=2, seed=4)
    torch.testing.assert_close(one.restored, two.restored, rtol=0, atol=0)
    assert one.baseline.corrupted_probs == two.baseline.corrupted_probs != other.baseline.corrupted_probs


# ------------------------------------------------------------------------------------------- restore all / nothing


def test_restoring_everything_gives_the_clean_run_and_nothing_the_corrupted_run(model: cs.HookedModel) -> None:
    n, seq = model.cfg.n_layers, model.to_tokens(PROMPT).shape[1]
    names = [f"blocks.{la}.hook_resid_post" for la in range(n)]
    setup = _prepare(model, PROMPT, SUBJECT, TraceConfig(n_samples=3, batch_size=4), None, names)
    everything = [_Restore(la, "hook_resid_post", tuple(range(seq))) for la in range(n)]
    groups = [[], everything[:1], everything[-1:], everything, [_Restore(n - 1, "hook_resid_post", (seq - 1,))]]
    probs = _restored_probs(setup, groups, "test")
    base = setup.baseline
    assert base.clean_prob > 0.2 and abs(base.clean_prob - base.corrupted_prob) > 0.05  # the corruption matters
    assert float(probs[0]) == pytest.approx(base.corrupted_prob, abs=1e-7)
    for value in probs[1:].tolist():
        assert value == pytest.approx(base.clean_prob, abs=1e-6)
    # the clean probability is the model's own forward pass
    with torch.no_grad():
        logits = model(model.to_tokens(PROMPT))
    assert base.clean_prob == pytest.approx(float(logits[0, -1].softmax(-1)[base.target_id]), abs=1e-6)
    assert base.target_id == int(logits[0, -1].argmax())


def test_the_trace_shows_clean_at_the_final_state_and_zero_effect_before_the_subject(model: cs.HookedModel) -> None:
    result = causal_trace(model, PROMPT, SUBJECT, n_samples=3)
    base = result.baseline
    assert result.restored.shape == (4, 23)
    assert float(result.restored[-1, -1]) == pytest.approx(base.clean_prob, abs=1e-6)
    assert torch.all(result.indirect_effect[:, :5] == 0)
    torch.testing.assert_close(result.indirect_effect, result.restored - base.corrupted_prob, atol=0, rtol=0)
    corrupted = _naive(model, model.to_tokens(PROMPT)[0], (5, 8), base.target_id, [])
    assert base.corrupted_prob == pytest.approx(corrupted, abs=1e-6)
    assert base.noise_std == pytest.approx(3 * embedding_std(model))


# ------------------------------------------------------------------------------------------- batched = naive


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["resid", "mlp", "attn"])
def test_batched_trace_equals_the_naive_loop(model: cs.HookedModel, kind: str) -> None:
    window = 3
    result = causal_trace(model, PROMPT, SUBJECT, kind=kind, window=window, n_samples=3, batch_size=7)  # type: ignore[arg-type]  # a parametrized str for the Literal option
    tokens, target = model.to_tokens(PROMPT)[0], result.baseline.target_id
    n = model.cfg.n_layers
    expected = torch.empty(n, len(tokens))
    for la in range(n):
        for p in range(len(tokens)):
            if kind == "resid":
                restore = [(f"blocks.{la}.hook_resid_post", _at(p))]
            else:
                lo, hi = max(0, la - window // 2), min(n, la - (-window // 2))
                restore = [(f"blocks.{w}.{WINDOW_HOOK[kind]}", _at(p)) for w in range(lo, hi)]
            expected[la, p] = _naive(model, tokens, (5, 8), target, restore)
    # batched restorations vs one naive run per site (_naive): float32 rounding of probabilities (measured <=8e-7)
    torch.testing.assert_close(result.restored, expected, atol=2e-6, rtol=1e-5)
    assert float(result.indirect_effect.abs().max()) > 0.01  # restorations do something


def test_batched_trace_equals_the_naive_loop_on_gpt2_with_token_ids(tiny: TinyModels) -> None:
    gpt2 = tiny.hooked("gpt2")  # learned positions, Conv1D weights, no tokenizer
    tokens = torch.tensor([5, 17, 42, 9, 33, 61, 2, 70])
    result = causal_trace(gpt2, tokens, (2, 4), n_samples=2, batch_size=5, noise_scale=5.0)
    assert result.baseline.subject_range == (2, 4) and result.baseline.tokens[2] == "42"
    expected = torch.empty(2, 8)
    for la in range(2):
        for p in range(8):
            restore = [(f"blocks.{la}.hook_resid_post", _at(p))]
            expected[la, p] = _naive(gpt2, tokens, (2, 4), result.baseline.target_id, restore, samples=2, scale=5.0)
    # batched restorations vs one naive run per site (_naive): float32 rounding of probabilities (measured <=8e-7)
    torch.testing.assert_close(result.restored, expected, atol=2e-6, rtol=1e-5)
    neurons = trace_neurons(gpt2, tokens, (2, 4), layer=0, n_samples=2, noise_scale=5.0, candidates=10)
    assert len(neurons.neurons) == 10 and len(set(neurons.neurons)) == 10


@pytest.mark.parametrize("family", ["gpt2", "llama_gqa", "gemma3", "bamba"])
def test_the_trace_equals_one_full_forward_per_restoration_on_each_family(tiny: TinyModels, family: str) -> None:
    # gpt2: learned positions; llama_gqa: rotary, grouped-query attention; gemma3: a sliding window of 4 tokens,
    # shorter than the prompt; bamba: state-space layers, where every position is computed (no key/value reuse)
    model = tiny.hooked(family)
    tokens = torch.tensor([5, 17, 42, 9, 33, 61, 2, 70, 11, 23])
    n, seq = model.cfg.n_layers, len(tokens)
    assert BlockReplay(model, tokens[None], keep_prefix=True).reuses_prefix == (family != "bamba")
    attention = [la for la in range(n) if la not in model.cfg.mixer_layers]
    for kind in ("resid", "mlp", "attn") if len(attention) == n else ("resid", "mlp"):
        result = causal_trace(model, tokens, (2, 4), kind=kind, window=2, n_samples=2, batch_size=6, noise_scale=5.0)  # type: ignore[arg-type]  # a str from the loop for the Literal option
        expected = torch.empty(n, seq)
        for la in range(n):
            for p in range(seq):
                if kind == "resid":
                    restore = [(f"blocks.{la}.hook_resid_post", _at(p))]
                else:
                    lo, hi = max(0, la - 1), min(n, la + 1)
                    restore = [(f"blocks.{w}.{WINDOW_HOOK[kind]}", _at(p)) for w in range(lo, hi)]
                expected[la, p] = _naive(
                    model, tokens, (2, 4), result.baseline.target_id, restore, samples=2, scale=5.0
                )
        # the rows that skip tokens and layers vs one full forward per site: float32 rounding (measured <=8e-7)
        torch.testing.assert_close(result.restored, expected, atol=2e-6, rtol=1e-5)
        if kind == "resid":  # restorations do something (50x the tolerance; the tiny bamba's windows barely do)
            assert float(result.indirect_effect.abs().max()) > 1e-4
    heads = trace_heads(model, tokens, (2, 4), at="subject_last", layers=attention, n_samples=2, noise_scale=5.0)
    expected = torch.tensor(
        [
            [_naive(model, tokens, (2, 4), heads.baseline.target_id, [(f"blocks.{la}.attn.hook_z", _at(3, h))],
                    samples=2, scale=5.0) for h in range(model.cfg.n_heads)]
            for la in attention
        ]
    )  # fmt: skip
    torch.testing.assert_close(heads.restored[attention], expected, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("at", ["subject_last", "all"])
def test_head_trace_equals_the_naive_loop(model: cs.HookedModel, at: str) -> None:
    result = trace_heads(model, PROMPT, SUBJECT, at=at, n_samples=3, batch_size=5)  # type: ignore[arg-type]  # a parametrized str for the Literal option
    tokens, target = model.to_tokens(PROMPT)[0], result.baseline.target_id
    positions = [7] if at == "subject_last" else list(range(len(tokens)))
    assert result.positions == positions
    expected = torch.empty(4, 4)
    for la in range(4):
        for h in range(4):
            restore = [(f"blocks.{la}.attn.hook_z", _at(p, h)) for p in positions]
            expected[la, h] = _naive(model, tokens, (5, 8), target, restore)
    # batched restorations vs one naive run per site (_naive): float32 rounding of probabilities (measured <=8e-7)
    torch.testing.assert_close(result.restored, expected, atol=2e-6, rtol=1e-5)
    top = result.top(3)
    assert top[0][2] == pytest.approx(float(result.indirect_effect.max()))


@pytest.mark.slow
def test_neuron_trace_equals_the_naive_loop_and_ranks_the_top(model: cs.HookedModel) -> None:
    result = trace_neurons(model, PROMPT, SUBJECT, layer=1, top_k=5, n_samples=3, batch_size=20)
    tokens, target = model.to_tokens(PROMPT)[0], result.baseline.target_id
    assert result.neurons == list(range(48)) and result.positions == [7]
    expected = torch.tensor(
        [_naive(model, tokens, (5, 8), target, [("blocks.1.mlp.hook_post", _at(7, n))]) for n in range(48)]
    )
    # batched restorations vs one naive run per site (_naive): float32 rounding of probabilities (measured <=8e-7)
    torch.testing.assert_close(result.restored, expected, atol=2e-6, rtol=1e-5)
    effect = expected - result.baseline.corrupted_prob
    assert [n for n, _ in result.top] == effect.topk(5).indices.tolist()
    chosen = trace_neurons(model, PROMPT, SUBJECT, layer=1, neurons=[3, 9, 40], n_samples=3)
    assert chosen.neurons == [3, 9, 40]
    # batched restorations vs one naive run per site (_naive): float32 rounding of probabilities (measured <=8e-7)
    torch.testing.assert_close(chosen.restored, expected[[3, 9, 40]], atol=2e-6, rtol=1e-5)
    few = trace_neurons(model, PROMPT, SUBJECT, layer=1, candidates=6, n_samples=3)
    assert len(few.neurons) == 6
    # batched restorations vs one naive run per site (_naive): float32 rounding of probabilities (measured <=8e-7)
    torch.testing.assert_close(few.restored, expected[few.neurons], atol=2e-6, rtol=1e-5)


# ------------------------------------------------------------------------------------------- resampling


def test_resampling_replaces_the_subject_by_subjects_of_the_same_length(model: cs.HookedModel) -> None:
    result = causal_trace(
        model, PROMPT, SUBJECT, corruption="resample", subjects=["dog", "horse", "cow", "cat", "pig"], n_samples=5
    )
    base = result.baseline
    assert sorted(base.replacement_subjects) == ["cow", "dog", "pig"] and base.noise_std is None
    with torch.no_grad():
        for other, p in zip(base.replacement_subjects, base.corrupted_probs, strict=True):
            logits = model(model.to_tokens(PROMPT.replace("cat", other)))
            assert p == pytest.approx(float(logits[0, -1].softmax(-1)[base.target_id]), abs=1e-6)
    assert float(result.restored[-1, -1]) == pytest.approx(base.clean_prob, abs=1e-6)


# ------------------------------------------------------------------------------------------- results and plots


def test_results_serialise_and_plot(model: cs.HookedModel) -> None:
    result = causal_trace(model, PROMPT, SUBJECT, kind="mlp", window=2, n_samples=2)
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["kind"] == "mlp" and payload["window"] == 2 and payload["subject_range"] == [5, 8]
    assert torch.equal(torch.tensor(payload["restored"]), result.restored)  # float32 -> JSON -> float32 is exact
    fig = plot_trace(result)
    heat = fig.data[0]
    assert len(heat.z) == 23 and len(heat.z[0]) == 4  # tokens down, layers across
    assert heat.y[5] == "5 'c'*" and heat.y[4] == "4 ' '"
    heads = trace_heads(model, PROMPT, SUBJECT, layers=[1], n_samples=2)
    assert torch.isnan(heads.restored[0]).all() and not torch.isnan(heads.restored[1]).any()
    assert plot_heads(heads).data[0].z[0] == [None] * 4
    json.dumps(heads.to_dict(), allow_nan=True)
    neurons = trace_neurons(model, PROMPT, SUBJECT, layer=0, top_k=3, n_samples=2)
    assert list(plot_neurons(neurons).data[0].x) == [f"N{n}" for n, _ in neurons.top]
    assert json.loads(json.dumps(neurons.to_dict()))["top"][0]["neuron"] == neurons.top[0][0]


# ------------------------------------------------------------------------------------------- the fact set


def test_the_shipped_facts_load_and_hold_their_subject() -> None:
    facts = load_facts()
    assert 30 <= len(facts) <= 100
    assert facts[0] == Fact("The Eiffel Tower", "located_in_city", "{} is located in the city of", " Paris")
    for f in facts:
        assert f.subject in f.prompt and f.object.startswith(" ") and "{}" not in f.prompt


# same shape as evals' file checks (write a bad line, expect the error): another loader, another format
def test_fact_files_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "facts.jsonl"
    path.write_text('{"format": "circuitscope-facts", "version": 1}\n{"subject": "A", "relation": "r", '
                    '"template": "{} is", "object": " b"}\n')  # fmt: skip
    assert load_facts(path) == [Fact("A", "r", "{} is", " b")]
    path.write_text('{"format": "circuitscope-facts", "version": 2}\n')
    with pytest.raises(TaskError, match="newer"):
        load_facts(path)
    path.write_text('{"subject": "A"}\n')
    with pytest.raises(TaskError, match="header"):
        load_facts(path)
    path.write_text('{"format": "circuitscope-facts", "version": 1}\n{"subject": "A", "object": " b"}\n')
    with pytest.raises(TaskError, match=":2: expected an object"):
        load_facts(path)
    with pytest.raises(TaskError, match="does not exist"):
        load_facts(tmp_path / "missing.jsonl")


def test_progress_is_reported_through_the_callback(model: cs.HookedModel) -> None:
    calls: list[tuple[str, int, int]] = []
    causal_trace(model, PROMPT, SUBJECT, n_samples=2, batch_size=20, on_progress=lambda *a: calls.append(a))
    # 4 layers x 18 positions from the subject on = 72 restorations, of which the last layer's output matters at
    # the last token only: 3 x 18 + 1 = 55 run, 10 per pass (20 rows / 2 samples)
    assert calls == [("causal trace (resid)", i, 6) for i in range(7)]
