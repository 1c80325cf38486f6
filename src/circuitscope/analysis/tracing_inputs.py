"""What causal tracing corrupts: the subject's token span, the embedding noise, resampled subjects.

:func:`subject_span` finds the subject's tokens in the prompt; :func:`embedding_std` and
:func:`embedding_noise` give the Gaussian noise added to them at ``hook_embed``; ``_replacements``
builds the corrupted prompts for ``corruption="resample"``. The engine in
:mod:`circuitscope.analysis.tracing` uses them and re-exports the public names.
"""

from __future__ import annotations

import random

import torch
from jaxtyping import Float, Int

from circuitscope.analysis.tracing_results import TraceConfig
from circuitscope.core.hooked_model import HookedModel
from circuitscope.errors import TokenizationError

__all__ = ["Prompt", "Subject", "embedding_noise", "embedding_std", "subject_span"]

Prompt = str | Int[torch.Tensor, " pos"]
Subject = str | tuple[int, int]


def subject_span(model: HookedModel, tokens: Int[torch.Tensor, " pos"], subject: str) -> tuple[int, int]:
    """Token positions ``[start, stop)`` covering ``subject`` in ``tokens`` (BOS included in the count).

    The decoded prompt is searched for the subject (as given, stripped, and as it decodes after
    tokenization); every token that overlaps the match is part of the span, so a leading-space
    token such as ``" Eiffel"`` is found from ``"Eiffel"`` or ``" Eiffel"``.
    """
    ids = [int(i) for i in tokens.tolist()]
    tok = model.tok
    offset = 1 if ids and tok.bos_token_id is not None and ids[0] == tok.bos_token_id else 0
    body = ids[offset:]

    def decode(xs: list[int]) -> str:
        text = tok.to_string(xs)
        assert isinstance(text, str)
        return text

    text = decode(body)
    needles = [subject, subject.strip()]
    if subject.strip():
        needles.append(decode(tok.encode(subject.strip(), prepend_bos=False)))
    found = next(((text.find(n), n) for n in dict.fromkeys(needles) if n and text.find(n) >= 0), None)
    if found is None or not subject.strip():
        raise TokenizationError(
            f"subject {subject!r} does not occur in the prompt; the prompt's tokens are "
            f"{model.to_str_tokens(tokens)!r}. Give the subject exactly as it is written in the prompt (case matters)."
        )
    begin, needle = found
    ends = [len(decode(body[: j + 1])) for j in range(len(body))]
    start = next(j for j, e in enumerate(ends) if e > begin)
    stop = next((j for j, e in enumerate(ends) if e >= begin + len(needle)), len(body) - 1) + 1
    return start + offset, stop + offset


def embedding_std(model: HookedModel) -> float:
    """Standard deviation of the entries of ``W_E``, in the units of ``hook_embed``.

    Families that scale their embeddings inside the embedding module (Gemma 3) produce
    ``hook_embed = W_E[t] * scale``; the scale is measured, so noise of k x this value is k
    standard deviations of what the model actually sees. Families that scale after the module
    (Gemma 1/2) scale the noise with the embedding, so the ratio holds there too.
    """
    w_e = model.W_E.detach()
    ids = torch.arange(min(int(w_e.shape[0]), 64), device=w_e.device)[None]
    with torch.no_grad():
        out = model.wiring.embed(ids)
    out = out[0] if isinstance(out, tuple) else out
    raw = w_e[ids[0]].float().norm()
    scale = float(out.float().norm() / raw) if float(raw) > 0 else 1.0
    return float(w_e.float().std()) * scale


def embedding_noise(
    model: HookedModel, n_tokens: int, *, n_samples: int, std: float, seed: int
) -> Float[torch.Tensor, "sample subject d_model"]:
    """The Gaussian noise added to the subject's ``hook_embed`` (reproducible from ``seed``)."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(n_samples, n_tokens, model.cfg.d_model, generator=generator) * std
    return noise.to(device=model.device, dtype=model.W_E.dtype)


def _replacements(
    model: HookedModel,
    prompt: Prompt,
    subject: Subject,
    tokens: torch.Tensor,
    span: tuple[int, int],
    cfg: TraceConfig,
    target_id: int,
) -> tuple[torch.Tensor, list[str]]:
    """Corrupted prompts for resampling: other subjects of the subject's token length, seeded choice."""
    if not (isinstance(prompt, str) and isinstance(subject, str)) or subject not in prompt:
        raise TokenizationError(
            "resampling needs the prompt and the subject as text, the subject written in the prompt"
        )
    pool = cfg.subjects
    if pool is None:  # the shipped facts' subjects, except those whose object is the target itself
        from circuitscope.tasks.facts import load_facts

        pool = tuple(f.subject for f in load_facts() if model.tok.encode(f.object, prepend_bos=False)[0] != target_id)
    at = prompt.index(subject)
    start, stop = span
    fits: list[tuple[str, torch.Tensor]] = []
    for other in dict.fromkeys(pool):
        if other.strip() == subject.strip():
            continue
        ids = model.to_tokens(prompt[:at] + other + prompt[at + len(subject) :])[0]
        same_rest = ids.shape == tokens.shape and bool((ids[:start] == tokens[:start]).all())
        if same_rest and bool((ids[stop:] == tokens[stop:]).all()) and not bool((ids == tokens).all()):
            fits.append((other, ids))
    if not fits:
        raise TokenizationError(
            f"no replacement subject has the token length of {subject!r} ({stop - start} tokens) in this prompt; "
            "pass subjects=[...] with subjects of that length, or use corruption='noise'"
        )
    chosen = random.Random(cfg.seed).sample(fits, min(cfg.n_samples, len(fits)))
    return torch.stack([ids for _, ids in chosen]), [s for s, _ in chosen]
