"""Bad hooks: replacements of another dtype, device or shape, non-tensors, malformed hook lists.

Each is refused with an error naming the hook and what it expected, and no hook outlives the call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

import circuitscope as cs
from circuitscope import HookError, HookNameError, ShapeError
from tests.tiny_models import VOCAB

HOOKS = ["blocks.0.hook_resid_pre", "blocks.0.attn.hook_q", "blocks.1.attn.hook_pattern", "blocks.0.mlp.hook_post"]


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return torch.randint(1, VOCAB, (2, 6), generator=torch.Generator().manual_seed(0))


def _run(model: cs.HookedModel, tokens: torch.Tensor, name: str, fn: Callable[[torch.Tensor], Any]) -> torch.Tensor:
    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=[(name, lambda x, hook: fn(x))])


@pytest.mark.parametrize("name", HOOKS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.int64, torch.bool])
def test_a_replacement_of_another_dtype_is_refused(
    llama: cs.HookedModel, tokens: torch.Tensor, name: str, dtype: torch.dtype
) -> None:
    with pytest.raises(HookError, match=rf"{name}.*{dtype}.*torch\.float32") as info:
        _run(llama, tokens, name, lambda x: x.to(dtype))
    assert isinstance(info.value, TypeError) and "x.dtype" in str(info.value)
    assert llama.active_hooks() == []


@pytest.mark.parametrize("name", HOOKS)
def test_a_replacement_on_another_device_is_refused(llama: cs.HookedModel, tokens: torch.Tensor, name: str) -> None:
    with pytest.raises(HookError, match=rf"{name}.* on meta.* on cpu"):
        _run(llama, tokens, name, lambda x: x.to("meta"))
    assert llama.active_hooks() == []


@pytest.mark.parametrize(
    "fn", [lambda x: 3.0, lambda x: [x], lambda x: x.detach().numpy()], ids=["number", "list", "numpy"]
)
def test_a_replacement_that_is_not_a_tensor_is_refused(
    llama: cs.HookedModel, tokens: torch.Tensor, fn: Callable[[torch.Tensor], Any]
) -> None:
    with pytest.raises(HookError, match="return a tensor to replace the activation or None"):
        _run(llama, tokens, "blocks.1.hook_resid_post", fn)
    assert llama.active_hooks() == []


@pytest.mark.parametrize(
    "fn",
    [lambda x: x[:, :1], lambda x: x.unsqueeze(0), lambda x: x.flatten(), lambda x: x.sum()],
    ids=["first_pos", "extra_dim", "flat", "scalar"],
)
def test_a_replacement_of_another_shape_is_refused(
    llama: cs.HookedModel, tokens: torch.Tensor, fn: Callable[[torch.Tensor], Any]
) -> None:
    with pytest.raises(ShapeError, match=r"blocks\.1\.hook_resid_post.*same shape"):
        _run(llama, tokens, "blocks.1.hook_resid_post", fn)
    assert llama.active_hooks() == []


def test_matching_replacements_still_apply(llama: cs.HookedModel, tokens: torch.Tensor) -> None:
    """The checks refuse only mismatches: same-dtype edits, in place or not, take effect as before."""
    with torch.no_grad():
        clean = llama(tokens)
    same = _run(llama, tokens, "blocks.1.hook_resid_post", lambda x: x.clone())
    torch.testing.assert_close(same, clean)
    zeroed = _run(llama, tokens, "blocks.1.hook_resid_post", lambda x: x.mul_(0))
    expected = llama.wiring.unembed(llama.wiring.final_norm(torch.zeros(2, 6, llama.cfg.d_model)))  # type: ignore[misc]  # the wiring's callables are typed loosely (Module | Callable)
    torch.testing.assert_close(zeroed, expected.detach())
    assert not torch.allclose(zeroed, clean)


def test_a_backward_hook_replacement_is_checked_like_a_forward_one(llama: cs.HookedModel, tokens: torch.Tensor) -> None:
    def backward(fn: Callable[[torch.Tensor], Any]) -> None:
        llama.zero_grad(set_to_none=True)
        llama.run_with_hooks(tokens, bwd_hooks=[("hook_embed", lambda g, hook: fn(g))]).sum().backward()

    with pytest.raises(HookError, match=r"backward hook .*hook_embed.*float64.*gradient is torch\.float32"):
        backward(lambda g: g.double())
    with pytest.raises(ShapeError, match="gradient has shape"):
        backward(lambda g: g[:, :1])
    backward(lambda g: torch.zeros_like(g))  # a valid replacement: no gradient reaches the embedding
    grad = llama.W_E.grad
    assert grad is not None and not bool(grad.any())
    llama.zero_grad(set_to_none=True)
    assert llama.active_hooks() == []


def _keep(x: torch.Tensor, hook: Any) -> None:
    return None


@pytest.mark.parametrize(
    "hooks",
    [
        ("blocks.0.hook_resid_pre", _keep),  # one pair, not a list of them
        [("blocks.0.hook_resid_pre",)],
        [("blocks.0.hook_resid_pre", _keep, "extra")],
        [["blocks.0.hook_resid_pre", _keep]],
        [("blocks.0.hook_resid_pre", "not a function")],
        [("blocks.0.hook_resid_pre", _keep), ("blocks.0.hook_resid_pre", None)],
    ],
    ids=["bare_pair", "short", "long", "list_entry", "not_callable", "second_bad"],
)
def test_malformed_hook_lists_are_refused(llama: cs.HookedModel, tokens: torch.Tensor, hooks: Any) -> None:
    with pytest.raises(HookError, match=r"\(name, fn\) pairs|must be callable"):
        llama.run_with_hooks(tokens, fwd_hooks=hooks)
    assert llama.active_hooks() == [], "hooks attached before the bad entry must be removed"


@pytest.mark.parametrize("name", [3, None, ("resid_pre", 0), b"blocks.0.hook_resid_pre"])
def test_a_hook_name_that_is_not_a_string_is_refused(llama: cs.HookedModel, tokens: torch.Tensor, name: Any) -> None:
    with pytest.raises(HookNameError):
        llama.run_with_hooks(tokens, fwd_hooks=[(name, _keep)])
    with pytest.raises(HookNameError, match="strings"):
        llama.hook_point(name)
    assert llama.active_hooks() == []


def test_an_unknown_direction_is_refused(llama: cs.HookedModel) -> None:
    with pytest.raises(HookError, match="'fwd' or 'bwd'"):
        llama.add_hook("blocks.0.hook_resid_pre", _keep, "sideways")  # type: ignore[arg-type]  # the bad input under test
    assert llama.active_hooks() == []


def test_a_bad_hook_during_generation_is_refused_and_removed(llama: cs.HookedModel) -> None:
    with pytest.raises(HookError, match=r"blocks\.0\.hook_resid_pre.*torch\.float64"):
        llama.generate("abc", max_new_tokens=3, hooks=[("blocks.0.hook_resid_pre", lambda x, hook: x.double())])
    assert llama.active_hooks() == []
    assert llama.generate("abc", max_new_tokens=3).tokens.shape == (7,)  # the model still generates afterwards
