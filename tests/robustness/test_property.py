"""Property-based: random prompts, hook names, hook returns and indices never crash the public API.

Each call either does its job (and returns the documented shape) or raises a
:class:`~circuitscope.CircuitscopeError`; any other exception type fails the test.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import circuitscope as cs
from circuitscope import CircuitscopeError
from tests.tiny_models import VOCAB, TinyModels, char_tokenizer

T = TypeVar("T")
Models = dict[str, cs.HookedModel]
FAMILIES = ("llama_gqa", "gpt2", "bert")
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def models(tiny: TinyModels) -> dict[str, cs.HookedModel]:
    """One model per family for the whole module: hypothesis runs each test body many times."""
    return {family: tiny.hooked(family, char_tokenizer()) for family in FAMILIES}


def attempt(call: Callable[[], T]) -> T | None:
    """The call's result, or None if it refused with a CircuitscopeError (any other error propagates)."""
    try:
        return call()
    except CircuitscopeError as err:
        assert str(err), "a refusal must say what is wrong"
        return None


# ---------------------------------------------------------------------------- strategies
TRICKY = ["", " ", "\n", "\x00", "<b>hi</b>", "<|endoftext|>", "<bos>", "é☃𝄞", "\u2028", "a" * 200, "{}", "\\x"]
texts = st.one_of(st.sampled_from(TRICKY), st.text(max_size=24), st.text(alphabet=string.printable, max_size=80))
prompts = st.one_of(texts, st.lists(texts, max_size=3))
families = st.sampled_from(FAMILIES)
indices = st.one_of(st.integers(-6, 6), st.integers(), st.none(), st.floats(allow_nan=True), st.text(max_size=3))


@st.composite
def token_inputs(draw: st.DrawFn) -> Any:
    """Half valid [batch, pos] ids; the rest of every rank, size, dtype and value range, or not tensors at all."""
    seed = torch.Generator().manual_seed(draw(st.integers(0, 99)))
    kind = draw(st.sampled_from(["valid", "valid", "valid", "1d", "odd", "odd", "other"]))
    if kind in ("valid", "1d"):
        shape = (draw(st.integers(1, 3)), draw(st.integers(1, 8)))
        return torch.randint(0, VOCAB, shape if kind == "valid" else shape[1:], generator=seed)
    if kind == "other":
        return draw(st.one_of(st.integers(), st.none(), st.lists(st.integers(-2, 120), max_size=4), st.floats()))
    shape = tuple(draw(st.lists(st.sampled_from([0, 1, 2, 3, 5, 65]), min_size=0, max_size=3)))
    dtype = draw(st.sampled_from([torch.long, torch.long, torch.int32, torch.float32, torch.bool, torch.uint8]))
    low, high = draw(st.sampled_from([(0, VOCAB), (0, VOCAB), (-3, 2), (VOCAB - 2, VOCAB + 3)]))
    return torch.randint(low, high, shape, generator=seed).to(dtype)


@st.composite
def masks_for(draw: st.DrawFn, tokens: Any) -> Any:
    """No mask, a valid 0/1 mask shaped like ``tokens``, or one of another shape, dtype or value."""
    kind = draw(st.sampled_from(["none", "none", "valid", "valid", "junk"]))
    if kind == "none":
        return None
    if kind == "valid" and isinstance(tokens, torch.Tensor):
        mask = torch.ones(tokens.shape, dtype=torch.long)
        if mask.ndim == 2 and mask.shape[1] > 1:
            mask[:, draw(st.integers(1, mask.shape[1] - 1)) :] = 0  # right padding
        return mask.to(draw(st.sampled_from([torch.long, torch.bool, torch.int32])))
    return draw(token_inputs())


@st.composite
def hook_names(draw: st.DrawFn, model: cs.HookedModel) -> Any:
    """Valid names, near misses (one character dropped, doubled or changed), globs, junk."""
    valid = draw(st.sampled_from(model.hook_names))
    kind = draw(st.sampled_from(["valid", "valid", "valid", "near", "glob", "junk", "nonstr"]))
    if kind == "valid":
        return valid
    if kind == "near":
        i = draw(st.integers(0, len(valid) - 1))
        how = draw(st.sampled_from(["drop", "double", "change"]))
        ch = draw(st.sampled_from(string.ascii_lowercase + "._*0123456789"))
        return {"drop": valid[:i] + valid[i + 1 :], "double": valid[:i] + valid[i] + valid[i:]}.get(
            how, valid[:i] + ch + valid[i + 1 :]
        )
    if kind == "glob":
        return draw(st.sampled_from(["blocks.*.hook_resid_post", "*", "blocks.?.attn.*", "blocks.*.nothing", "["]))
    if kind == "junk":
        return draw(texts)
    return draw(st.one_of(st.integers(), st.none(), st.lists(st.integers(), max_size=2)))


REPLACEMENTS: dict[str, Callable[[torch.Tensor], Any]] = {
    "none": lambda x: None,
    "same": lambda x: x,
    "scaled": lambda x: x * 2,
    "in_place": lambda x: x.mul_(1.0),
    "double": lambda x: x.double(),
    "half": lambda x: x.half(),
    "long": lambda x: x.long(),
    "bool": lambda x: x > 0,
    "meta": lambda x: x.to("meta"),
    "first_pos": lambda x: x[:, :1],
    "extra_dim": lambda x: x.unsqueeze(0),
    "flat": lambda x: x.flatten(),
    "zeros_3": lambda x: torch.zeros(3),
    "scalar": lambda x: x.sum(),
    "number": lambda x: 3.0,
    "list": lambda x: [x],
    "numpy": lambda x: x.detach().numpy(),
}
KEEPS = ["none", "same", "scaled", "in_place"]
"""Replacements that are valid anywhere; drawn more often so that most runs get through."""
replacements = st.sampled_from(KEEPS * 3 + sorted(set(REPLACEMENTS) - set(KEEPS)))


def check_logits(logits: torch.Tensor, batch: int, pos: int, model: cs.HookedModel) -> None:
    assert logits.shape == (batch, pos, model.cfg.d_vocab)


# ---------------------------------------------------------------------------- properties
@SETTINGS
@given(family=families, text=prompts, prepend_bos=st.sampled_from([None, True, False]))
def test_text_prompts_tokenize_and_run_or_refuse(
    models: Models, family: str, text: Any, prepend_bos: bool | None
) -> None:
    model = models[family]
    tokens = attempt(lambda: model.to_tokens(text, prepend_bos=prepend_bos))
    if tokens is not None:
        assert tokens.ndim == 2 and tokens.shape[1] >= 1 and tokens.dtype == torch.long
        assert tokens.shape[0] == (1 if isinstance(text, str) else len(text))
    logits = attempt(lambda: model(text))
    if logits is not None:
        ids = model.to_tokens(text)
        check_logits(logits, ids.shape[0], ids.shape[1], model)
    str_tokens = attempt(lambda: model.to_str_tokens(text) if isinstance(text, str) else None)
    if str_tokens is not None:
        assert len(str_tokens) == model.to_tokens(text).shape[1]


@SETTINGS
@given(data=st.data(), family=families, tokens=token_inputs())
def test_token_tensors_run_or_refuse(models: Models, data: st.DataObject, family: str, tokens: Any) -> None:
    model = models[family]
    mask = data.draw(masks_for(tokens))
    with torch.no_grad():
        logits = attempt(lambda: model(tokens, attention_mask=mask))
        if logits is not None:
            ids = tokens if tokens.ndim == 2 else tokens[None]
            check_logits(logits, ids.shape[0], ids.shape[1], model)
        result = attempt(lambda: model.run_with_cache(tokens, names="blocks.0.hook_resid_post", attention_mask=mask))
        if result is not None:
            assert result[1]["resid_post", 0].shape == (*result[1].tokens.shape, model.cfg.d_model)


@SETTINGS
@given(data=st.data(), family=families, replacement=replacements)
def test_hooks_with_any_name_and_return_run_or_refuse(
    models: Models, data: st.DataObject, family: str, replacement: str
) -> None:
    model = models[family]
    name = data.draw(hook_names(model))
    tokens = torch.randint(0, VOCAB, (2, 5), generator=torch.Generator().manual_seed(0))
    fn = REPLACEMENTS[replacement]
    with torch.no_grad():
        logits = attempt(lambda: model.run_with_hooks(tokens, fwd_hooks=[(name, lambda x, hook: fn(x))]))
        if logits is not None:
            check_logits(logits, 2, 5, model)
        got = attempt(lambda: model.run_with_cache(tokens, names=name, fwd_hooks=[(name, lambda x, hook: fn(x))]))
        if got is not None:
            for key, value in got[1].items():
                assert key in model.hook_names and value.shape[:1] in ((2,), (1,))
    assert model.active_hooks() == [], "a hook outlived its call"


@SETTINGS
@given(data=st.data(), family=families, layer=indices, head=indices, short=st.one_of(texts, st.sampled_from(
    ["resid_post", "pattern", "z", "embed", "ln_final", "q", "k", "v", "result", "mlp_out"])))  # fmt: skip
def test_indices_and_names_resolve_or_refuse(
    models: Models, data: st.DataObject, family: str, layer: Any, head: Any, short: Any
) -> None:
    model = models[family]
    refused = attempt(lambda: model.check_layer_head(layer, head) or True) is None
    if isinstance(layer, int) and (head is None or isinstance(head, int)):
        n, h = model.cfg.n_layers, model.cfg.n_heads
        assert refused == (not (-n <= layer < n and (head is None or -h <= head < h)))
    else:
        assert refused, "a layer or head that is not an integer must be refused"
    full = attempt(lambda: model.act_name(short, layer))
    if full is not None:
        assert full in model.hook_names
    plain = attempt(lambda: cs.act_name(short, layer))
    if plain is not None:
        assert isinstance(plain, str)
    name = data.draw(hook_names(model))
    point = attempt(lambda: model.hook_point(name))
    if point is not None:
        assert point.name == name


@SETTINGS
@given(data=st.data(), family=families, layer=indices)
def test_cache_lookups_return_or_refuse(models: Models, data: st.DataObject, family: str, layer: Any) -> None:
    model = models[family]
    tokens = torch.randint(0, VOCAB, (1, 4), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _, cache_ = model.run_with_cache(tokens, names="blocks.*.hook_resid_*")
    key = data.draw(
        st.one_of(
            hook_names(model),
            st.tuples(st.sampled_from(["resid_post", "resid_pre", "pattern", "nonsense"]), st.just(layer)),
            st.tuples(st.sampled_from(["resid_post", "resid_pre"]), st.integers(-2, 1)),
            st.sampled_from(["blocks.0.hook_resid_pre", "blocks.1.hook_resid_post"]),
            st.tuples(texts),
            st.integers(),
        )
    )
    value = attempt(lambda: cache_[key])
    if value is not None:
        assert value.shape == (1, 4, model.cfg.d_model)
    stacked = attempt(lambda: cache_.accumulated_resid(layer))
    if stacked is not None:
        assert stacked.tensor.shape[1:] == (1, 4, model.cfg.d_model)


@settings(SETTINGS, max_examples=30)
@given(
    data=st.data(),
    family=families,
    prompt=st.one_of(st.text(alphabet=string.ascii_lowercase + " ", max_size=12), texts, token_inputs()),
    max_new=st.one_of(st.integers(1, 6), st.integers(1, 6), st.integers(-2, 70), st.floats()),
    replacement=replacements,
)
def test_generate_returns_or_refuses(
    models: Models, data: st.DataObject, family: str, prompt: Any, max_new: Any, replacement: str
) -> None:
    model = models[family]
    hooked = data.draw(st.booleans())
    hooks = [(data.draw(hook_names(model)), lambda x, hook: REPLACEMENTS[replacement](x))] if hooked else []
    out = attempt(lambda: model.generate(prompt, max_new_tokens=max_new, hooks=hooks))
    if out is not None:
        assert out.prompt_length + max_new >= out.tokens.shape[0] > out.prompt_length
        assert out.tokens.shape[0] <= model.cfg.n_ctx
        assert isinstance(out.text, str)
    assert model.active_hooks() == []


@SETTINGS
@given(data=st.data(), replacement=replacements)
def test_backward_hooks_with_any_return_run_or_refuse(models: Models, data: st.DataObject, replacement: str) -> None:
    model = models["llama_gqa"]
    name = data.draw(hook_names(model))
    tokens = torch.randint(0, VOCAB, (2, 5), generator=torch.Generator().manual_seed(0))
    fn = REPLACEMENTS[replacement]

    def run() -> torch.Tensor:
        logits = model.run_with_hooks(tokens, bwd_hooks=[(name, lambda g, hook: fn(g))])
        logits[:, -1].sum().backward()
        return logits

    logits = attempt(run)
    if logits is not None:
        check_logits(logits, 2, 5, model)
    model.zero_grad(set_to_none=True)
    assert model.active_hooks() == []


@SETTINGS
@given(
    ids=st.one_of(
        token_inputs(), texts, st.lists(st.one_of(st.integers(-3, 200), st.floats(), st.text(max_size=2)), max_size=4)
    ),
    text=st.one_of(texts, st.integers(), st.none()),
)
def test_decoding_and_single_tokens_return_or_refuse(models: Models, ids: Any, text: Any) -> None:
    model = models["llama_gqa"]
    decoded = attempt(lambda: model.to_string(ids))
    if decoded is not None:
        assert isinstance(decoded, str | list)
    pieces = attempt(lambda: model.to_str_tokens(ids))
    if pieces is not None:
        assert all(isinstance(p, str) for p in pieces)
    single = attempt(lambda: model.to_single_token(text))
    if single is not None:
        assert model.to_string(single) != "" and 0 <= single < model.cfg.d_vocab
