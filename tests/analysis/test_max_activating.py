"""Max-activating examples equal a brute-force scan of every position; ties, short corpora, texts, HTML."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

import circuitscope as cs
from circuitscope.analysis._max_activating import (
    Unit,
    activations_of,
    max_activating,
)
from circuitscope.errors import ShapeError
from circuitscope.report.max_activating import example_html, max_activating_html
from circuitscope.toy.model import build_toy

VOCAB = 30


@pytest.fixture(scope="module")
def model() -> cs.HookedModel:
    return cs.HookedModel(
        build_toy(seed=0, d_vocab=VOCAB, n_ctx=24, d_model=16, n_layers=2, n_heads=2, d_mlp=12, initializer_range=0.3)
    )


def _brute_force(model: cs.HookedModel, tokens: torch.Tensor, unit: Unit, k: int) -> list[tuple[int, int, float]]:
    """Every position's activation from one forward pass each, sorted by value (ties: corpus order)."""
    rows = []
    for d in range(tokens.shape[0]):
        values = activations_of(model, tokens[d : d + 1], unit)[0]
        rows += [(d, p, float(v)) for p, v in enumerate(values)]
    rows.sort(key=lambda r: (-r[2], r[0], r[1]))
    return rows[:k]


def test_equals_brute_force(model: cs.HookedModel) -> None:
    tokens = torch.randint(0, VOCAB, (7, 20), generator=torch.Generator().manual_seed(0))
    neurons, heads = [(0, 3), (1, 11)], [(0, 1), (1, 0)]
    calls: list[tuple[str, int, int]] = []
    result = max_activating(
        model,
        tokens,
        neurons,
        heads,
        k=6,
        context=(3, 2),
        batch_size=3,
        on_progress=lambda *call: calls.append(call),
    )
    assert calls == [("max-activating examples", i, 3) for i in range(4)]
    assert result.n_positions == 7 * 20
    assert [u.label for u in result.units] == ["L0N3", "L1N11", "L0H1", "L1H0"]
    for unit in result.units:
        expected = _brute_force(model, tokens, unit, 6)
        got = result[unit]
        assert [(e.doc, e.pos) for e in got] == [(d, p) for d, p, _ in expected]
        assert [e.activation for e in got] == pytest.approx([v for _, _, v in expected], rel=1e-5, abs=1e-6)
        for e in got:
            lo = max(0, e.pos - 3)
            assert e.context == [str(int(t)) for t in tokens[e.doc, lo : e.pos + 3]]
            assert e.context[e.highlight] == str(int(tokens[e.doc, e.pos]))
    # the head activation is the norm of the head's hook_result
    _, cache = model.run_with_cache(tokens[:1], names="blocks.1.attn.hook_result")
    top = result["L1H0"][0]
    if top.doc == 0:
        assert top.activation == pytest.approx(
            float(cache["blocks.1.attn.hook_result"][0, top.pos, 0].norm()), rel=1e-5
        )
    assert set(result.to_dict()["units"]) == {"L0N3", "L1N11", "L0H1", "L1H0"}


def test_ties_and_k_larger_than_the_corpus(model: cs.HookedModel) -> None:
    row = torch.randint(0, VOCAB, (1, 5), generator=torch.Generator().manual_seed(1))
    tokens = row.repeat(3, 1)  # three identical documents: every value occurs three times
    result = max_activating(model, tokens, neurons=[(1, 2)], k=100, batch_size=2)
    got = result["L1N2"]
    assert len(got) == 15  # all positions, no more
    values = [e.activation for e in got]
    assert values == sorted(values, reverse=True)
    # equal values keep corpus order: the three copies of one position come out doc 0, 1, 2
    for i in range(0, 15, 3):
        assert [e.doc for e in got[i : i + 3]] == [0, 1, 2]
        assert len({e.pos for e in got[i : i + 3]}) == 1
    assert [(e.doc, e.pos) for e in got] == [
        (d, p) for d, p, _ in _brute_force(model, tokens, Unit("neuron", 1, 2), 15)
    ]


def _word_model() -> cs.HookedModel:
    words = ["<pad>", "<bos>", "<unk>"] + [f"w{i}" for i in range(VOCAB - 3)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", pad_token="<pad>", unk_token="<unk>")
    hf = build_toy(seed=0, d_vocab=VOCAB, n_ctx=24, d_model=16, n_layers=2, n_heads=2, d_mlp=12, initializer_range=0.3)
    return cs.HookedModel(hf, hf_tok)


def test_texts_are_cut_into_bos_windows() -> None:
    model = _word_model()
    gen = torch.Generator().manual_seed(2)
    texts = [" ".join(f"w{int(i)}" for i in torch.randint(0, VOCAB - 3, (n,), generator=gen)) for n in (13, 4, 9)]
    unit = Unit("neuron", 1, 5)
    result = max_activating(model, texts, neurons=[(1, 5)], k=50, window=6, batch_size=2)
    assert result.n_positions == 13 + 4 + 9  # BOS never scored
    # reference: each window of 5 words run as [BOS, words] on its own
    expected = []
    for d, text in enumerate(texts):
        ids = model.tok.encode(text, prepend_bos=False)
        for start in range(0, len(ids), 5):
            piece = torch.tensor([[1, *ids[start : start + 5]]])
            values = activations_of(model, piece, unit)[0, 1:]
            expected += [(d, start + i, float(v)) for i, v in enumerate(values)]
    expected.sort(key=lambda r: (-r[2], r[0], r[1]))
    got = result["L1N5"]
    assert [(e.doc, e.pos) for e in got] == [(d, p) for d, p, _ in expected]
    assert [e.activation for e in got] == pytest.approx([v for _, _, v in expected], rel=1e-5, abs=1e-6)
    words = texts[got[0].doc].split()
    assert got[0].context[got[0].highlight] == words[got[0].pos]
    snippet = max_activating_html(result)
    assert "<h3>L1N5</h3>" in snippet and snippet.count("<tr>") == 1 + 26
    assert "font-weight:600" in example_html(got[0])


def test_bad_input(model: cs.HookedModel) -> None:
    tokens = torch.zeros(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="no units"):
        max_activating(model, tokens)
    with pytest.raises(ShapeError, match="out of range"):
        max_activating(model, tokens, neurons=[(0, 99)])
    with pytest.raises(ShapeError, match="out of range"):
        max_activating(model, tokens, heads=[(5, 0)])
    with pytest.raises(ShapeError, match="n_docs, pos"):
        max_activating(model, torch.zeros(4, dtype=torch.long), heads=[(0, 0)])
