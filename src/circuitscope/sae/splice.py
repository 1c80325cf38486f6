"""Splicing SAEs into the forward pass, and caching their feature activations.

:class:`SAESplice` is an :class:`~circuitscope.interventions.Intervention`: ``with model.apply(SAESplice(sae)):``
(or ``interventions=[SAESplice(sae)]``) replaces the SAE's hook activation with its reconstruction; with
``keep_error`` the error term ``x - x_hat`` is added back (detached from the features), so the
model's output is unchanged while gradients reach the features: the set-up for attributing
to features. ``run_with_sae`` is one forward pass so spliced; ``run_with_cache_and_saes`` also caches,
per SAE on hook ``H``:

- ``H.sae.hook_input``: the activation the SAE read;
- ``H.sae.hook_acts``: its feature activations ``[batch, pos, d_sae]``;
- ``H.sae.hook_recons``: its reconstruction;
- ``H.sae.hook_error``: ``input - recons``.

When the SAE was trained without BOS (``sae.cfg.exclude_bos``), positions holding BOS keep their
original activation (``skip_bos=None`` follows the SAE; pass True/False to override).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int

from circuitscope.core.cache import ActivationCache
from circuitscope.core.hook_points import HookFn, HookPoint
from circuitscope.core.hooked_model import HookedModel
from circuitscope.interventions import PositionCounter
from circuitscope.sae.base import SAE

__all__ = ["SAE_CACHE_SUFFIXES", "SAESplice", "run_with_cache_and_saes", "run_with_sae"]

SAE_CACHE_SUFFIXES = ("sae.hook_input", "sae.hook_acts", "sae.hook_recons", "sae.hook_error")


def _as_tokens(model: HookedModel, tokens: Any) -> torch.Tensor:
    if isinstance(tokens, str) or (isinstance(tokens, Sequence) and tokens and isinstance(tokens[0], str)):
        return model.to_tokens(tokens)
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"expected text or token ids [batch, pos], got {type(tokens).__name__}")
    return tokens[None] if tokens.ndim == 1 else tokens


def _skip_mask(model: HookedModel, sae: SAE, tokens: torch.Tensor, skip_bos: bool | None) -> torch.Tensor | None:
    skip = sae.cfg.exclude_bos if skip_bos is None else skip_bos
    bos = model.tok.bos_token_id if model.tokenizer is not None else None
    if not skip or bos is None:
        return None
    mask = torch.zeros(tokens.shape, dtype=torch.bool, device=tokens.device)
    mask[:, 0] = tokens[:, 0] == bos
    return mask if bool(mask.any()) else None


@dataclass(frozen=True, eq=False)
class SAESplice:
    """An SAE's reconstruction in place of its hook's activation (an intervention for ``model.apply``).

    ``keep_error=True`` adds the (detached) error term back, so the output equals the clean run's
    while the features are in the graph. ``skip_bos`` (None: ``sae.cfg.exclude_bos``) leaves
    positions holding BOS alone; which positions those are is read from the pass's tokens
    (:attr:`HookedModel.pass_tokens`), and only a pass that starts the sequence has one (a cached
    generation step does not).
    """

    sae: SAE
    keep_error: bool = False
    skip_bos: bool | None = None

    def check(self, model: HookedModel) -> None:
        """Refuse an SAE without a hook name, or one whose hook this model does not have."""
        name = self.sae.cfg.hook_name
        if not name:
            raise ValueError("the SAE has no hook_name in its config; set sae.cfg.hook_name to the hook it reads")
        model.hook_point(name)  # a clear HookNameError for a hook this model does not have

    def hooks(self, model: HookedModel) -> list[tuple[str, HookFn]]:
        return [(self.sae.cfg.hook_name, self.hook_fn(model))]

    def hook_fn(self, model: HookedModel, record: dict[str, torch.Tensor] | None = None, grad: bool = False) -> HookFn:
        """The splicing hook function; it writes the four ``H.sae.*`` entries into ``record`` if given."""
        sae, keep_error, skip_bos = self.sae, self.keep_error, self.skip_bos
        positions = PositionCounter()

        def splice(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
            tokens = model.pass_tokens
            at_start = positions.offset(x) == 0
            mask = _skip_mask(model, sae, tokens, skip_bos) if at_start and tokens is not None else None
            acts = sae.encode(x)
            if mask is not None:
                acts = acts.masked_fill(mask[..., None], 0.0)
            recons = sae.decode(acts).to(x.dtype)
            error = x - recons
            out = recons + error.detach() if keep_error else recons
            if mask is not None:
                out = torch.where(mask[..., None], x, out)
            if record is not None:
                keep = (lambda t: t) if grad else (lambda t: t.detach())
                record[f"{hook.name}.sae.hook_input"] = keep(x)
                record[f"{hook.name}.sae.hook_acts"] = keep(acts)
                record[f"{hook.name}.sae.hook_recons"] = keep(recons)
                record[f"{hook.name}.sae.hook_error"] = keep(error)
            return out

        return splice


def _splices(sae: SAE | Sequence[SAE], keep_error: bool, skip_bos: bool | None) -> list[SAESplice]:
    items = [sae] if isinstance(sae, SAE) else list(sae)
    return [SAESplice(s, keep_error, skip_bos) for s in items]


def run_with_sae(
    model: HookedModel,
    tokens: str | Sequence[str] | Int[torch.Tensor, "batch pos"],
    sae: SAE | Sequence[SAE],
    keep_error: bool = False,
    skip_bos: bool | None = None,
) -> Float[torch.Tensor, "batch pos d_vocab"]:
    """Logits with each SAE's reconstruction in place of its hook's activation.

    ``keep_error=True`` adds the (detached) error term back, so the logits equal the clean
    run's while the features are in the graph.
    """
    ids = _as_tokens(model, tokens)
    return model(ids, interventions=_splices(sae, keep_error, skip_bos))


def run_with_cache_and_saes(
    model: HookedModel,
    tokens: str | Sequence[str] | Int[torch.Tensor, "batch pos"],
    sae: SAE | Sequence[SAE],
    names: Any = None,
    keep_error: bool = False,
    skip_bos: bool | None = None,
    grad: bool = False,
) -> tuple[Float[torch.Tensor, "batch pos d_vocab"], ActivationCache]:
    """Logits and a cache with the SAEs spliced in; the cache also holds ``H.sae.hook_acts`` etc. for each SAE.

    ``names`` selects the model's own activations to cache as in ``run_with_cache`` (None: all;
    pass ``[]`` for only the SAE entries). Cached model activations downstream of a splice see it.
    """
    ids = _as_tokens(model, tokens)
    extra: dict[str, torch.Tensor] = {}
    splices = _splices(sae, keep_error, skip_bos)
    for splice in splices:
        splice.check(model)
    hooks = [(s.sae.cfg.hook_name, s.hook_fn(model, record=extra, grad=grad)) for s in splices]
    logits, cache = model.run_with_cache(ids, names, fwd_hooks=hooks, grad=grad)
    data = dict(cache.items())
    data.update(extra)
    return logits, ActivationCache(data, model, cache.tokens)
