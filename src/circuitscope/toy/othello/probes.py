"""Probes for the board inside the model: each square's state read from a residual stream, linear or MLP.

Two framings of a square's state (Li et al. 2023; Nanda et al. 2023): ``colour`` is empty / black /
white; ``relative`` is empty / mine / theirs, *mine* being the player to move next. Without passes
the two differ by a flip every move, so a model that keeps the board as mine/theirs has a linear
read-out of that framing and only a non-linear one (it must also know the parity) of the colours.

A probe reads the standardised residual stream at one position (the standardisation of
:mod:`circuitscope.probes`) and predicts the 3 states of every square at once (a multinomial logistic
probe per square, or an MLP with one hidden layer shared by the squares), trained with Adam on the
positions of 80% of the probe games and scored on the other 20%.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, get_args

import torch
from jaxtyping import Float, Int

from circuitscope.core.hooked_model import HookedModel
from circuitscope.probes.standardise import Standardisation
from circuitscope.progress import OnProgress, track
from circuitscope.toy.errors import LabConfigError
from circuitscope.toy.othello.board import EMPTY
from circuitscope.toy.othello.config import OthelloConfig
from circuitscope.toy.othello.games import PAD, replay
from circuitscope.toy.othello.training import model_inputs

# The names this module exports, one per line (alike in shape to other modules' lists, on purpose).
__all__ = [
    "BoardProbe",
    "Framing",
    "ProbeData",
    "ProbeKind",
    "ProbeScore",
    "fit_board_probe",
    "probe_data",
    "resid_name",
]

Framing = Literal["colour", "relative"]
ProbeKind = Literal["linear", "mlp"]
STATES: dict[Framing, tuple[str, str, str]] = {
    "colour": ("empty", "black", "white"),
    "relative": ("empty", "mine", "theirs"),
}
TRAIN_SHARE = 0.8
"""Share of the probe games whose positions train the probes (the rest test them)."""


def resid_name(layer: int) -> str:
    """The hook of residual stream ``layer``: 0 is the input of block 0 (the embedding), ``l`` the output of block
    l - 1."""
    return "blocks.0.hook_resid_pre" if layer == 0 else f"blocks.{layer - 1}.hook_resid_post"


@dataclass(frozen=True)
class ProbeData:
    """Residual streams and board labels at every position of the probe games that reads a move."""

    resid: dict[int, Float[torch.Tensor, "n d"]]
    """Layer -> the residual stream at each position (rows: game-major)."""
    labels: dict[Framing, Int[torch.Tensor, "n S"]]
    """Framing -> each square's state after the move read (0 empty, 1 black / mine, 2 white / theirs)."""
    train: torch.Tensor
    """Boolean [n]: the rows of the training games."""
    game: Int[torch.Tensor, " n"]
    """The probe game of each row."""
    position: Int[torch.Tensor, " n"]
    """The position (0-based move read) of each row."""
    boards: Int[torch.Tensor, "n S"]
    """The board (1 black, -1 white, 0 empty) after the move read."""
    to_move: Int[torch.Tensor, " n"]
    """The player to move next (1 black, -1 white): whose discs are *mine*."""


@torch.no_grad()
def probe_data(hooked: HookedModel, config: OthelloConfig, moves: Int[torch.Tensor, "G T"]) -> ProbeData:
    """The residual streams of ``config.layers()`` on ``moves`` and the board labels of both framings."""
    geometry = config.geometry()
    states = replay(geometry, moves, config.passes)
    tokens = model_inputs(moves, geometry.n_squares)  # [G, T - 1]
    read = moves[:, :-1] != PAD
    names = [resid_name(layer) for layer in config.layers()]
    _, cache = hooked.run_with_cache(tokens, names=names)
    after = states.boards[:, 1:-1][read]  # [n, S]
    mover = states.player[:, :-2][read]  # who made the move read
    nxt = states.player[:, 1:-1][read]
    to_move = torch.where(nxt != 0, nxt, -mover)  # after the last move: the mover's opponent
    relative = after * to_move[:, None]
    empty = after == EMPTY
    labels: dict[Framing, torch.Tensor] = {
        "colour": torch.where(empty, 0, torch.where(after == 1, 1, 2)),
        "relative": torch.where(empty, 0, torch.where(relative == 1, 1, 2)),
    }
    game = torch.arange(moves.shape[0])[:, None].expand_as(read)[read]
    position = torch.arange(read.shape[1])[None].expand_as(read)[read]
    n_train_games = int(moves.shape[0] * TRAIN_SHARE)
    resid = {layer: cache[name][read].float() for layer, name in zip(config.layers(), names, strict=True)}
    return ProbeData(resid, labels, game < n_train_games, game, position, after, to_move)


@dataclass(frozen=True)
class BoardProbe:
    """Logits ``[n, S, 3]`` of every square's state from standardised activations: linear, or an MLP."""

    kind: ProbeKind
    scale: Standardisation
    weights: tuple[torch.Tensor, ...]
    """Linear: (W [d, S * 3], b [S * 3]); MLP: (W1 [d, h], b1 [h], W2 [h, S * 3], b2 [S * 3])."""

    def logits(self, x: Float[torch.Tensor, "n d"]) -> Float[torch.Tensor, "n S 3"]:
        z = self.scale(x)
        if self.kind == "mlp":
            w1, b1, w2, b2 = self.weights
            z, (w, b) = torch.relu(z @ w1 + b1), (w2, b2)
        else:
            w, b = self.weights
        out = z @ w + b
        return out.view(x.shape[0], -1, 3)

    def directions(
        self, state_from: int, state_to: int
    ) -> tuple[Float[torch.Tensor, "S d"], Float[torch.Tensor, " S"]]:
        """Linear probes only: per square, ``v`` and ``c`` with ``logit[to] - logit[from] = x · v + c`` on raw ``x``."""
        if self.kind != "linear":
            raise LabConfigError("only a linear probe has a direction per square; use kind='linear'")
        w, b = self.weights
        w3, b3 = w.view(w.shape[0], -1, 3), b.view(-1, 3)
        diff = (w3[:, :, state_to] - w3[:, :, state_from]).T  # [S, d] on standardised features
        v = diff / self.scale.std
        c = (b3[:, state_to] - b3[:, state_from]) - v @ self.scale.mean
        return v, c


@dataclass(frozen=True)
class ProbeScore:
    """How well one probe reads the board on the held-out positions."""

    layer: int
    """Residual stream (0: embedding, l: after block l)."""
    framing: Framing
    kind: ProbeKind
    accuracy: float
    """Per-square accuracy over all squares and held-out positions."""
    occupied_accuracy: float
    """The same over the occupied squares only (the colour of a disc, the hard part)."""
    per_square: list[float]
    """Accuracy of each square (reading order)."""

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _init(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return (torch.randn(shape, generator=generator) * shape[0] ** -0.5).requires_grad_(True)


def fit_board_probe(
    x: Float[torch.Tensor, "n d"],
    labels: Int[torch.Tensor, "n S"],
    kind: ProbeKind,
    *,
    hidden: int = 128,
    steps: int = 600,
    batch_size: int = 512,
    lr: float = 1e-2,
    seed: int = 0,
) -> BoardProbe:
    """Fit a probe with Adam on mini-batches (seeded), cross-entropy averaged over the squares."""
    if kind not in get_args(ProbeKind):
        raise LabConfigError(f"kind must be one of {get_args(ProbeKind)}, got {kind!r}")
    g = torch.Generator().manual_seed(seed)
    scale = Standardisation.fit(x)
    z, n_out = scale(x), labels.shape[1] * 3
    d = x.shape[1]
    if kind == "mlp":
        weights = (_init((d, hidden), g), torch.zeros(hidden, requires_grad=True), _init((hidden, n_out), g))
        weights = (*weights, torch.zeros(n_out, requires_grad=True))
    else:
        weights = (torch.zeros(d, n_out, requires_grad=True), torch.zeros(n_out, requires_grad=True))
    probe = BoardProbe(kind, Standardisation(torch.zeros(d), torch.ones(d)), weights)
    optimizer = torch.optim.Adam(weights, lr=lr if kind == "linear" else lr / 3)
    with torch.enable_grad():
        for _ in range(steps):
            rows = torch.randint(0, z.shape[0], (min(batch_size, z.shape[0]),), generator=g)
            logits = probe.logits(z[rows])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 3), labels[rows].reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return BoardProbe(kind, scale, tuple(w.detach() for w in weights))


def score_probe(probe: BoardProbe, layer: int, framing: Framing, x: torch.Tensor, labels: torch.Tensor) -> ProbeScore:
    """``probe``'s accuracy on held-out rows ``x`` with their ``labels``."""
    with torch.no_grad():
        right = probe.logits(x).argmax(-1) == labels  # [n, S]
    occupied = labels != 0
    return ProbeScore(
        layer=layer,
        framing=framing,
        kind=probe.kind,
        accuracy=float(right.float().mean()),
        occupied_accuracy=float(right[occupied].float().mean()),
        per_square=right.float().mean(0).tolist(),
    )


def fit_all_probes(
    data: ProbeData, config: OthelloConfig, on_progress: OnProgress | None = None
) -> tuple[list[ProbeScore], dict[int, BoardProbe]]:
    """Every probe of ``config`` (each layer, framing and kind) scored on the held-out games; also the
    linear ``relative`` probe of each layer (for the intervention)."""
    jobs = [
        (layer, framing, kind)
        for layer in config.layers()
        for framing in get_args(Framing)
        for kind in get_args(ProbeKind)
    ]
    scores, relative = [], {}
    for layer, framing, kind in track(jobs, "board probes", on_progress):
        x, y = data.resid[layer], data.labels[framing]
        probe = fit_board_probe(
            x[data.train], y[data.train], kind, hidden=config.probe_hidden, steps=config.probe_steps, seed=config.seed
        )
        scores.append(score_probe(probe, layer, framing, x[~data.train], y[~data.train]))
        if framing == "relative" and kind == "linear":
            relative[layer] = probe
    return scores, relative
