"""The SAE base module, its configuration and the registry of architectures by name.

Conventions are SAELens's: ``W_enc`` is ``[d_in, d_sae]``, ``W_dec`` is ``[d_sae, d_in]``; the
encoder sees ``x - b_dec`` when ``apply_b_dec_to_input``; ``encode`` gives the feature
activations and ``decode`` maps them back, ``f @ W_dec + b_dec``. Every architecture is one
file that subclasses :class:`SAE` and registers itself with :func:`register_architecture`; what
training and the SAELens files need to know about it (does it read ``k``, its default sparsity
coefficient, its SAELens name, its saved tensors, what happens after an optimiser step) is
declared on the class, so nothing outside that file branches on an architecture's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

import torch
from jaxtyping import Float, Int
from torch import nn

from circuitscope.sae.errors import SAEConfigError, SAEShapeError, UnknownArchitectureError

__all__ = [
    "ARCHITECTURES",
    "SAE",
    "SAEConfig",
    "StepContext",
    "TrainOutput",
    "architecture_names",
    "create_sae",
    "register_architecture",
]


@dataclass
class SAEConfig:
    """What an SAE is: its architecture, sizes, and where in which model it reads."""

    architecture: str
    """Registered architecture name: ``relu``, ``topk``, ``batchtopk`` or ``jumprelu``."""
    d_in: int
    """Width of the activation the SAE reads (``d_model`` for the residual stream)."""
    d_sae: int
    """Number of latents (features)."""
    k: int | None = None
    """Active latents per token for ``topk`` (per token on average for ``batchtopk``)."""
    apply_b_dec_to_input: bool = True
    """Subtract ``b_dec`` from the input before encoding (SAELens's default)."""
    model_name: str = ""
    """The model the SAE was trained on (informational)."""
    hook_name: str = ""
    """The hook it reads, in TransformerLens names (e.g. ``blocks.6.hook_resid_post``)."""
    context_size: int = 128
    """Context length of the training contexts."""
    prepend_bos: bool = True
    """Whether training contexts started with BOS."""
    exclude_bos: bool = True
    """Whether BOS positions were left out of training (and are left alone when spliced)."""
    dataset: str = ""
    """Description of the training corpus."""
    activation_scale: float = 1.0
    """Input normalisation factor used in training (already folded into the weights)."""
    dtype: str = "float32"
    """Parameter dtype."""

    def __post_init__(self) -> None:
        if self.d_in <= 0 or self.d_sae <= 0:
            raise SAEConfigError(f"d_in and d_sae must be positive, got d_in={self.d_in}, d_sae={self.d_sae}")
        arch = ARCHITECTURES.get(self.architecture)
        if arch is not None and arch.uses_k and (self.k is None or not 0 < self.k <= self.d_sae):
            raise SAEConfigError(
                f"the {self.architecture} architecture needs 0 < k <= d_sae={self.d_sae}, got k={self.k}"
            )
        if not self.activation_scale > 0:
            raise SAEConfigError(f"activation_scale must be positive, got {self.activation_scale}")
        if self.dtype not in ("float32", "float64", "bfloat16", "float16"):
            raise SAEConfigError(f"dtype must be float32, float64, bfloat16 or float16, got {self.dtype!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SAEConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class StepContext:
    """What an architecture's training loss needs besides the batch (filled by the trainer each step)."""

    sparsity_coefficient: float = 0.0
    """Current L1 (relu) or L0 (jumprelu) coefficient, after warm-up."""
    dead_mask: torch.Tensor | None = None
    """Boolean [d_sae]: latents that have not fired for the dead window (TopK's AuxK uses it)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Architecture options from the training config (``aux_k``, ``aux_coefficient``, ``bandwidth``, ...)."""
    workspace: dict[str, torch.Tensor] = field(default_factory=dict)
    """Scratch tensors an architecture may keep from one step to the next (the same dict every step of a
    run): TopK writes its ``[batch, d_sae]`` pre-activations into the same memory each step."""


@dataclass
class TrainOutput:
    """One training forward pass."""

    recon: Float[torch.Tensor, "batch d_in"]
    """The reconstruction."""
    loss: torch.Tensor
    """Total loss (scalar) to minimise."""
    losses: dict[str, torch.Tensor]
    """Its parts (``mse``, ``l1``, ``l0``, ``aux``), detached."""
    fired: Int[torch.Tensor, " d_sae"]
    """How many tokens of the batch each latent fired on (activation > 0)."""
    l0: torch.Tensor
    """Latents firing per token, averaged over the batch (scalar)."""

    @classmethod
    def from_acts(
        cls,
        recon: torch.Tensor,
        acts: Float[torch.Tensor, "batch d_sae"],
        loss: torch.Tensor,
        losses: dict[str, torch.Tensor],
    ) -> TrainOutput:
        """The output of an architecture that forms the dense feature activations anyway."""
        with torch.no_grad():
            active = acts > 0
            return cls(recon, loss, losses, fired=active.sum(0), l0=active.sum(-1).float().mean())


S = TypeVar("S", bound="type[SAE]")
ARCHITECTURES: dict[str, type[SAE]] = {}
"""Registered architectures by name."""


def register_architecture(name: str) -> Callable[[S], S]:
    """Class decorator: make an :class:`SAE` subclass available under ``name`` (a name is taken only once)."""

    def deco(cls: S) -> S:
        taken = ARCHITECTURES.get(name)
        if taken is not None:
            raise SAEConfigError(
                f"an SAE architecture named {name!r} is already registered ({taken.__module__}.{taken.__qualname__}); "
                f"register {cls.__qualname__} under another name"
            )
        cls.architecture = name
        ARCHITECTURES[name] = cls
        return cls

    return deco


def architecture_names() -> list[str]:
    return sorted(ARCHITECTURES)


def create_sae(cfg: SAEConfig) -> SAE:
    """A freshly initialised SAE of ``cfg.architecture``."""
    cls = ARCHITECTURES.get(cfg.architecture)
    if cls is None:
        raise UnknownArchitectureError(
            f"unknown SAE architecture {cfg.architecture!r}; registered: {', '.join(architecture_names())}"
        )
    return cls(cfg)


class SAE(nn.Module):
    """A sparse autoencoder ``x -> f(x) -> x_hat`` with SAELens's parameter names and shapes."""

    architecture: ClassVar[str] = ""
    """The registered name (set by :func:`register_architecture`)."""
    uses_k: ClassVar[bool] = False
    """The architecture reads ``cfg.k`` (TopK, BatchTopK): it must be in ``1..d_sae``; others get ``k=None``."""
    default_sparsity_coefficient: ClassVar[float] = 0.0
    """Training's sparsity coefficient when the config gives none (0: no sparsity penalty in the loss)."""
    decoder_norm_l1: ClassVar[bool] = False
    """The sparsity penalty can weight each latent by its decoder norm (``l1_weighting="decoder_norm"``),
    which leaves the decoder unconstrained: training then keeps no unit-norm decoder by default."""
    saelens_architecture: ClassVar[str] = ""
    """The ``architecture`` written to SAELens's ``cfg.json`` (what the SAE is at inference)."""
    reads_saelens: ClassVar[tuple[str, ...]] = ()
    """SAELens ``architecture`` values read back as this architecture."""

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dtype = getattr(torch, cfg.dtype)
        self.W_enc = nn.Parameter(torch.zeros(cfg.d_in, cfg.d_sae, dtype=dtype))
        self.W_dec = nn.Parameter(torch.zeros(cfg.d_sae, cfg.d_in, dtype=dtype))
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae, dtype=dtype))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in, dtype=dtype))

    def __repr__(self) -> str:
        c = self.cfg
        extra = f", k={c.k}" if c.k is not None else ""
        return f"{type(self).__name__}({c.architecture}: d_in={c.d_in}, d_sae={c.d_sae}{extra}, hook={c.hook_name!r})"

    # ------------------------------------------------------------------ init
    @torch.no_grad()
    def initialize(
        self,
        generator: torch.Generator,
        decoder_norm: float = 1.0,
        tied: bool = True,
        b_dec: torch.Tensor | None = None,
    ) -> None:
        """Random unit decoder rows scaled to ``decoder_norm``; encoder tied to the decoder's transpose if ``tied``."""
        w = torch.randn(self.cfg.d_sae, self.cfg.d_in, generator=generator, dtype=torch.float64)
        w = w / w.norm(dim=-1, keepdim=True) * decoder_norm
        self.W_dec.copy_(w)
        if tied:
            self.W_enc.copy_(w.T)
        else:
            bound = (1.0 / self.cfg.d_in) ** 0.5
            self.W_enc.copy_(torch.rand(self.cfg.d_in, self.cfg.d_sae, generator=generator) * 2 * bound - bound)
        self.b_enc.zero_()
        self.b_dec.copy_(b_dec if b_dec is not None else torch.zeros(self.cfg.d_in))
        self.initialize_own()

    def initialize_own(self) -> None:
        """Initialise the architecture's own parameters (none here; JumpReLU's thresholds), under no_grad."""

    # ------------------------------------------------------------------ inference
    def _check(self, x: torch.Tensor) -> None:
        if x.shape[-1] != self.cfg.d_in:
            raise SAEShapeError(
                f"the SAE reads vectors of width d_in={self.cfg.d_in} ({self.cfg.hook_name or 'its hook'}), "
                f"but got width {x.shape[-1]}; use an SAE trained on this hook and model"
            )

    def pre_acts(self, x: Float[torch.Tensor, "... d_in"]) -> Float[torch.Tensor, "... d_sae"]:
        """Encoder pre-activations ``(x - b_dec) @ W_enc + b_enc``."""
        self._check(x)
        x = x.to(self.W_enc.dtype)
        if self.cfg.apply_b_dec_to_input:
            x = x - self.b_dec
        return x @ self.W_enc + self.b_enc

    def activation(self, pre: Float[torch.Tensor, "... d_sae"]) -> Float[torch.Tensor, "... d_sae"]:
        """The architecture's nonlinearity at inference."""
        raise NotImplementedError

    def encode(self, x: Float[torch.Tensor, "... d_in"]) -> Float[torch.Tensor, "... d_sae"]:
        """Feature activations."""
        return self.activation(self.pre_acts(x))

    def decode(self, acts: Float[torch.Tensor, "... d_sae"]) -> Float[torch.Tensor, "... d_in"]:
        """Reconstruction ``acts @ W_dec + b_dec``."""
        return acts @ self.W_dec + self.b_dec

    def forward(self, x: Float[torch.Tensor, "... d_in"]) -> Float[torch.Tensor, "... d_in"]:
        return self.decode(self.encode(x))

    # ------------------------------------------------------------------ training
    def training_forward(self, x: Float[torch.Tensor, "batch d_in"], ctx: StepContext) -> TrainOutput:
        """Reconstruction, activations and the training loss of the architecture."""
        raise NotImplementedError

    def mse(self, recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Squared error summed over ``d_in``, averaged over the batch (SAELens's convention)."""
        return (recon - x).pow(2).sum(-1).mean()

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Scale every decoder row to unit norm."""
        self.W_dec.div_(self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8))

    @torch.no_grad()
    def remove_parallel_decoder_grad(self) -> None:
        """Project out the part of ``W_dec``'s gradient along its rows (keeps unit norm to first order)."""
        if self.W_dec.grad is None:
            return
        unit = self.W_dec / self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        parallel = (self.W_dec.grad * unit).sum(-1, keepdim=True)
        self.W_dec.grad.sub_(parallel * unit)

    def init_learned_threshold(self, value: float) -> None:
        """Start thresholds trained as parameters at ``value`` (JumpReLU); nothing for other architectures."""

    def after_optimizer_step(self) -> None:
        """Keep parameters in their domain after an optimiser step (JumpReLU's thresholds stay >= 0)."""

    def saved_shapes(self) -> dict[str, tuple[int, ...]]:
        """The tensors a saved SAE folder holds for this architecture, with their shapes."""
        c = self.cfg
        return {"W_enc": (c.d_in, c.d_sae), "W_dec": (c.d_sae, c.d_in), "b_enc": (c.d_sae,), "b_dec": (c.d_in,)}

    def buffers_to_save(self) -> dict[str, torch.Tensor]:
        """Extra tensors (beyond parameters) the architecture needs at inference."""
        return {}

    @torch.no_grad()
    def fold_activation_scale(self, scale: float) -> None:
        """Fold an input scale into the weights: the SAE trained on ``x * scale`` then reads raw ``x``.

        ``(x - b_dec/s) @ (s W_enc) = (s x - b_dec) @ W_enc`` and ``f @ (W_dec/s) + b_dec/s = x_hat/s``;
        pre-activations (and so thresholds and feature values) are unchanged.
        """
        self.W_enc.mul_(scale)
        self.W_dec.div_(scale)
        self.b_dec.div_(scale)
        self.cfg.activation_scale = self.cfg.activation_scale * scale
