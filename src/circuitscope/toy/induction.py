"""``circuitscope lab induction``: attention-only transformers forming induction heads (Olsson et al. 2022).

Train 1- to 4-layer attention-only models on sequences with repeated segments, on periodic
sequences (a random block repeated to the end: the quickest way to grow an induction head), or on
real text (byte-level, when the Shakespeare texts are available offline) and track, at every checkpoint:
the held-out loss, the in-context-learning score (loss late in the context minus loss early),
every head's induction and previous-token score, the K-composition between the strongest
previous-token head and the strongest later induction head, against the random baseline, and the
logits on fixed random tokens. After training: all composition scores, the same composition measured
on activations (:mod:`circuitscope.toy.induction_composition`), each head's ablation importance, and
the PCA of the logits over checkpoints with the kinks of its path (:mod:`circuitscope.toy.induction_phases`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from jaxtyping import Int

from circuitscope.analysis import (
    HeadScores,
    induction_scores,
    previous_token_scores,
    repeated_random_tokens,
)
from circuitscope.analysis.composition import CompositionScores, composition_scores
from circuitscope.analysis.head_ablation import HeadAblation, head_ablation_importance
from circuitscope.core.hooked_model import HookedModel
from circuitscope.engine.loss import next_token_loss
from circuitscope.models.toy.modeling import ToyTransformer
from circuitscope.progress import OnProgress
from circuitscope.toy.checkpoint import load_model_weights
from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.induction_composition import ActivationComposition, activation_composition
from circuitscope.toy.induction_phases import LogitTrajectory, logit_trajectory, trajectory_probe
from circuitscope.toy.lab_config import LabConfig
from circuitscope.toy.model import build_toy_of
from circuitscope.toy.trainer import BatchFn, MetricFn, TrainConfig, seeded_batches, train

__all__ = [
    "InductionConfig",
    "InductionData",
    "InductionRun",
    "build_induction_model",
    "induction_json",
    "periodic_batch",
    "repeated_segment_batch",
    "run_induction",
    "text_batches",
    "train_induction_model",
]


InductionData = Literal["repeated", "periodic", "text"]
"""The training data of an induction run (see :attr:`InductionConfig.data`)."""


@dataclass(frozen=True)
class InductionConfig(LabConfig):
    """One attention-only model and its training."""

    n_layers: int = 2
    """Number of attention-only layers."""
    n_ctx: int = 64
    """Sequence length."""
    d_vocab: int = 64
    """Vocabulary of the synthetic data (256 bytes for text)."""
    data: InductionData = "repeated"
    """``repeated``: random tokens with repeated segments (:func:`repeated_segment_batch`); ``periodic``: a
    random block repeated to the end of the sequence, its period random per sequence (:func:`periodic_batch`;
    with no LayerNorm, no weight decay and lr 1e-2 a 2-layer model grows an induction head in a few hundred
    steps); ``text``: bytes of the Shakespeare texts."""
    layer_norm: bool = True
    """LayerNorm before each attention layer and the unembedding."""
    batch_size: int = 32
    """Sequences per step."""
    steps: int = 2000
    """Training steps."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    checkpoint_every: int = 100
    """Steps between measurements."""

    def __post_init__(self) -> None:
        if not 1 <= self.n_layers <= 12:
            raise LabConfigError(f"n_layers must lie in 1..12, got {self.n_layers}")
        if self.n_ctx < 16:
            raise LabConfigError(f"n_ctx must be at least 16 for repeated segments, got {self.n_ctx}")
        if self.data not in get_args(InductionData):
            raise LabConfigError(f"data must be 'repeated', 'periodic' or 'text', got {self.data!r}")
        if self.batch_size < 1:
            raise LabConfigError(f"batch_size must be at least 1 (sequences per step), got {self.batch_size}")
        if self.n_heads < 1 or self.d_model < 1 or self.d_vocab < 1:
            raise LabConfigError(
                f"n_heads ({self.n_heads}), d_model ({self.d_model}) and d_vocab ({self.d_vocab}) must be at least 1"
            )
        if self.d_model % self.n_heads:
            raise LabConfigError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        super().__post_init__()

    @property
    def vocab(self) -> int:
        return 256 if self.data == "text" else self.d_vocab


def repeated_segment_batch(
    generator: torch.Generator, batch: int, n_ctx: int, d_vocab: int
) -> Int[torch.Tensor, "batch pos"]:
    """Random tokens in which a random segment (length 4 .. n_ctx/3) reappears later in the sequence.

    Half of the sequences hold a random stretch repeated right after itself (``r r``, period n_ctx/4 ..
    n_ctx/2), the other half one repeated segment at a random place. The period varies, so a head
    cannot predict the repeats from positions alone: induction is the only way.
    """
    tokens = torch.randint(0, d_vocab, (batch, n_ctx), generator=generator)
    for row in range(batch // 2):  # a prefix repeated once, with a random period (no positional shortcut)
        period = int(torch.randint(n_ctx // 4, n_ctx // 2 + 1, (1,), generator=generator))
        start = int(torch.randint(0, n_ctx - 2 * period + 1, (1,), generator=generator))
        tokens[row, start + period : start + 2 * period] = tokens[row, start : start + period]
    for row in range(batch // 2, batch):
        length = int(torch.randint(4, n_ctx // 3 + 1, (1,), generator=generator))
        src = int(torch.randint(0, n_ctx - 2 * length + 1, (1,), generator=generator))
        dst = int(torch.randint(src + length, n_ctx - length + 1, (1,), generator=generator))
        tokens[row, dst : dst + length] = tokens[row, src : src + length]
    return tokens


def periodic_batch(generator: torch.Generator, batch: int, n_ctx: int, d_vocab: int) -> Int[torch.Tensor, "batch pos"]:
    """A random block ``r`` repeated until the sequence ends (``r r r ...``), its period random per sequence.

    The period of each sequence is drawn from 4 .. n_ctx/2, so every sequence holds at least one full
    repeat, and a head cannot find the copy from positions alone. Every position after the first period
    is predictable by induction and by nothing else, which makes the signal for an induction head dense:
    the phase change comes after a few hundred steps instead of thousands.
    """
    if n_ctx < 8:
        raise LabConfigError(f"periodic sequences need n_ctx >= 8, got {n_ctx}")
    tokens = torch.randint(0, d_vocab, (batch, n_ctx), generator=generator)
    period = torch.randint(4, n_ctx // 2 + 1, (batch, 1), generator=generator)  # [batch, 1]
    source = torch.arange(n_ctx)[None] % period  # [batch, pos]: position p copies position p mod period
    return tokens.gather(1, source)


def _text_corpus() -> torch.Tensor:
    from circuitscope.data.texts import gutenberg_body, shakespeare_texts

    parts = [gutenberg_body(p.read_text(encoding="utf-8", errors="replace")) for p in shakespeare_texts()[:20]]
    data = "\n".join(parts).encode("utf-8", errors="replace")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).long()


def text_batches(corpus: torch.Tensor, batch: int, n_ctx: int) -> Any:
    """Random windows of a byte corpus (the last 5% is held out)."""
    cut = int(corpus.numel() * 0.95)

    def make(generator: torch.Generator, held_out: bool = False) -> torch.Tensor:
        lo, hi = (cut, corpus.numel()) if held_out else (0, cut)
        starts = torch.randint(lo, hi - n_ctx, (batch,), generator=generator)
        return torch.stack([corpus[s : s + n_ctx] for s in starts.tolist()])

    return make


@dataclass
class InductionRun:
    """One trained model and its curves."""

    config: InductionConfig
    loss: list[float]
    """Training loss of every step."""
    steps: list[int]
    """Checkpoint steps of the curves below."""
    held_out_loss: list[float]
    icl_score: list[float]
    """Loss late in the context minus loss early (negative: the model learns in context)."""
    induction: list[list[list[float]]]
    """[checkpoint][layer][head] induction scores."""
    previous_token: list[list[list[float]]]
    k_composition: list[float | None]
    """K-composition between the top previous-token head and the top later induction head (None in 1 layer)."""
    final_induction: HeadScores | None = None
    final_previous_token: HeadScores | None = None
    composition: CompositionScores | None = None
    ablation: HeadAblation | None = None
    activation_composition: ActivationComposition | None = None
    """Shares of each head's query/key/value input written by each earlier head, on the probe tokens."""
    logit_trajectory: LogitTrajectory | None = None
    """PCA over checkpoints of the logits on fixed random tokens, and the kinks of the path."""
    hooked: HookedModel | None = field(default=None, repr=False)

    @property
    def phase_change_step(self) -> int | None:
        """First checkpoint where some head's induction score exceeds 0.3."""
        for step, grid in zip(self.steps, self.induction, strict=True):
            if max(max(row) for row in grid) > 0.3:
                return step
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "loss": self.loss,
            "steps": self.steps,
            "held_out_loss": self.held_out_loss,
            "icl_score": self.icl_score,
            "induction": self.induction,
            "previous_token": self.previous_token,
            "k_composition": self.k_composition,
            "phase_change_step": self.phase_change_step,
            "final_induction": self.final_induction.to_dict() if self.final_induction else None,
            "final_previous_token": self.final_previous_token.to_dict() if self.final_previous_token else None,
            "composition": self.composition.to_dict() if self.composition else None,
            "ablation": self.ablation.to_dict() if self.ablation else None,
            "activation_composition": self.activation_composition.to_dict() if self.activation_composition else None,
            "logit_trajectory": self.logit_trajectory.to_dict() if self.logit_trajectory else None,
        }


def _k_comp_pair(prev: torch.Tensor, ind: torch.Tensor, comp: CompositionScores) -> float | None:
    """K-composition from the best previous-token head to the best induction head in a later layer."""
    n_layers = prev.shape[0]
    if n_layers < 2:
        return None
    lb, hb = divmod(int(ind[1:].flatten().argmax()), ind.shape[1])
    lb += 1
    la, ha = divmod(int(prev[:lb].flatten().argmax()), prev.shape[1])
    return float(comp.k[la, ha, lb, hb])


def _data(config: InductionConfig) -> tuple[torch.Tensor, BatchFn]:
    """The held-out sequences and the training batches of ``config.data``."""
    held_gen = torch.Generator().manual_seed(10_000 + config.seed)
    if config.data == "text":
        make = text_batches(_text_corpus(), config.batch_size, config.n_ctx)
        held_out = torch.cat([make(held_gen, True) for _ in range(4)])
        return held_out, seeded_batches(lambda g: (make(g),), config.seed)
    synthetic = periodic_batch if config.data == "periodic" else repeated_segment_batch
    held_out = synthetic(held_gen, 4 * config.batch_size, config.n_ctx, config.vocab)
    return held_out, seeded_batches(
        lambda g: (synthetic(g, config.batch_size, config.n_ctx, config.vocab),), config.seed
    )


def _fixed_logits(model: torch.nn.Module, fixed: torch.Tensor) -> torch.Tensor:
    """The log-probabilities of ``model`` on the fixed random tokens (a point of the logit trajectory)."""
    with torch.no_grad():
        return torch.log_softmax(model(fixed).logits.float(), -1)


def _checkpoint_metrics(
    hooked: HookedModel,
    held_out: torch.Tensor,
    probe: torch.Tensor,
    n_ctx: int,
    fixed: torch.Tensor,
    snapshots: list[torch.Tensor],
) -> dict[str, MetricFn]:
    """The curves: held-out loss and ICL score (one pass), head scores and K-composition (one measurement);
    the logits on ``fixed`` are appended to ``snapshots`` at every checkpoint (too large for the curves)."""
    early, late = slice(n_ctx // 8, n_ctx // 4), slice(3 * n_ctx // 4, n_ctx - 1)
    memo: dict[str, Any] = {}

    def held_loss(_m: torch.nn.Module) -> float:
        per_pos = next_token_loss(hooked(held_out), held_out, reduction="none").mean(0)  # [pos]: of token pos + 1
        memo["icl"] = float(per_pos[late].mean() - per_pos[early].mean())
        return float(per_pos.mean())

    def heads(_m: torch.nn.Module) -> torch.Tensor:
        ind = induction_scores(hooked, probe).scores
        prev = previous_token_scores(hooked, probe).scores
        memo["prev"] = prev
        memo["kcomp"] = _k_comp_pair(prev, ind, composition_scores(hooked, baseline_samples=0))
        snapshots.append(_fixed_logits(hooked.hf_model, fixed))
        return ind

    return {
        "held_out_loss": held_loss,
        "icl_score": lambda _m: memo["icl"],
        "induction": heads,
        "previous_token": lambda _m: memo["prev"],
        "k_composition": lambda _m: float("nan") if memo["kcomp"] is None else memo["kcomp"],
    }


def build_induction_model(config: InductionConfig) -> ToyTransformer:
    """The attention-only model of ``config`` (learned positions), freshly initialised from its seed."""
    return build_toy_of(config, d_vocab=config.vocab, attn_only=True, positional="learned")


def _own_next_token_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The model's own next-token loss on the sequences of ``batch``."""
    return model(batch[0], labels=batch[0]).loss


def _final_measurements(
    run: InductionRun,
    hooked: HookedModel,
    probe: torch.Tensor,
    ablation_tokens: torch.Tensor | None,
    on_progress: OnProgress | None,
) -> None:
    """Fill in ``run``'s head scores and compositions of the trained ``hooked`` model, and its heads' ablation
    importance on ``ablation_tokens`` (None: not measured)."""
    run.final_induction = induction_scores(hooked, probe)
    run.final_previous_token = previous_token_scores(hooked, probe)
    run.composition = composition_scores(hooked)
    run.activation_composition = activation_composition(hooked, probe)
    if ablation_tokens is None:
        return

    def ablation_progress(stage: str, done: int, total: int) -> None:  # silent without on_progress
        if on_progress is not None:
            on_progress(f"{run.config.n_layers}-layer: {stage}", done, total)

    run.ablation = head_ablation_importance(hooked, ablation_tokens, "mean", on_progress=ablation_progress)


def train_induction_model(
    config: InductionConfig,
    out: str | Path | None = None,
    *,
    measure_ablation: bool = True,
    threads: int | None = None,
    on_progress: OnProgress | None = None,
) -> InductionRun:
    """Train one attention-only model and measure it along the way.

    ``on_progress(stage, done, total)`` is told the training steps (stage ``{n}-layer``) and the
    ablation passes (``{n}-layer: ...``).
    """
    model = build_induction_model(config)
    hooked = HookedModel(model)
    held_out, batches = _data(config)
    probe = repeated_random_tokens(config.vocab, config.n_ctx // 2 - 1, 16, torch.Generator().manual_seed(77))
    fixed, snapshots = trajectory_probe(config.vocab, config.n_ctx), []
    result = train(
        model,
        _own_next_token_loss,
        batches,
        TrainConfig.of(config, threads=threads),
        out=out,
        metrics=_checkpoint_metrics(hooked, held_out, probe, config.n_ctx, fixed, snapshots),
        identity={"task": "induction", "data": config.data},
        description=f"{config.n_layers}-layer",
        on_progress=on_progress,
    )
    m = result.metrics
    run = InductionRun(
        config=config,
        loss=result.loss,
        steps=result.metric_steps,
        held_out_loss=m["held_out_loss"],
        icl_score=m["icl_score"],
        induction=m["induction"],
        previous_token=m["previous_token"],
        k_composition=list(m["k_composition"]),
        hooked=hooked,
    )
    earlier = result.metric_steps[: len(result.metric_steps) - len(snapshots)]  # measured before a resume
    snapshots[:0] = [_fixed_logits(_checkpoint_model(config, Path(out or "."), step), fixed) for step in earlier]
    run.logit_trajectory = logit_trajectory(torch.stack(snapshots), result.metric_steps)
    _final_measurements(run, hooked, probe, held_out[:64] if measure_ablation else None, on_progress)
    return run


def _checkpoint_model(config: InductionConfig, folder: Path, step: int) -> ToyTransformer:
    """The model of ``config`` with the weights saved at ``step`` in ``folder``."""
    model = build_induction_model(config)
    model.load_state_dict(load_model_weights(folder, step))
    return model.eval()


def run_induction(
    layers: tuple[int, ...] = (1, 2, 3, 4),
    base: InductionConfig | None = None,
    out: str | Path | None = None,
    threads: int | None = None,
    on_progress: OnProgress | None = None,
) -> list[InductionRun]:
    """Train one model per depth (checkpoints under ``out/L{n}`` when given); see :func:`train_induction_model`."""
    from dataclasses import replace

    base = base or InductionConfig()
    runs = []
    for n in layers:
        folder = Path(out) / f"L{n}" if out is not None else None
        runs.append(train_induction_model(replace(base, n_layers=n), folder, threads=threads, on_progress=on_progress))
    return runs


def induction_json(runs: list[InductionRun]) -> dict[str, Any]:
    """The ``--json`` payload of the induction lab: each run's numbers under ``models["<n>_layer"]``."""
    return {"models": {f"{run.config.n_layers}_layer": run.to_dict() for run in runs}}
