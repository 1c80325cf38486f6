"""Bad inputs to the model API and to tasks: each is refused early with what is wrong and how to fix it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch

import circuitscope as cs
from circuitscope import HookNameError, ShapeError, TokenizationError, UnsupportedModelError
from circuitscope.analysis import patching
from circuitscope.tasks import Task, TaskError, load_facts, load_jsonl_task
from circuitscope.tasks.metrics import check_normalisable, normalise
from tests.tiny_models import VOCAB, TinyModels, char_tokenizer


@pytest.fixture(scope="module")
def bert(tiny: TinyModels) -> cs.HookedModel:
    return tiny.hooked("bert", char_tokenizer())


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return torch.randint(1, VOCAB, (2, 5), generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------------------- generate
@pytest.mark.parametrize("family", ["gpt2", "llama_gqa", "gemma2_softcap"])
def test_generating_past_the_context_is_refused_up_front(tiny: TinyModels, family: str) -> None:
    """GPT-2 used to die with an IndexError mid-generation and Llama to run silently past its context."""
    model = tiny.hooked(family, char_tokenizer())
    prompt = "hello world"  # BOS + 11 characters
    n, limit = 12, model.cfg.n_ctx
    assert limit == model.hf_model.config.max_position_embeddings == 64
    with pytest.raises(TokenizationError, match=rf"{n} tokens long.*{n + 60} tokens exceed the model's context of 64"):
        model.generate(prompt, max_new_tokens=60)
    with pytest.raises(TokenizationError, match=f"at most {limit - n} new tokens"):
        model.generate(prompt, max_new_tokens=limit - n + 1)
    out = model.generate(prompt, max_new_tokens=limit - n, eos_token_id=None)  # exactly at the limit: allowed
    assert out.prompt_length == n and out.tokens.shape == (limit,)
    assert model.active_hooks() == []


@pytest.mark.parametrize("max_new_tokens", [0, -1, 2.5, True, "3"])
def test_a_bad_max_new_tokens_is_refused(llama: cs.HookedModel, max_new_tokens: Any) -> None:
    with pytest.raises(TokenizationError, match="max_new_tokens must be a whole number of at least 1"):
        llama.generate("abc", max_new_tokens=max_new_tokens)


@pytest.mark.parametrize("prompt", [["abc", "def"], torch.ones(2, 3, dtype=torch.long)], ids=str)
def test_generate_takes_one_prompt(llama: cs.HookedModel, prompt: Any) -> None:
    with pytest.raises(ShapeError, match="generate takes one prompt"):
        llama.generate(prompt, max_new_tokens=2)


def test_generate_needs_a_decoder_and_a_tokenizer(tiny: TinyModels, bert: cs.HookedModel) -> None:
    with pytest.raises(UnsupportedModelError, match="causal language model"):
        bert.generate("abc", max_new_tokens=2)
    bare = tiny.hooked("llama_gqa")
    with pytest.raises(TokenizationError, match="generate decodes what it generates, so it needs a tokenizer"):
        bare.generate(torch.tensor([1, 2, 3]), max_new_tokens=2)


# ---------------------------------------------------------------------------- attention masks
@pytest.mark.parametrize("shape", [(3, 7), (2, 4), (2, 6), (1, 5), (2, 5, 1), (5,)], ids=str)
def test_an_attention_mask_of_another_shape_is_refused(
    llama: cs.HookedModel, tokens: torch.Tensor, shape: tuple[int, ...]
) -> None:
    mask = torch.ones(shape, dtype=torch.long)
    with pytest.raises(
        ShapeError, match=re.escape(f"attention_mask has shape {shape} but the tokens have shape (2, 5)")
    ):
        llama(tokens, attention_mask=mask)
    with pytest.raises(ShapeError, match="attention_mask has shape"):
        llama.run_with_cache(tokens, names="blocks.0.hook_resid_post", attention_mask=mask)


def test_an_attention_mask_that_does_not_fit_text_is_refused(llama: cs.HookedModel) -> None:
    with pytest.raises(ShapeError, match=r"tokens have shape \(1, 4\)"):
        llama("abc", attention_mask=torch.ones(1, 9, dtype=torch.long))


@pytest.mark.parametrize(
    "mask", [torch.full((2, 5), 2), torch.full((2, 5), 0.5), [[1] * 5] * 2], ids=["twos", "halves", "list"]
)
def test_an_attention_mask_that_is_not_zeros_and_ones_is_refused(
    llama: cs.HookedModel, tokens: torch.Tensor, mask: Any
) -> None:
    with pytest.raises(ShapeError, match="0s and 1s"):
        llama(tokens, attention_mask=mask)


@torch.no_grad()
def test_a_valid_attention_mask_is_used(bert: cs.HookedModel, tokens: torch.Tensor) -> None:
    """An encoder attends both ways, so a mask changes the real positions: masked = truncated."""
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 0, 0]], dtype=torch.bool)
    masked = bert(tokens, attention_mask=mask)[:, :3]
    torch.testing.assert_close(masked, bert(tokens[:, :3]), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(masked, bert(tokens)[:, :3], atol=1e-3)
    one = bert(tokens[0], attention_mask=torch.ones(5, dtype=torch.long))  # 1-d tokens take a 1-d mask
    torch.testing.assert_close(one, bert(tokens[:1]))


# ---------------------------------------------------------------------------- empty and mistyped inputs
EMPTY = [torch.zeros(1, 0, dtype=torch.long), torch.zeros(0, 5, dtype=torch.long), torch.zeros(0, dtype=torch.long)]


@pytest.mark.parametrize("family", ["gpt2", "llama_gqa", "bert"])
@pytest.mark.parametrize("empty", EMPTY, ids=["no_positions", "no_prompts", "empty_1d"])
def test_an_empty_token_tensor_is_refused(tiny: TinyModels, family: str, empty: torch.Tensor) -> None:
    model = tiny.hooked(family, char_tokenizer())
    with pytest.raises(ShapeError, match="hold no tokens; pass at least one prompt of at least one token"):
        model(empty)
    with pytest.raises(ShapeError, match="hold no tokens"):
        model.run_with_cache(empty)
    if model.cfg.causal:
        with pytest.raises(ShapeError, match="hold no tokens"):
            model.generate(empty, max_new_tokens=2)
    assert model.active_hooks() == []


def test_text_that_tokenizes_to_nothing_is_refused(llama: cs.HookedModel, bert: cs.HookedModel) -> None:
    with pytest.raises(TokenizationError, match="tokenizes to nothing; pass prepend_bos=True"):
        llama.to_tokens("", prepend_bos=False)
    assert llama.to_tokens("").tolist() == [[llama.tok.bos_token_id]]  # BOS alone is a prompt
    with pytest.raises(TokenizationError, match=r"tokenizes to nothing; pass more text$"):
        bert("")  # an encoder has no prepend_bos to offer
    with pytest.raises(TokenizationError, match="no text given"):
        llama([])


@pytest.mark.parametrize("bad", [3, 2.5, None, [1, 2, 3], ["abc", 3], {"text": "abc"}], ids=str)
def test_inputs_that_are_neither_text_nor_token_ids_are_refused(llama: cs.HookedModel, bad: Any) -> None:
    with pytest.raises(TokenizationError, match="tensor"):
        llama(bad)


@pytest.mark.parametrize("bad", [3, None, b"abc", ["a", None]], ids=str)
def test_to_tokens_wants_text(llama: cs.HookedModel, bad: Any) -> None:
    with pytest.raises(TokenizationError, match="expected text"):
        llama.to_tokens(bad)


@pytest.mark.parametrize("bad", [3, None, ["a"]], ids=str)
def test_to_single_token_wants_text(llama: cs.HookedModel, bad: Any) -> None:
    with pytest.raises(TokenizationError, match="a str such as ' Mary'"):
        llama.to_single_token(bad)


@pytest.mark.parametrize("bad", ["abc", [-1], 2.5, [1.0, 2.0], None, torch.zeros(1, 1, 1, dtype=torch.long)], ids=str)
def test_decoding_wants_token_ids(llama: cs.HookedModel, bad: Any) -> None:
    with pytest.raises(TokenizationError, match=r"token ids|one sequence"):
        llama.to_string(bad)
    if not isinstance(bad, str):  # to_str_tokens tokenizes text itself
        with pytest.raises(TokenizationError, match=r"token ids|one sequence"):
            llama.to_str_tokens(bad)
    assert llama.to_string([]) == "" and llama.to_str_tokens([]) == []


# ---------------------------------------------------------------------------- indices, names, cache keys
@pytest.mark.parametrize(("layer", "head"), [(1.0, None), ("0", None), (None, None), (0, 1.5), (0, "1"), (True, 0)])
def test_indices_that_are_not_integers_are_refused(llama: cs.HookedModel, layer: Any, head: Any) -> None:
    with pytest.raises(ShapeError, match="must be an integer index"):
        llama.check_layer_head(layer, head)


@pytest.mark.parametrize(("name", "layer"), [(3, None), (None, 0), ("resid_post", 1.5), ("resid_post", "1")])
def test_act_name_refuses_what_is_not_a_name_and_a_layer(llama: cs.HookedModel, name: Any, layer: Any) -> None:
    with pytest.raises(HookNameError):
        cs.act_name(name, layer)
    with pytest.raises(cs.CircuitscopeError):
        llama.act_name(name, layer)


@pytest.mark.parametrize("names", [5, 2.5, object()], ids=["int", "float", "object"])
def test_a_name_filter_of_the_wrong_type_is_refused(llama: cs.HookedModel, tokens: torch.Tensor, names: Any) -> None:
    with pytest.raises(HookNameError, match="names must be a hook name, a glob pattern"):
        llama.run_with_cache(tokens, names=names)


@pytest.mark.parametrize(
    "key", [3, None, ("resid_post",), ("resid_post", 0, 1), ("resid_post", "0"), ("resid_post", 0.0)], ids=str
)
def test_cache_keys_of_the_wrong_form_are_refused(llama: cs.HookedModel, tokens: torch.Tensor, key: Any) -> None:
    with torch.no_grad():
        _, cache = llama.run_with_cache(tokens, names="blocks.*.hook_resid_*")
    with pytest.raises(cs.CircuitscopeError, match=r"cache\['resid_post', 0\]|must be an integer"):
        cache[key]
    assert cache["resid_post", 0].shape == (2, 5, llama.cfg.d_model)
    with pytest.raises(ShapeError, match="selects no residual stream"):
        cache.accumulated_resid(0)


# ---------------------------------------------------------------------------- tasks
def _pairs_file(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


PAIR = {"clean": "the cat", "corrupted": "the dog", "correct": "a", "incorrect": "b"}


def test_a_task_file_that_is_not_utf8_names_the_file_and_line(llama: cs.HookedModel, tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(
        json.dumps(PAIR).encode()
        + b"\n"
        + json.dumps({**PAIR, "clean": "caf\xe9"}, ensure_ascii=False).encode("latin-1")
    )
    with pytest.raises(TaskError, match=r"latin1\.jsonl:2: not UTF-8 text \(byte 0xe9 at column 15\); save the file"):
        load_jsonl_task(llama, path)
    facts = tmp_path / "facts.jsonl"
    facts.write_bytes(b'{"format": "circuitscope-facts", "version": 1}\n\xff\n')
    with pytest.raises(TaskError, match=r"facts\.jsonl:2: not UTF-8"):
        load_facts(facts)
    with pytest.raises(TaskError, match="is a folder"):
        load_jsonl_task(llama, tmp_path)


def test_a_task_file_with_a_bom_or_unicode_line_separators_loads(llama: cs.HookedModel, tmp_path: Path) -> None:
    path = _pairs_file(tmp_path / "u.jsonl", [PAIR, {**PAIR, "clean": "ab\u2028c", "corrupted": "ab\u2028d"}])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    task = load_jsonl_task(llama, path)
    assert len(task) == 2 and task.clean_prompts[1] == "ab\u2028c"


@pytest.fixture(scope="module")
def task(llama: cs.HookedModel) -> Task:
    return Task.from_pairs(llama, ["the cat", "a dog", "one"], ["the cow", "a pig", "two"], ["a"] * 3, ["b"] * 3)


@pytest.mark.parametrize(
    ("index", "message"),
    [
        ([], "selects none"),
        (slice(5, 9), "selects none"),
        (slice(2, 1), "selects none"),
        ([0, 3], r"has 3 pairs.*got \[3\]"),
        ([-4], r"got \[-4\]"),
        (["0"], r"got \['0'\]"),
        ([1.0], r"got \[1\.0\]"),
        (1, "a slice or a list of row numbers"),
    ],
    ids=str,
)
def test_an_empty_or_out_of_range_subset_is_refused(task: Task, index: Any, message: str) -> None:
    with pytest.raises(TaskError, match=message):
        task.subset(index)


def test_negative_and_tensor_subsets_pick_the_rows(task: Task) -> None:
    last = task.subset([-1])
    assert last.clean_prompts == ["one"] and last.seq_len == 4
    assert task.subset(torch.tensor([2, 0])).clean_prompts == ["one", "the cat"]


@pytest.mark.parametrize(("correct", "incorrect"), [([7], ["b"]), (["a"], [None]), ([b"a"], ["b"])], ids=str)
def test_answers_must_be_text(llama: cs.HookedModel, correct: list[Any], incorrect: list[Any]) -> None:
    """Answers are documented as text that is one token; a token id is refused with how to convert it."""
    with pytest.raises(TaskError, match=r"pair 0: answers are text that is one token.*model\.to_string\(token_id\)"):
        Task.from_pairs(llama, ["the cat"], ["the dog"], correct, incorrect)


def test_prompts_must_be_text(llama: cs.HookedModel) -> None:
    with pytest.raises(TaskError, match="pair 1: prompt expected text"):
        Task.from_pairs(llama, ["the cat", 5], ["the dog", "x"], ["a", "a"], ["b", "b"])  # type: ignore[list-item]  # the bad input under test


def test_the_same_correct_and_incorrect_answer_is_refused_for_logit_diff(llama: cs.HookedModel) -> None:
    with pytest.raises(TaskError, match="pair 0: the correct and incorrect answers are the same token"):
        Task.from_pairs(llama, ["the cat"], ["the dog"], ["a"], ["a"])
    assert len(Task.from_pairs(llama, ["the cat"], ["the dog"], ["a"], ["a"], metric="prob")) == 1


@pytest.mark.parametrize(
    ("clean", "corrupted"), [(1.0, 1.0), (2.5, 2.5 + 1e-6), (0.0, 1e-9), (float("nan"), 1.0), (1.0, float("inf"))]
)
def test_clean_and_corrupted_scores_that_cannot_normalise_are_refused(clean: float, corrupted: float) -> None:
    with pytest.raises(TaskError, match=r"normalised score|non-finite"):
        check_normalisable(clean, corrupted)
    with pytest.raises(TaskError):
        normalise(torch.tensor([0.5]), clean, corrupted)


def test_distinct_scores_normalise() -> None:
    assert normalise(torch.tensor([1.0, 2.0, 3.0]), 3.0, 1.0).tolist() == [0.0, 0.5, 1.0]
    check_normalisable(0.0, 1e-3)  # small but real: allowed


def test_patching_a_task_whose_corruption_changes_nothing_is_refused_before_the_sweep(
    llama: cs.HookedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    same = Task.from_pairs(llama, ["the cat", "a dog"], ["the cat", "a dog"], ["a", "a"], ["b", "b"])

    def no_sweep(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the patching sweep ran although its scores cannot be normalised")

    monkeypatch.setattr(patching.BlockReplay, "run", no_sweep)
    with pytest.raises(TaskError, match="the clean and corrupted runs score the same on logit_diff"):
        patching.activation_patching(llama, same, "head_out")
    assert llama.active_hooks() == []
