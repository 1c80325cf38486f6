"""Causal tracing (Meng et al. 2022, ROME): where a factual prompt's answer is recalled.

The subject's tokens are corrupted, with Gaussian noise on their input embeddings
(``hook_embed``; default 3x :func:`embedding_std`, ``n_samples`` seeded draws) or by resampling
(other subjects of the same token length). Clean activations are then restored one at a time
into the corrupted run and the probability of the target (default: the clean top-1 token) is
measured; the indirect effect is ``restored - corrupted`` (mean over samples).
``kind="resid"`` restores layer L's output (``blocks.L.hook_resid_post``) at one token;
``"mlp"``/``"attn"`` restore ``hook_mlp_out``/``hook_attn_out`` of ``window`` layers centred on L
(``L - window // 2 .. L + ceil(window / 2) - 1``, clipped: ROME's window); :func:`trace_heads`
restores one head's ``attn.hook_z``, :func:`trace_neurons` one neuron's ``mlp.hook_post``.

Batched (:mod:`circuitscope.analysis.tracing_engine`): clean activations are cached once, the
corrupted run is recorded once (:class:`~circuitscope.core.replay.BlockReplay`), many restorations
share a forward pass (rows = restorations x samples) in which each restoration joins at the layer
it restores and only the tokens from the restored one on are computed (the earlier ones' keys and
values are the corrupted run's: :class:`~circuitscope.core.prefix_kv.PrefixReplay`, which
``BlockReplay(..., keep_prefix=True)`` builds), with logits at
the last token only. Tokens before the subject are not corrupted (a causal model), so restoring them
is a no-op: those cells get the corrupted probability (an effect of exactly 0) without running
anything; so do restorations of the last layer's output at an earlier token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, get_args

import torch

from circuitscope.analysis.tracing_engine import _Restore, _restored_probs, _Setup
from circuitscope.analysis.tracing_inputs import (
    Prompt,
    Subject,
    _replacements,
    embedding_noise,
    embedding_std,
    subject_span,
)
from circuitscope.analysis.tracing_results import (
    CORRUPTIONS,
    Corruption,
    HeadTraceResult,
    NeuronTraceResult,
    TraceBaseline,
    TraceConfig,
    TraceOptions,
    TraceResult,
    config_of,
)
from circuitscope.core.hook_points import HookPoint
from circuitscope.core.hooked_model import HookedModel
from circuitscope.core.replay import BlockReplay
from circuitscope.engine.grid import AxisName, component_labels
from circuitscope.errors import ShapeError, TokenizationError

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11

__all__ = [
    "CORRUPTIONS", "TRACE_KINDS", "Corruption", "HeadTraceResult", "NeuronTraceResult", "TraceBaseline", "TraceConfig",
    "TraceKind", "TraceOptions", "TraceResult", "causal_trace", "embedding_noise", "embedding_std", "subject_span",
    "trace_heads", "trace_neurons",
]  # fmt: skip

TraceKind = Literal["resid", "mlp", "attn"]
"""What a layer x token trace restores: the layer's output, its MLP output or its attention output."""
At = Literal["subject_last", "last", "all"] | int
TRACE_KINDS: tuple[str, ...] = get_args(TraceKind)
_KIND_HOOK: dict[TraceKind, str] = {"resid": "hook_resid_post", "mlp": "hook_mlp_out", "attn": "hook_attn_out"}


# ---------------------------------------------------------------------------------------------- inputs


def _prompt_tokens(model: HookedModel, prompt: Prompt) -> torch.Tensor:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise TokenizationError("the prompt is empty; give a factual prompt such as 'The Eiffel Tower is in'")
        return model.to_tokens(prompt)[0]
    if not isinstance(prompt, torch.Tensor) or prompt.ndim != 1 or prompt.numel() == 0:
        raise ShapeError("the prompt must be text or a non-empty 1-d tensor of token ids")
    return prompt.to(model.device)


def _span(model: HookedModel, tokens: torch.Tensor, subject: Subject) -> tuple[int, int]:
    if isinstance(subject, str):
        return subject_span(model, tokens, subject)
    start, stop = subject
    if not 0 <= start < stop <= tokens.shape[0]:
        raise ShapeError(f"subject span {subject!r} is not a non-empty range of the prompt's {tokens.shape[0]} tokens")
    return int(start), int(stop)


# ---------------------------------------------------------------------------------------------- engine


def _target_id(model: HookedModel, target: str | int | None, clean_probs: torch.Tensor) -> int:
    """The target's token id: the clean top-1 token when ``target`` is None."""
    if target is None:
        return int(clean_probs.argmax())
    if isinstance(target, str):
        return model.to_single_token(target)
    if not 0 <= int(target) < model.cfg.d_vocab:
        raise ShapeError(f"target id {int(target)} is outside the vocabulary of {model.cfg.d_vocab}")
    return int(target)


def _saver(store: dict[str, torch.Tensor]) -> Callable[[torch.Tensor, HookPoint], None]:
    """A hook keeping the value each hook point sees in the recorded run."""

    def save(x: torch.Tensor, hook: HookPoint) -> None:
        store[hook.name] = x.detach()

    return save


def _corrupted_run(
    model: HookedModel, cfg: TraceConfig, span: tuple[int, int], corrupted_tokens: torch.Tensor, names: Sequence[str]
) -> tuple[BlockReplay, dict[str, torch.Tensor], float | None]:
    """The corrupted run recorded (with its keys and values; the noise added to the subject's embeddings for
    ``"noise"``), its activations at ``names`` and the noise's std."""
    saved: dict[str, torch.Tensor] = {}
    hooks: list[tuple[str, Callable[..., Any]]] = [(n, _saver(saved)) for n in names]
    noise_std: float | None = None
    if cfg.corruption == "noise":
        noise_std = cfg.noise_scale * embedding_std(model)
        noise = embedding_noise(model, span[1] - span[0], n_samples=cfg.n_samples, std=noise_std, seed=cfg.seed)

        def add_noise(x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
            x = x.clone()
            x[:, span[0] : span[1]] += noise
            return x

        hooks.insert(0, ("hook_embed", add_noise))
    with model.hooks(hooks):
        replay = BlockReplay(model, corrupted_tokens, keep_prefix=True)
    return replay, saved, noise_std


@torch.no_grad()
def _prepare(
    model: HookedModel,
    prompt: Prompt,
    subject: Subject,
    cfg: TraceConfig,
    target: str | int | None,
    clean_names: Sequence[str],
    corrupted_names: Sequence[str] = (),
) -> _Setup:
    tokens = _prompt_tokens(model, prompt)
    span = _span(model, tokens, subject)
    has_tok = model.tokenizer is not None
    str_tokens = model.to_str_tokens(tokens) if has_tok else [str(int(t)) for t in tokens]
    last = torch.tensor([tokens.shape[0] - 1], device=tokens.device)
    clean: dict[str, torch.Tensor] = {}
    with model.hooks([(n, _saver(clean)) for n in clean_names]):
        clean_run = BlockReplay(model, tokens[None])
    clean_probs = clean_run.logits_at(last).float().softmax(-1)[0]
    target_id = _target_id(model, target, clean_probs)
    if cfg.corruption == "noise":
        corrupted_tokens, replaced = tokens[None].repeat(cfg.n_samples, 1), []
    else:
        corrupted_tokens, replaced = _replacements(model, prompt, subject, tokens, span, cfg, target_id)
    replay, corrupted, noise_std = _corrupted_run(model, cfg, span, corrupted_tokens, corrupted_names)
    per_sample = replay.logits_at(last.repeat(replay.batch)).float().softmax(-1)[:, target_id].tolist()
    subject_text = subject if isinstance(subject, str) else "".join(str_tokens[span[0] : span[1]])
    baseline = TraceBaseline(
        tokens=str_tokens,
        token_ids=[int(t) for t in tokens.tolist()],
        subject=subject_text,
        subject_range=span,
        target=model.to_string(target_id) if has_tok else str(target_id),  # type: ignore[arg-type]
        target_id=target_id,
        clean_prob=float(clean_probs[target_id]),
        corrupted_prob=float(sum(per_sample) / len(per_sample)),
        corrupted_probs=per_sample,
        corruption=cfg.corruption,
        noise_std=noise_std,
        replacement_subjects=replaced,
        seed=cfg.seed,
    )
    return _Setup(model, tokens, span, cfg, baseline, replay, clean, corrupted)


def _grid(
    setup: _Setup, restored: torch.Tensor, axes: tuple[AxisName, ...], labels: dict[str, list[str]]
) -> dict[str, Any]:
    """The score-grid fields every trace shares: the restored probabilities and their indirect effects."""
    base = setup.baseline
    return {
        "baseline": base,
        "restored": restored,
        "scores": restored - base.corrupted_prob,
        "axes": axes,
        "labels": labels,
        "clean_value": base.clean_prob,
        "corrupted_value": base.corrupted_prob,
    }


def _window(layer: int, window: int, n_layers: int) -> range:
    return range(max(0, layer - window // 2), min(n_layers, layer - (-window // 2)))


def _positions(setup: _Setup, at: At) -> list[int]:
    seq = setup.tokens.shape[0]
    if at == "subject_last":
        return [setup.span[1] - 1]
    if at == "last":
        return [seq - 1]
    if at == "all":
        return list(range(seq))
    if isinstance(at, int) and not isinstance(at, bool) and -seq <= at < seq:
        return [at % seq]
    raise ShapeError(f"at must be 'subject_last', 'last', 'all' or a token position in [0, {seq}), got {at!r}")


# ---------------------------------------------------------------------------------------------- public


@torch.no_grad()
def causal_trace(
    model: HookedModel,
    prompt: Prompt,
    subject: Subject,
    *,
    kind: TraceKind = "resid",
    window: int = 10,
    target: str | int | None = None,
    **options: Unpack[TraceOptions],
) -> TraceResult:
    """Restore each (layer, token) state of ``kind`` into the subject-corrupted run: ``[layer, pos]`` effects.

    ``prompt`` is text (or token ids, BOS included); ``subject`` is text occurring in it (or a
    ``(start, stop)`` token span). ``kind="resid"`` restores ``blocks.L.hook_resid_post`` (the
    layer's output); ``"mlp"``/``"attn"`` restore the MLP/attention outputs of ``window`` layers
    centred on L. ``target`` is a single-token string or id (default: the clean top-1 token).
    ``options``: how the subject is corrupted (``corruption``, ``noise_scale``, ``n_samples``, ``subjects``,
    ``seed``), ``batch_size`` and ``on_progress``, as :class:`TraceOptions` lists them (shared by every trace).
    """
    if kind not in TRACE_KINDS:
        raise ShapeError(f"unknown trace kind {kind!r}; choose one of {TRACE_KINDS}")
    if not (isinstance(window, int) and window >= 1):
        raise ShapeError(f"window must be an integer >= 1 (layers restored together), got {window!r}")
    cfg, on_progress = config_of(options)
    hook = _KIND_HOOK[kind]
    n_layers = model.cfg.n_layers
    setup = _prepare(model, prompt, subject, cfg, target, [f"blocks.{la}.{hook}" for la in range(n_layers)])
    seq = setup.tokens.shape[0]
    first = setup.span[0]  # restoring earlier tokens is a no-op: their states are not corrupted
    cells = [(la, p) for la in range(n_layers) for p in range(first, seq)]
    groups = [
        [_Restore(la, hook, (p,))]
        if kind == "resid"
        else [_Restore(w, hook, (p,)) for w in _window(la, window, n_layers)]
        for la, p in cells
    ]
    probs = _restored_probs(setup, groups, f"causal trace ({kind})", on_progress)
    restored = torch.full((n_layers, seq), setup.baseline.corrupted_prob)
    for (la, p), value in zip(cells, probs.tolist(), strict=True):
        restored[la, p] = value
    labels = component_labels(model, ("layer", "pos"), prompt=setup.tokens)
    grid = _grid(setup, restored, ("layer", "pos"), labels)
    return TraceResult(**grid, kind=kind, window=1 if kind == "resid" else window)


@torch.no_grad()
def trace_heads(
    model: HookedModel,
    prompt: Prompt,
    subject: Subject,
    *,
    at: At = "subject_last",
    layers: Sequence[int] | None = None,
    target: str | int | None = None,
    **options: Unpack[TraceOptions],
) -> HeadTraceResult:
    """Restore one attention head's output (``blocks.L.attn.hook_z``, head h) at a time: ``[layer, head]`` effects.

    ``at`` picks the tokens where the head is restored: ``"subject_last"`` (default), ``"last"``,
    ``"all"`` (every token at once) or a position. Layers not in ``layers`` are NaN. ``target`` and
    ``options`` as in :func:`causal_trace`.
    """
    cfg, on_progress = config_of(options)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    chosen = list(range(n_layers)) if layers is None else [int(la) for la in layers]
    for la in chosen:
        model.check_layer_head(la)
    chosen = sorted({la % n_layers for la in chosen})
    setup = _prepare(model, prompt, subject, cfg, target, [f"blocks.{la}.attn.hook_z" for la in chosen])
    positions = _positions(setup, at)
    cells = [(la, h) for la in chosen for h in range(n_heads)]
    groups = [[_Restore(la, "attn.hook_z", tuple(positions), h)] for la, h in cells]
    probs = _restored_probs(setup, groups, "tracing heads", on_progress)
    restored = torch.full((n_layers, n_heads), float("nan"))
    for (la, h), value in zip(cells, probs.tolist(), strict=True):
        restored[la, h] = value
    grid = _grid(setup, restored, ("layer", "head"), component_labels(model, ("layer", "head")))
    return HeadTraceResult(**grid, positions=positions)


@torch.no_grad()
def trace_neurons(
    model: HookedModel,
    prompt: Prompt,
    subject: Subject,
    *,
    layer: int,
    top_k: int = 10,
    at: At = "subject_last",
    neurons: Sequence[int] | None = None,
    candidates: int | None = None,
    target: str | int | None = None,
    **options: Unpack[TraceOptions],
) -> NeuronTraceResult:
    """Restore one MLP neuron (``blocks.{layer}.mlp.hook_post``) at a time; the top neurons by indirect effect.

    ``neurons`` limits the neurons considered (default: all). ``candidates`` restores only that
    many of them: those whose restoration writes most to the residual stream, |clean - corrupted
    activation| (summed over the restored tokens, mean over samples) x the norm of the neuron's
    output weights. A neuron whose activation is unchanged has an effect of exactly 0, so this
    keeps the large effects at a fraction of the cost on wide MLPs. ``target`` and ``options`` as in
    :func:`causal_trace`.
    """
    cfg, on_progress = config_of(options)
    model.check_layer_head(layer)
    layer %= model.cfg.n_layers
    if top_k < 1 or (candidates is not None and candidates < 1):
        raise ShapeError(f"top_k and candidates must be >= 1, got {top_k} and {candidates}")
    name = f"blocks.{layer}.mlp.hook_post"
    setup = _prepare(model, prompt, subject, cfg, target, [name], corrupted_names=[name])
    d_mlp = setup.clean[name].shape[-1]
    pool = list(range(d_mlp)) if neurons is None else [int(n) for n in neurons]
    if not pool or any(not 0 <= n < d_mlp for n in pool):
        raise ShapeError(f"neurons must be a non-empty list of indices in [0, {d_mlp}), got {neurons!r}")
    positions = _positions(setup, at)
    if candidates is not None and candidates < len(pool):
        change = (setup.clean[name][:, positions] - setup.corrupted[name][:, positions]).abs().sum(1).mean(0)
        w_out = model.mlp_weights(layer).W_out  # [d_mlp, d_model]
        score = (change * w_out.norm(dim=-1))[pool]
        pool = [pool[int(i)] for i in score.topk(candidates).indices]
    groups = [[_Restore(layer, "mlp.hook_post", tuple(positions), n)] for n in pool]
    restored = _restored_probs(setup, groups, f"tracing layer {layer} neurons", on_progress)
    effect = restored - setup.baseline.corrupted_prob
    best = effect.topk(min(top_k, len(pool))).indices.tolist()
    grid = _grid(setup, restored, ("neuron",), {"neuron": [str(n) for n in pool]})
    top = [(pool[i], float(effect[i])) for i in best]
    return NeuronTraceResult(**grid, layer=layer, positions=positions, neurons=pool, top=top)
