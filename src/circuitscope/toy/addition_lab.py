"""``circuitscope lab addition``: n-digit addition, one phase change per digit, and the heads of each carry.

The seed documents ask "why does 5-digit addition have a phase change per digit?" (after Nanda et
al.'s grokking work). The lab trains a small toy transformer on freshly drawn problems
(:mod:`circuitscope.toy.addition`), measures the loss of every answer digit on a fixed held-out
set at each checkpoint, and marks each digit's **phase change**: the checkpoint interval in which that
digit's loss first falls below half of its entropy (the plateau of knowing only its frequencies). After
training, every attention head is mean-ablated alone (:func:`~circuitscope.engine.head_ablation.ablate_each_head`):
the increase of each digit's loss is measured on the problems where that column receives a carry and
on those where it does not, and the probability moved to the answer of the opposite carry (``c_k - 1``
where a carry comes in, ``c_k + 1`` where none does): a head whose ablation moves it there brings
that digit its carry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import torch

import circuitscope as cs
from circuitscope.core.replay import BlockReplay
from circuitscope.engine.head_ablation import ablate_each_head
from circuitscope.models.toy.modeling import ToyTransformer
from circuitscope.progress import OnProgress
from circuitscope.toy.addition import (
    EQUALS,
    AdditionProblems,
    addition_problems,
    digit_entropy,
    digit_losses,
    wrong_carry_answer,
)
from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.lab_config import LabConfig, lab_preset
from circuitscope.toy.model import build_toy_of
from circuitscope.toy.threads import fastest_thread_count, torch_threads
from circuitscope.toy.trainer import MetricFn, TrainConfig, seeded_batches, train

__all__ = [
    "AdditionConfig",
    "AdditionInit",
    "AdditionPreset",
    "AdditionResult",
    "PhaseChange",
    "build_addition_model",
    "run_addition",
]

AdditionPreset = Literal["default", "paper"]
"""``default``: 5 digits, runs in minutes on 2 cores; ``paper``: a wider model trained longer."""

AdditionInit = Literal["fan_in", "normal"]
"""The model's initial weights: ``fan_in``, std 1/sqrt(fan-in) (embeddings 1/sqrt(d_model)); ``normal``, std 0.02."""


# Same shape as src/circuitscope/sae/train_config.py:TrainConfig, src/circuitscope/finetune/config.py:FinetuneConfig
# and src/circuitscope/studies/rewiring.py:RewiringConfig on purpose: each a config's own counts and settings, a
# docstring under each field (the house style); the lab's training fields come from LabConfig, not from them.
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
    checkpoint_every: int = 25
    """Steps between checkpoints (each measures every digit's held-out loss: 25 resolves the digits' phase changes)."""
    steps: int = 1200
    """Training steps (every digit is learned by about step 600 in the default run, see docs/addition.md)."""
    init: AdditionInit = "fan_in"
    """Initial weights. With ``normal`` (std 0.02) the attention starts almost uniform and the default run left
    the 10^2 digit at chance (ln 10) for 3,000 steps; with ``fan_in`` every digit is learned by step 600."""

    def __post_init__(self) -> None:
        if self.n_digits < 1:
            raise LabConfigError(f"n_digits must be at least 1, got {self.n_digits}")
        if min(self.n_layers, self.d_model, self.n_heads, self.d_mlp, self.batch_size, self.test_size) < 1:
            raise LabConfigError("n_layers, d_model, n_heads, d_mlp, batch_size and test_size must be positive")
        if self.d_model % self.n_heads:
            raise LabConfigError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        if self.init not in get_args(AdditionInit):
            raise LabConfigError(f"init must be one of {get_args(AdditionInit)}, got {self.init!r}")
        super().__post_init__()

    @classmethod
    def preset(cls, name: AdditionPreset) -> AdditionConfig:
        return lab_preset(
            cls,
            "addition",
            name,
            {"d_model": 128, "d_mlp": 512, "steps": 10_000, "batch_size": 512, "checkpoint_every": 100},
        )


@dataclass(frozen=True)
class PhaseChange:
    """Where one answer digit's loss falls: the first checkpoint below half of the digit's entropy."""

    digit: int
    """0 = units, n = the final carry."""
    start: int | None
    """The checkpoint step before the loss first falls below half of the digit's entropy (None: it never does)."""
    end: int | None
    """The checkpoint step at which it is below (None: the digit was not learned)."""
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
    digit_entropy: list[float]
    """Per digit, the entropy of its held-out values (nats): the loss of knowing its frequencies but not the operands,
    the plateau before it is learned (its phase change is where the loss falls below half of this)."""
    ablation_carry: list[list[list[float]]]
    """[layer][head][digit]: loss increase when the head is mean-ablated, on problems where the column carries in
    (NaN for the units, which no carry enters; for the final carry digit, the problems where it is 1)."""
    ablation_no_carry: list[list[list[float]]]
    """The same on problems where it does not (NaN where no such problem exists)."""
    ablation_wrong_carry: list[list[list[float]]]
    """[layer][head][digit]: increase of the probability on the answer of the opposite carry (``c_k - 1`` where a
    carry comes in, ``c_k + 1`` where none does) when the head is mean-ablated, over all held-out problems (NaN for
    the units). A head that brings a column its carry moves probability there; one that brings the column's own
    digits spreads it over all ten."""
    threads: int
    """torch threads the training ran on (measured fastest of 1 and 2 unless given)."""

    def carry_heads(self, top: int = 2) -> dict[int, list[tuple[int, int]]]:
        """Per digit, the (at most ``top``) heads whose ablation moves the most probability to the answer of the
        opposite carry, of those that move any; the units, which never receive a carry, have none."""
        out: dict[int, list[tuple[int, int]]] = {}
        for d in range(self.config.n_digits + 1):
            scores = [
                (per_digit[d], (layer, head))
                for layer, heads in enumerate(self.ablation_wrong_carry)
                for head, per_digit in enumerate(heads)
                if per_digit[d] > 0  # False for NaN
            ]
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


def _phase_changes(steps: list[int], curves: torch.Tensor, entropy: torch.Tensor) -> list[PhaseChange]:
    """Per digit, the checkpoints between which the loss first falls below half of the digit's entropy.

    ``entropy[d]`` is the loss of knowing digit ``d``'s frequencies but not the operands (ln 10 for a uniform
    digit), the plateau before the digit is learned; below half of it the model has gained more than half of
    the digit's information from the operands. Only the first crossing counts, so a later spike and its
    recovery do not move it, and neither does how far the loss falls afterwards (the earlier midpoint in
    log-loss between the start and the final loss moved later the longer a run trained on). A digit that
    never crosses, or is below from the first checkpoint, has none.
    """
    out = []
    for d in range(curves.shape[1]):
        crossed = (curves[:, d] < float(entropy[d]) / 2).nonzero().flatten()
        if len(crossed) == 0 or int(crossed[0]) == 0:
            out.append(PhaseChange(d, None, None, float(curves[0, d]), float(curves[-1, d]), float(curves[-1, d])))
            continue
        j = int(crossed[0])
        out.append(
            PhaseChange(d, steps[j - 1], steps[j], float(curves[j - 1, d]), float(curves[j, d]), float(curves[-1, d]))
        )
    return out


def _subset(problems: AdditionProblems, rows: torch.Tensor) -> AdditionProblems:
    return AdditionProblems(problems.tokens[rows], problems.answer[rows], problems.carry_in[rows], problems.n_digits)


Score = Callable[[torch.Tensor, AdditionProblems], torch.Tensor]
"""``score(logits, problems)``: one number from the logits at the answer positions, ``[rows, n + 1, vocab]``."""


def _loss_of(d: int) -> Score:
    return lambda logits, problems: digit_losses(logits, problems)[d]


def _wrong_carry_of(d: int) -> Score:
    """Digit ``d``'s mean probability on the answer of the opposite carry (:func:`wrong_carry_answer`)."""
    return lambda logits, problems: logits[:, d].softmax(-1).gather(1, wrong_carry_answer(problems)[:, d, None]).mean()


def _ablations(
    hooked: cs.HookedModel, means: dict[int, torch.Tensor], problems: AdditionProblems, score: Score, **progress: Any
) -> torch.Tensor:
    """[layer, head] change of ``score`` on ``problems`` with each head's ``hook_z`` set to ``means`` alone."""
    replay = BlockReplay(hooked, problems.inputs)
    at = list(problems.answer_positions)

    def of(final: torch.Tensor) -> torch.Tensor:  # [rows, pos, d_model] -> the score
        return score(hooked.unembed_resid(final[:, at]), problems)

    def measure(final: torch.Tensor, copies: int) -> torch.Tensor:
        return torch.stack([of(copy) for copy in final.view(copies, -1, *final.shape[1:])])

    ablated = ablate_each_head(replay, means, measure, batch_size=8 * replay.batch, **progress)
    return ablated - of(replay.final_resid)


def _head_effects(
    model: ToyTransformer, test: AdditionProblems, on_progress: OnProgress | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[layer, head, digit] effects of mean-ablating each head alone (its ``hook_z`` replaced by its mean over the
    held-out problems at each position): the loss increase on the problems whose column carries in, the same on
    those that do not, and the increase of the probability on the answer of the opposite carry (all problems).

    Each digit's two groups of problems are replayed apart, so every ablated pass runs on the rows it is measured on.
    """
    hooked = cs.HookedModel(model)
    means: dict[int, torch.Tensor] = {}

    def record_mean(z: torch.Tensor, hook: Any) -> None:
        means[int(hook.name.split(".")[1])] = z.mean(0, keepdim=True)  # [1, pos, head, d_head]

    with hooked.hooks([("blocks.*.attn.hook_z", record_mean)]):
        hooked(test.inputs)
    shape = (model.config.n_layers, model.config.n_heads, test.n_digits + 1)
    carry, no_carry, wrong = (torch.full(shape, float("nan")) for _ in range(3))
    progress = {"stage": "ablating each head, per digit", "on_progress": on_progress}
    for d in range(test.n_digits + 1):
        for grid, rows in ((carry, test.carry_in[:, d]), (no_carry, ~test.carry_in[:, d])):
            if bool(rows.any()):  # the units never receive a carry
                grid[:, :, d] = _ablations(hooked, means, _subset(test, rows), _loss_of(d), **progress)
        if d > 0:  # nor have an opposite carry
            wrong[:, :, d] = _ablations(hooked, means, test, _wrong_carry_of(d), **progress)
    return carry, no_carry, wrong


def _held_out_metrics(test: AdditionProblems) -> dict[str, MetricFn]:
    """The per-checkpoint measurements: each digit's held-out loss, and the share of problems with every digit right
    (one forward pass for both: ``accuracy`` runs right after ``digit_loss``, in the order of the metrics)."""
    last: dict[str, torch.Tensor] = {}  # this checkpoint's held-out logits at the answer positions

    def digit_loss(m: torch.nn.Module) -> torch.Tensor:
        last["logits"] = m(test.inputs).logits[:, test.answer_positions]
        return digit_losses(last["logits"], test)

    def accuracy(m: torch.nn.Module) -> float:
        logits = last.pop("logits", None)
        if logits is None:  # called on its own
            logits = m(test.inputs).logits[:, test.answer_positions]
        return float((logits.argmax(-1) == test.answer).all(1).float().mean())

    return {"digit_loss": digit_loss, "accuracy": accuracy}


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

    identity = {"task": "addition", "n_digits": config.n_digits, "test_size": config.test_size}
    training = TrainConfig.of(config, threads=threads)
    run = train(
        model,
        _loss,
        batches,
        training,
        out=out,
        metrics=_held_out_metrics(test),
        identity=identity,
        description="addition",
        on_progress=on_progress,
    )
    curves = run.curve("digit_loss")
    entropy = digit_entropy(test)
    model.eval()
    with torch_threads(threads), torch.no_grad():  # the count training measured fastest, for the ablations too
        carry, no_carry, wrong = _head_effects(model, test, on_progress)
    return AdditionResult(
        config=config,
        steps=run.metric_steps,
        digit_loss=curves.tolist(),
        accuracy=[float(a) for a in run.metrics["accuracy"]],
        phase_changes=_phase_changes(run.metric_steps, curves, entropy),
        digit_entropy=entropy.tolist(),
        ablation_carry=carry.tolist(),
        ablation_no_carry=no_carry.tolist(),
        ablation_wrong_carry=wrong.tolist(),
        threads=threads,
    )
