"""Transcoders: a sparse, wider stand-in for each MLP, per layer or cross-layer, as one module.

A transcoder of layer ``l`` reads the MLP's input (``blocks.l.ln2.hook_normalized``, the input after
the MLP's norm, or ``blocks.l.hook_resid_mid`` for a family without one) and predicts what the MLP
adds to the residual stream (``blocks.l.hook_mlp_out``):

``acts = σ(x @ W_enc + b_enc)``, ``mlp_out ≈ acts @ W_dec + b_dec (+ x @ W_skip)``

with ``σ`` the nonlinearity of an SAE architecture (ReLU, TopK or JumpReLU: the same functions
:mod:`circuitscope.sae` uses). A **cross-layer** transcoder's layer-``s`` features write to the MLP
outputs of ``s`` and every later layer of the set, through one decoder per target; layer ``t``'s
estimate is the sum over the sources ``s <= t``. :class:`TranscoderSet` holds either kind behind
one interface (what :mod:`circuitscope.graphs` builds on); :class:`MLPReplacement` is the
intervention that puts the estimates in place of the MLPs' outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Literal, get_args

import torch
from jaxtyping import Float
from torch import nn

from circuitscope.core.fingerprint import model_fingerprint
from circuitscope.sae.jumprelu import jumprelu
from circuitscope.sae.topk import topk_activation
from circuitscope.transcoders.errors import TranscoderConfigError, TranscoderModelError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = [
    "ARCHITECTURES",
    "INPUT_SITES",
    "KINDS",
    "OUTPUT_SITE",
    "InputSite",
    "TranscoderArchitecture",
    "TranscoderConfig",
    "TranscoderKind",
    "TranscoderSet",
    "input_site_for",
]

TranscoderKind = Literal["per_layer", "cross_layer"]
"""``per_layer``: each layer's features write to its own MLP output; ``cross_layer``: to it and every later one."""
TranscoderArchitecture = Literal["relu", "topk", "jumprelu"]
"""The nonlinearity, as the SAE architecture of that name has it."""
InputSite = Literal["ln2.hook_normalized", "hook_resid_mid"]
"""What a layer's transcoder reads: the MLP's input after its norm, or the residual stream before it."""
KINDS: tuple[str, ...] = get_args(TranscoderKind)
ARCHITECTURES: tuple[str, ...] = get_args(TranscoderArchitecture)
INPUT_SITES: tuple[str, ...] = get_args(InputSite)
OUTPUT_SITE = "hook_mlp_out"
"""What every transcoder predicts: the MLP's contribution to the residual stream."""
_DTYPES = ("float32", "float64", "bfloat16", "float16")


def input_site_for(model: HookedModel) -> InputSite:
    """The input a family's transcoders read: the MLP's input after its norm when the family has one."""
    return "ln2.hook_normalized" if "blocks.0.ln2.hook_normalized" in model.hook_dict else "hook_resid_mid"


@dataclass(frozen=True)
class TranscoderConfig:
    """What a set of transcoders is: kind, nonlinearity, sizes, layers, and the model it belongs to."""

    kind: TranscoderKind
    """``per_layer`` or ``cross_layer``."""
    architecture: TranscoderArchitecture
    """``relu``, ``topk`` or ``jumprelu``."""
    d_in: int
    """Width of what each transcoder reads (``d_model``)."""
    d_sae: int
    """Features per layer."""
    d_out: int
    """Width of what each transcoder predicts (``d_model``)."""
    layers: tuple[int, ...]
    """The model's layers that have a transcoder, increasing (cross-layer features write to later ones of these)."""
    input_site: InputSite = "ln2.hook_normalized"
    """The hook each layer's transcoder reads, after ``blocks.L.`` (see :func:`input_site_for`)."""
    skip: bool = False
    """A linear skip connection ``x @ W_skip`` added to each layer's estimate."""
    k: int | None = None
    """Active features per token and layer for ``topk`` (None for the others)."""
    model_name: str = ""
    """The model the transcoders were made for (informational)."""
    model_fingerprint: str = ""
    """:func:`~circuitscope.core.fingerprint.model_fingerprint` of that model ('' = unchecked)."""
    exclude_bos: bool = True
    """BOS positions were left out of training and keep their true MLP output when replaced."""
    dtype: str = "float32"
    """Parameter dtype."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(layer) for layer in self.layers))
        for name, value, allowed in (
            ("kind", self.kind, KINDS),
            ("architecture", self.architecture, ARCHITECTURES),
            ("input_site", self.input_site, INPUT_SITES),
            ("dtype", self.dtype, _DTYPES),
        ):
            if value not in allowed:
                raise TranscoderConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        sizes = {"d_in": self.d_in, "d_sae": self.d_sae, "d_out": self.d_out}
        bad = [f"{k}={v}" for k, v in sizes.items() if v <= 0]
        if bad:
            raise TranscoderConfigError(f"transcoder sizes must be positive, got {', '.join(bad)}")
        layers = self.layers
        if not layers or min(layers) < 0 or list(layers) != sorted(set(layers)):
            raise TranscoderConfigError(
                f"layers must be distinct non-negative layer indices in increasing order, got {layers}"
            )
        if self.architecture == "topk" and (self.k is None or not 0 < self.k <= self.d_sae):
            raise TranscoderConfigError(f"topk transcoders need 0 < k <= d_sae={self.d_sae}, got k={self.k}")
        if self.architecture != "topk" and self.k is not None:
            raise TranscoderConfigError(f"k is for topk transcoders only; give k=None for {self.architecture}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["layers"] = list(self.layers)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TranscoderConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class TranscoderSet(nn.Module):
    """The transcoders of every layer in ``cfg.layers``, per-layer or cross-layer, as stacked parameters.

    ``W_enc [n, d_in, d_sae]``, ``b_enc [n, d_sae]``, ``b_dec [n, d_out]``, ``threshold [n, d_sae]``
    (JumpReLU), ``W_skip [n, d_in, d_out]`` (with ``skip``), and ``W_dec``, a list with one
    ``[targets, d_sae, d_out]`` tensor per source layer: one target (itself) per layer for
    ``per_layer``, the source and every later layer of the set for ``cross_layer``.
    """

    def __init__(self, cfg: TranscoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n, dtype = len(cfg.layers), getattr(torch, cfg.dtype)
        self.W_enc = nn.Parameter(torch.zeros(n, cfg.d_in, cfg.d_sae, dtype=dtype))
        self.b_enc = nn.Parameter(torch.zeros(n, cfg.d_sae, dtype=dtype))
        targets = [1 if cfg.kind == "per_layer" else n - i for i in range(n)]
        self.W_dec = nn.ParameterList(
            [nn.Parameter(torch.zeros(t, cfg.d_sae, cfg.d_out, dtype=dtype)) for t in targets]
        )
        self.b_dec = nn.Parameter(torch.zeros(n, cfg.d_out, dtype=dtype))
        self.threshold: nn.Parameter | None = (
            nn.Parameter(torch.zeros(n, cfg.d_sae, dtype=dtype)) if cfg.architecture == "jumprelu" else None
        )
        self.W_skip: nn.Parameter | None = (
            nn.Parameter(torch.zeros(n, cfg.d_in, cfg.d_out, dtype=dtype)) if cfg.skip else None
        )

    def __repr__(self) -> str:
        c = self.cfg
        k = f", k={c.k}" if c.k is not None else ""
        return f"TranscoderSet({c.kind} {c.architecture}: layers={list(c.layers)}, d_sae={c.d_sae}{k}, skip={c.skip})"

    # ------------------------------------------------------------------ where
    @property
    def layers(self) -> tuple[int, ...]:
        return self.cfg.layers

    def index(self, layer: int) -> int:
        """Position of ``layer`` in :attr:`layers` (refuses a layer without a transcoder)."""
        try:
            return self.cfg.layers.index(layer)
        except ValueError:
            raise TranscoderModelError(
                f"layer {layer} has no transcoder; these transcoders cover layers {list(self.cfg.layers)}"
            ) from None

    def input_hook(self, layer: int) -> str:
        self.index(layer)
        return f"blocks.{layer}.{self.cfg.input_site}"

    def output_hook(self, layer: int) -> str:
        self.index(layer)
        return f"blocks.{layer}.{OUTPUT_SITE}"

    # ------------------------------------------------------------------ weights
    def encoder(self, layer: int) -> tuple[Float[torch.Tensor, "d_in d_sae"], Float[torch.Tensor, " d_sae"]]:
        i = self.index(layer)
        return self.W_enc[i], self.b_enc[i]

    def decoders(self, layer: int) -> list[tuple[int, Float[torch.Tensor, "d_sae d_out"]]]:
        """The (target layer, decoder) pairs that ``layer``'s features write to, nearest target first."""
        i = self.index(layer)
        dec = self.W_dec[i]
        return [(self.cfg.layers[i + j], dec[j]) for j in range(dec.shape[0])]

    def decoder_bias(self, layer: int) -> Float[torch.Tensor, " d_out"]:
        return self.b_dec[self.index(layer)]

    def skip(self, layer: int) -> Float[torch.Tensor, "d_in d_out"] | None:
        i = self.index(layer)
        return None if self.W_skip is None else self.W_skip[i]

    def sources(self, layer: int) -> list[int]:
        """The layers whose features write to ``layer``'s MLP output (itself, and earlier ones if cross-layer)."""
        t = self.index(layer)
        return [s for i, s in enumerate(self.cfg.layers) if i <= t < i + self.W_dec[i].shape[0]]

    # ------------------------------------------------------------------ compute
    def pre_acts(self, layer: int, x: Float[torch.Tensor, "... d_in"]) -> Float[torch.Tensor, "... d_sae"]:
        """Encoder pre-activations ``x @ W_enc + b_enc`` of ``layer``."""
        i = self.index(layer)
        if x.shape[-1] != self.cfg.d_in:
            raise TranscoderModelError(
                f"layer {layer}'s transcoder reads vectors of width {self.cfg.d_in}, got width {x.shape[-1]}; "
                "use transcoders made for this model"
            )
        return x.to(self.W_enc.dtype) @ self.W_enc[i] + self.b_enc[i]

    def activation(self, layer: int, pre: Float[torch.Tensor, "... d_sae"]) -> Float[torch.Tensor, "... d_sae"]:
        """The nonlinearity of ``layer``'s transcoder."""
        arch = self.cfg.architecture
        if arch == "topk":
            assert self.cfg.k is not None
            return topk_activation(pre, self.cfg.k)
        if arch == "jumprelu":
            assert self.threshold is not None
            return jumprelu(pre, self.threshold[self.index(layer)])
        return torch.relu(pre)

    def encode(self, layer: int, x: Float[torch.Tensor, "... d_in"]) -> Float[torch.Tensor, "... d_sae"]:
        """Feature activations of ``layer`` (nonlinearity included)."""
        return self.activation(layer, self.pre_acts(layer, x))

    def estimate(
        self,
        layer: int,
        acts: Mapping[int, Float[torch.Tensor, "... d_sae"]],
        x: Float[torch.Tensor, "... d_in"] | None = None,
    ) -> Float[torch.Tensor, "... d_out"]:
        """``layer``'s MLP-output estimate from the feature activations of its sources (and its input, for the skip).

        ``acts`` must hold every layer of :meth:`sources`; ``x`` (``layer``'s input) is needed with ``skip``.
        """
        t = self.index(layer)
        missing = [s for s in self.sources(layer) if s not in acts]
        if missing:
            raise TranscoderConfigError(
                f"layer {layer}'s estimate needs the features of layers {missing}; give every source layer's input"
            )
        out = self.b_dec[t]
        for s in self.sources(layer):
            i = self.index(s)
            out = out + acts[s].to(self.b_dec.dtype) @ self.W_dec[i][t - i]
        if self.W_skip is not None:
            if x is None:
                raise TranscoderConfigError(f"layer {layer}'s transcoder has a skip connection: give its input x")
            out = out + x.to(self.W_skip.dtype) @ self.W_skip[t]
        return out

    def reconstruct(
        self, inputs: Mapping[int, Float[torch.Tensor, "... d_in"]]
    ) -> dict[int, Float[torch.Tensor, "... d_out"]]:
        """Every given layer's MLP-output estimate from every layer's input (cross-layer: summed over sources)."""
        for layer in inputs:
            self.index(layer)
        acts = {layer: self.encode(layer, x) for layer, x in inputs.items()}
        return {layer: self.estimate(layer, acts, x) for layer, x in inputs.items()}

    def forward(
        self, inputs: Mapping[int, Float[torch.Tensor, "... d_in"]]
    ) -> dict[int, Float[torch.Tensor, "... d_out"]]:
        return self.reconstruct(inputs)

    # ------------------------------------------------------------------ fit
    def check(self, model: HookedModel) -> None:
        """Refuse a model of another fingerprint, width or layer set than these transcoders were made for."""
        c = self.cfg
        if c.model_fingerprint and model_fingerprint(model) != c.model_fingerprint:
            raise TranscoderModelError(
                f"these transcoders were made for another model ({c.model_name or c.model_fingerprint}, fingerprint "
                f"{c.model_fingerprint}); this model's is {model_fingerprint(model)}: load the model they were "
                "trained on, or train transcoders for this one"
            )
        beyond = [layer for layer in c.layers if layer >= model.cfg.n_layers]
        if beyond:
            raise TranscoderModelError(
                f"the transcoders cover layers {list(c.layers)}, but the model has {model.cfg.n_layers} layers "
                f"(0..{model.cfg.n_layers - 1}); layers {beyond} do not exist in it"
            )
        if c.d_in != model.cfg.d_model or c.d_out != model.cfg.d_model:
            raise TranscoderModelError(
                f"the transcoders read width {c.d_in} and write width {c.d_out}, but the model's d_model is "
                f"{model.cfg.d_model}; use transcoders made for this model"
            )
        for layer in c.layers:
            for name in (self.input_hook(layer), self.output_hook(layer)):
                model.hook_point(name)  # a clear HookNameError for a hook the family does not have

    @property
    def fingerprint(self) -> str:
        """The fingerprint of the model the transcoders belong to ('' = unchecked)."""
        return self.cfg.model_fingerprint

    @torch.no_grad()
    def initialize(self, generator: torch.Generator, threshold: float = 0.001) -> None:
        """Uniform random weights (``±1/sqrt(d_in)`` for encoders and skips, ``±1/sqrt(d_sae · targets)`` for
        decoders), zero biases, JumpReLU thresholds at ``threshold``."""
        c = self.cfg

        def uniform(shape: tuple[int, ...], bound: float) -> torch.Tensor:
            return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound

        self.W_enc.copy_(uniform(tuple(self.W_enc.shape), c.d_in**-0.5))
        for dec in self.W_dec:
            dec.copy_(uniform(tuple(dec.shape), (c.d_sae * dec.shape[0]) ** -0.5))
        self.b_enc.zero_()
        self.b_dec.zero_()
        if self.threshold is not None:
            self.threshold.fill_(threshold)
        if self.W_skip is not None:
            self.W_skip.copy_(uniform(tuple(self.W_skip.shape), c.d_in**-0.5) * 0.1)
