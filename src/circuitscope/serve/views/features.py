"""The features views: which features fire on each token of a prompt, and one feature's page.

A :class:`FeatureSource` is one SAE, or one layer of a transcoder set read as an SAE
(:func:`~circuitscope.transcoders.as_sae.layer_as_sae`: the layer's encoder, and as decoder what each feature
writes to the residual stream), so both kinds go through the same library calls: a prompt's activations are the
``sae.hook_acts`` of :func:`~circuitscope.sae.run_with_cache_and_saes` (BOS left at zero when the features were
trained without it), a feature page is :func:`~circuitscope.sae.feature_dashboard_data` over fixed-length
contexts cut from the given texts (:func:`~circuitscope.sae.build_contexts`), and its logit effects
``W_dec[i] @ W_U`` are :func:`~circuitscope.sae.dashboard.logit_effects`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from circuitscope.core.hooked_model import HookedModel
from circuitscope.errors import CircuitscopeError
from circuitscope.sae import SAE, Corpus, build_contexts, feature_dashboard_data, run_with_cache_and_saes
from circuitscope.sae.dashboard import logit_effects
from circuitscope.serve.errors import ServeInputError, ServeNotFoundError
from circuitscope.serve.views._checks import check_index, check_top_k, prompt_tokens
from circuitscope.serve.views._json import round_sig
from circuitscope.transcoders import TranscoderSet
from circuitscope.transcoders.as_sae import layer_as_sae

__all__ = [
    "FeaturePageView",
    "FeatureSource",
    "FeatureSourceKind",
    "TokenFeaturesView",
    "feature_page_view",
    "feature_sources",
    "source_named",
    "token_features_view",
]

FeatureSourceKind = Literal["sae", "transcoder"]
"""Where features come from: an SAE, or one layer of a transcoder set."""

N_TOP_CONTEXTS = 10
"""Contexts on a feature page, most activating first."""
N_LOGITS = 10
"""Tokens in each of a feature page's top and bottom logit lists."""
HISTOGRAM_BINS = 20
"""Bins of a feature page's activation histogram."""


@dataclass(frozen=True, eq=False)
class FeatureSource:
    """One set of features the explorer shows: an SAE, or a transcoder layer."""

    name: str
    """How the page and the API name it: the SAE's hook name (``#2``, ... for a second SAE on one hook), or
    ``transcoder.L{layer}``."""
    kind: FeatureSourceKind
    """``sae`` or ``transcoder``."""
    layer: int | None
    """The layer of the hook it reads (None for a hook outside the blocks)."""
    hook: str
    """The hook it reads."""
    sae: SAE
    """The features as an SAE (for a transcoder layer, :func:`~circuitscope.transcoders.as_sae.layer_as_sae`)."""
    writes_to: str
    """The hook its decoder writes to: the SAE's own hook, or the transcoder layer's ``hook_mlp_out``."""

    @property
    def d_sae(self) -> int:
        """The number of features."""
        return self.sae.cfg.d_sae

    def check_feature(self, index: object) -> int:
        """``index`` as one of this source's features."""
        return check_index(index, self.d_sae, "feature", f"source {self.name!r}")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "layer": self.layer, "hook": self.hook, "d_sae": self.d_sae}


def _check_sae(model: HookedModel, sae: SAE, label: str) -> None:
    """Refuse an SAE without a hook, with a hook this model lacks, or of another width than its hook's."""
    hook = sae.cfg.hook_name
    if not hook:
        raise ServeInputError(f"{label} has no hook_name in its config: set it to the hook the SAE reads")
    try:
        model.hook_point(hook)
        width = model.cache_activations(torch.zeros((1, 1), dtype=torch.long), hook)[hook].shape[-1]
    except CircuitscopeError as err:
        raise ServeInputError(f"{label} reads {hook!r}, which this model cannot give: {err}") from err
    if width != sae.cfg.d_in:
        made_for = f" (it was trained on {sae.cfg.model_name})" if sae.cfg.model_name else ""
        raise ServeInputError(
            f"{label} reads vectors of width {sae.cfg.d_in} at {hook}, but this model's are {width} wide: it belongs "
            f"to another model{made_for}; load the SAE trained on this model"
        )


def feature_sources(
    model: HookedModel, saes: Sequence[SAE], transcoders: TranscoderSet | None
) -> dict[str, FeatureSource]:
    """Every SAE and every transcoder layer as a named source, each checked against ``model`` (an SAE of another
    width, transcoders of another model's fingerprint: :class:`ServeInputError`, at start-up)."""
    out: dict[str, FeatureSource] = {}
    for i, sae in enumerate(saes):
        hook = sae.cfg.hook_name
        _check_sae(model, sae, f"SAE {i} ({hook or 'no hook'})")
        name, n = hook, 1
        while name in out:
            n += 1
            name = f"{hook}#{n}"
        out[name] = FeatureSource(name, "sae", model.hook_point(hook).layer, hook, sae, hook)
    if transcoders is not None:
        try:
            transcoders.check(model)
        except CircuitscopeError as err:
            raise ServeInputError(f"the transcoders do not fit this model: {err}") from err
        for layer in transcoders.layers:
            sae = layer_as_sae(transcoders, layer)
            name = f"transcoder.L{layer}"
            out[name] = FeatureSource(name, "transcoder", layer, sae.cfg.hook_name, sae, transcoders.output_hook(layer))
    return out


def source_named(sources: dict[str, FeatureSource], name: object) -> FeatureSource:
    """The source called ``name``, or a 404 that lists the sources there are."""
    if isinstance(name, str) and name in sources:
        return sources[name]
    known = ", ".join(sources) or "none: start the server with --sae or --transcoders"
    raise ServeNotFoundError(f"no feature source {name!r:.60}; the sources are {known}")


@dataclass(frozen=True)
class TokenFeaturesView:
    """The most active features at every token of a prompt."""

    source: str
    """The source's name."""
    tokens: list[str]
    """The prompt's tokens as text."""
    top: list[list[tuple[int, float]]]
    """Per token: up to ``top_k`` (feature, activation) with activation > 0, most active first."""

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "tokens": self.tokens,
            "top": [[{"feature": f, "activation": a} for f, a in row] for row in self.top],
        }


@torch.no_grad()
def token_features_view(model: HookedModel, source: FeatureSource, prompt: str, top_k: int = 5) -> TokenFeaturesView:
    """The ``top_k`` most active features of ``source`` at each token of ``prompt``."""
    tokens = prompt_tokens(model, prompt)
    k = min(check_top_k(top_k), source.d_sae)
    _, cache = run_with_cache_and_saes(model, tokens, source.sae, names=[])
    acts = cache[f"{source.hook}.sae.hook_acts"][0].float().cpu()  # [pos, d_sae]
    values, ids = acts.topk(k, dim=-1)
    top = [
        [(int(i), float(v)) for v, i in zip(vs, ix, strict=True) if v > 0] for vs, ix in zip(values, ids, strict=True)
    ]
    return TokenFeaturesView(source.name, model.to_str_tokens(tokens[0]), top)


@dataclass(frozen=True)
class FeaturePageView:
    """One feature: where it fires in the given texts, and what it writes to the logits."""

    source: str
    """The source's name."""
    index: int
    """The feature."""
    d_sae: int
    """How many features the source has."""
    edges: list[float]
    """The activation histogram's bin edges (empty when it never fires, or without texts)."""
    counts: list[int]
    """Its counts, one per bin."""
    contexts: list[tuple[list[str], list[float], float]]
    """Up to 10 contexts where it fires most: (tokens, its activation on each, the largest), most active first."""
    top_logits: list[tuple[str, float]]
    """The 10 tokens whose logits its direction ``W_dec[index] @ W_U`` raises most."""
    bottom_logits: list[tuple[str, float]]
    """... and lowers most."""
    frequency: float | None
    """The share of the texts' tokens it fires on (None without texts)."""

    def to_json(self) -> dict[str, Any]:
        contexts = [{"tokens": t, "activations": round_sig(torch.tensor(a)), "max": m} for t, a, m in self.contexts]
        return {
            "source": self.source,
            "index": self.index,
            "d_sae": self.d_sae,
            "histogram": {"edges": self.edges, "counts": self.counts},
            "contexts": contexts,
            "top_logits": [{"token": t, "value": v} for t, v in self.top_logits],
            "bottom_logits": [{"token": t, "value": v} for t, v in self.bottom_logits],
            "frequency": self.frequency,
        }


@torch.no_grad()
def feature_page_view(
    model: HookedModel,
    source: FeatureSource,
    index: int,
    contexts: Sequence[str],
    *,
    context_size: int = 32,
    max_contexts: int = 64,
) -> FeaturePageView:
    """Feature ``index`` of ``source``: its top logit effects, and over the ``contexts`` texts (cut into at most
    ``max_contexts`` contexts of ``context_size`` tokens, or fewer when the model's context is shorter) its
    histogram, top contexts and firing frequency; without texts, only the logit effects."""
    index = source.check_feature(index)
    top, bottom = logit_effects(model, source.sae, torch.tensor([index]), min(N_LOGITS, model.cfg.d_vocab))
    if not contexts:
        return FeaturePageView(source.name, index, source.d_sae, [], [], [], top[0], bottom[0], None)
    size = min(context_size, model.cfg.n_ctx)
    tokens = build_contexts(model, Corpus("the server's texts", list(contexts)), size, max_contexts=max_contexts).tokens
    data = feature_dashboard_data(model, source.sae, tokens, [index], n_top=N_TOP_CONTEXTS, window=(size, size))
    samples = data.activation_samples[0]
    edges: list[float] = []
    counts: list[int] = []
    if samples.numel():
        hist = torch.histogram(samples.double(), bins=HISTOGRAM_BINS)
        edges, counts = round_sig(hist.bin_edges), [int(c) for c in hist.hist]
    shown = [(ex.tokens, ex.values, ex.activation) for ex in data.top_examples[0]]
    frequency = float(data.density[0])
    return FeaturePageView(source.name, index, source.d_sae, edges, counts, shown, top[0], bottom[0], frequency)
