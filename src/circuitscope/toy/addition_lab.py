"""``circuitscope lab addition``: n-digit addition, one phase change per digit, and the heads of each carry.

The seed documents ask "why does 5-digit addition have a phase change per digit?" (after Nanda et
al.'s grokking work). The lab trains a small toy transformer on freshly drawn problems
(:mod:`circuitscope.toy.addition`), measures the loss of every answer digit on a fixed held-out
set at each checkpoint, and marks each digit's **phase change**: the checkpoint interval over
which that digit's log-loss falls fastest (with the losses before and after). After training,
every attention head is mean-ablated alone (:func:`~circuitscope.engine.head_ablation.ablate_each_head`)
and the increase of each digit's loss is measured separately on the problems where that column
receives a carry and where it does not: a head whose ablation hurts a digit mostly when a carry
comes in is one that implements that digit's carry.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

import circuitscope as cs
from circuitscope.core.replay import BlockReplay
from circuitscope.engine.head_ablation import ablate_each_head
from circuitscope.models.toy.modeling import ToyTransformer
from circuitscope.progress import OnProgress
from circuitscope.toy.addition import EQUALS, AdditionProblems, addition_problems, digit_losses
from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.lab_config import LabConfig, lab_preset
from circuitscope.toy.model import build_toy_of
from circuitscope.toy.threads import fastest_thread_count
from circuitscope.toy.trainer import TrainConfig, seeded_batches, train

__all__ = ["AdditionConfig", "AdditionPreset", "AdditionResult", "PhaseChange", "build_addition_model", "run_addition"]

AdditionPreset = Literal["default", "paper"]
"""``default``: 5 digits, runs in minutes on 2 cores; ``paper``: a wider model trained longer."""


@dataclass(frozen=True)
class AdditionConfig(LabConfig):
    """The n-digit addition experiment."""

    n_digits: int = 5
    """Digits of each operand (the answer has one more)."""
    n_layers: int = 2
    """Transformer blocks."""
    d_mlp: int = 256
    """MLP width."""
    batch_size: int = 256
    """Freshly drawn problems per training step."""
    test_size: int = 2048
    """Held-out problems the per-digit losses are measured on (drawn apart from the training stream)."""

    def __post_init__(self) -> None:
        if self.n_digits < 1:
            raise LabConfigError(f"n_digits must be at least 1, got {self.n_digits}")
        if min(self.n_layers, self.d_model, self.n_heads, self.d_mlp, self.batch_size, self.test_size) < 1:
            raise LabConfigError("n_layers, d_model, n_heads, d_mlp, batch_size and test_size must be positive")
        if self.d_model % self.n_heads:
            raise LabConfigError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        super().__post_init__()

    @classmethod
    def preset(cls, name: AdditionPreset) -> AdditionConfig:
        return lab_preset(cls, "addition", name, {"d_model": 128, "d_mlp": 512, "steps": 10_000, "batch_size": 512})


@dataclass(frozen=True)
class PhaseChange:
    """Where one answer digit's loss falls: the first checkpoint past half of its fall (in log-loss)."""

    digit: int
    """0 = units, n = the final carry."""
    start: int | None
    """The checkpoint step before the log-loss first crosses halfway from its start to its end (None: no fall)."""
    end: int | None
    """The checkpoint step at which it has crossed (None: the digit's loss never fell to half, it was not learned)."""
    loss_before: float
    loss_after: float
    final_loss: float


@dataclass(frozen=True)
class AdditionResult:
    """Per-digit loss curves, each digit's phase change, and every head's effect on every digit."""

    config: AdditionConfig
    steps: list[int]
    """Checkpoint steps."""
    digit_loss: list[list[float]]
    """[checkpoint][digit] held-out cross-entropy."""
    accuracy: list[float]
    """Share of held-out problems whose every answer digit is the top prediction, per checkpoint."""
    phase_changes: list[PhaseChange]
    """One per digit."""
    ablation_carry: list[list[list[float]]]
    """[layer][head][digit]: loss increase when the head is mean-ablated, on problems where the column carries in."""
    ablation_no_carry: list[list[list[float]]]
    """The same on problems where it does not (NaN where no such problem exists, e.g. the final carry's 0s)."""
    threads: int
    """torch threads the training ran on (measured fastest of 1 and 2 unless given)."""

    def carry_heads(self, top: int = 2) -> dict[int, list[tuple[int, int]]]:
        """Per digit, the heads whose ablation hurts it most on carry problems beyond the no-carry ones."""
        out: dict[int, list[tuple[int, int]]] = {}
        for d in range(self.config.n_digits + 1):
            scores = []
            for layer, heads in enumerate(self.ablation_carry):
                for head, per_digit in enumerate(heads):
                    base = self.ablation_no_carry[layer][head][d]
                    scores.append((per_digit[d] - (0.0 if math.isnan(base) else base), (layer, head)))
            out[d] = [lh for _, lh in sorted(scores, reverse=True)[:top]]
        return out

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (NaN, where no problem of a kind exists, becomes null)."""

        def finite(x: Any) -> Any:
            if isinstance(x, list):
                return [finite(v) for v in x]
            return None if isinstance(x, float) and math.isnan(x) else x

        out = {k: finite(v) for k, v in asdict(self).items()}
        out["carry_heads"] = {str(d): [list(h) for h in heads] for d, heads in self.carry_heads().items()}
        return out


def build_addition_model(config: AdditionConfig) -> ToyTransformer:
    """A toy transformer over the 12 tokens with the problem's context (``3 n + 2`` inputs)."""
    return build_toy_of(config, d_vocab=EQUALS + 1, n_ctx=3 * config.n_digits + 2)


def _loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Cross-entropy of the answer digits (the operands are given, not predicted)."""
    inputs, answer = batch
    n = answer.shape[1] - 1
    logits = model(inputs).logits[:, 2 * n + 1 :]  # [batch, n + 1, vocab]
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), answer.flatten())


def _phase_changes(steps: list[int], curves: torch.Tensor) -> list[PhaseChange]:
    """Per digit, the checkpoints between which the log-loss first passes the midpoint of its start and its end.

    The midpoint is taken between the highest log-loss of the first checkpoints (before any fall) and the
    final one, so a later spike and its recovery do not count as the phase change; a digit whose loss did
    not fall at least twofold has none.
    """
    logs = curves.clamp_min(1e-8).log()  # [checkpoint, digit]
    out = []
    for d in range(curves.shape[1]):
        high, low = float(logs[: max(2, len(steps) // 10), d].max()), float(logs[-1, d])
        crossed = (logs[:, d] <= (high + low) / 2).nonzero().flatten()
        if high - low < math.log(2) or len(crossed) == 0 or int(crossed[0]) == 0:
            out.append(PhaseChange(d, None, None, float(curves[0, d]), float(curves[-1, d]), float(curves[-1, d])))
            continue
        j = int(crossed[0])
        out.append(
            PhaseChange(d, steps[j - 1], steps[j], float(curves[j - 1, d]), float(curves[j, d]), float(curves[-1, d]))
        )
    return out


def _head_effects(
    model: ToyTransformer, test: AdditionProblems, on_progress: OnProgress | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """[layer, head, digit] loss increase with each head mean-ablated alone (its ``hook_z`` replaced by its mean over
    the held-out problems at each position), on the problems whose column carries in, and on those that do not."""
    hooked = cs.HookedModel(model)
    means: dict[int, torch.Tensor] = {}

    def record_mean(z: torch.Tensor, hook: Any) -> None:
        means[int(hook.name.split(".")[1])] = z.mean(0, keepdim=True)  # [1, pos, head, d_head]

    with hooked.hooks([("blocks.*.attn.hook_z", record_mean)]):
        replay = BlockReplay(hooked, test.inputs)
    shape = (model.config.n_layers, model.config.n_heads, test.n_digits + 1)
    effects = {True: torch.full(shape, float("nan")), False: torch.full(shape, float("nan"))}
    clean = hooked.unembed_resid(replay.final_resid)  # [batch, pos, vocab]
    stage = "ablating each head, per digit"
    for d in range(test.n_digits + 1):
        for carry, grid in effects.items():
            rows = (test.carry_in[:, d] == carry).nonzero().flatten()
            if len(rows) == 0:  # e.g. the final digit: its carry in is the digit itself
                continue

            def measure(final: torch.Tensor, copies: int, d: int = d, rows: torch.Tensor = rows) -> torch.Tensor:
                logits = hooked.unembed_resid(final).view(copies, -1, *final.shape[1:-1], clean.shape[-1])
                return torch.stack([digit_losses(c, test, rows)[d] for c in logits])

            ablated = ablate_each_head(
                replay, means, measure, batch_size=8 * len(test.inputs), stage=stage, on_progress=on_progress
            )
            grid[:, :, d] = ablated - digit_losses(clean, test, rows)[d]
    return effects[True], effects[False]


def run_addition(
    config: AdditionConfig, out: str | Path, threads: int | None = None, on_progress: OnProgress | None = None
) -> AdditionResult:
    """Train (resuming from ``out`` if it holds a run of this configuration), then measure every head."""
    model = build_addition_model(config)
    test = addition_problems(config.n_digits, config.test_size, torch.Generator().manual_seed(10_000 + config.seed))

    def make(g: torch.Generator) -> tuple[torch.Tensor, ...]:
        problems = addition_problems(config.n_digits, config.batch_size, g)
        return problems.inputs, problems.answer

    batches = seeded_batches(make, config.seed)
    if threads is None:

        def forward_backward() -> None:
            _loss(model, batches(0)).backward()
            model.zero_grad(set_to_none=True)

        threads = fastest_thread_count(forward_backward)

    @torch.no_grad()
    def per_digit(m: torch.nn.Module) -> torch.Tensor:
        return digit_losses(m(test.inputs).logits, test)

    @torch.no_grad()
    def accuracy(m: torch.nn.Module) -> float:
        logits = m(test.inputs).logits[:, test.answer_positions]
        return float((logits.argmax(-1) == test.answer).all(1).float().mean())

    identity = {"task": "addition", "n_digits": config.n_digits, "test_size": config.test_size}
    metrics = {"digit_loss": per_digit, "accuracy": accuracy}
    training = TrainConfig.of(config, threads=threads)
    run = train(
        model,
        _loss,
        batches,
        training,
        out=out,
        metrics=metrics,
        identity=identity,
        description="addition",
        on_progress=on_progress,
    )
    curves = run.curve("digit_loss")
    model.eval()
    with torch.no_grad():
        carry, no_carry = _head_effects(model, test, on_progress)
    return AdditionResult(
        config=config,
        steps=run.metric_steps,
        digit_loss=curves.tolist(),
        accuracy=[float(a) for a in run.metrics["accuracy"]],
        phase_changes=_phase_changes(run.metric_steps, curves),
        ablation_carry=carry.tolist(),
        ablation_no_carry=no_carry.tolist(),
        threads=threads,
    )
