"""The maze policy: IMPALA's residual convolutional network, scaled down, with circuitscope hook points.

Each block is a 3x3 convolution, a 3x3 max-pool of stride 2 and ``residual_units`` residual units
(``x + conv(relu(conv(relu(x))))``), as in Espeholt et al.'s IMPALA network; then a ReLU, a linear
layer to ``hidden`` units, a ReLU, and two heads: four action logits (up, down, left, right) and a
value (used by PPO only).

Hook points (:class:`~circuitscope.core.hook_points.HookPoint`, hook functions ``fn(tensor, hook)``
as everywhere in circuitscope), in forward order:

=========================  =============================================
``hook_in``                the observation           [batch 3 grid grid]
``blocks.B.hook_out``      the output of block B     [batch channels h w]
``hook_hidden``            the hidden layer          [batch hidden]
=========================  =============================================

``policy.hooks([(name, fn), ...])`` attaches them for a ``with`` block (names may be glob patterns,
as for :meth:`~circuitscope.core.hooked_model.HookedModel.hooks`), and
``policy.run_with_cache(obs, names=...)`` returns the logits with the activations.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from circuitscope.core.hook_points import HookFn, HookHandle, HookPoint
from circuitscope.core.names import NameFilter, resolve_names

__all__ = ["MazePolicy"]


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


class _Block(nn.Module):
    def __init__(self, in_channels: int, channels: int, residual_units: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.res = nn.ModuleList(_Residual(channels) for _ in range(residual_units))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.conv(x))
        for unit in self.res:
            x = unit(x)
        return x


def _pooled(size: int) -> int:
    return (size - 1) // 2 + 1  # 3x3 max-pool, stride 2, padding 1


def _no_wiring(_point: HookPoint) -> None:
    """The points are always called (the network is small), so attaching one needs no other wiring."""


class MazePolicy(nn.Module):
    """Observations [batch, 3, grid, grid] -> action logits [batch, 4] (and a value)."""

    def __init__(self, grid: int, channels: Sequence[int], residual_units: int, hidden: int) -> None:
        super().__init__()
        self.grid = grid
        sizes, widths = [grid], [3, *channels]
        self.blocks = nn.ModuleList(_Block(widths[i], widths[i + 1], residual_units) for i in range(len(channels)))
        for _ in channels:
            sizes.append(_pooled(sizes[-1]))
        self.fc = nn.Linear(widths[-1] * sizes[-1] ** 2, hidden)
        self.policy_head = nn.Linear(hidden, 4)
        self.value_head = nn.Linear(hidden, 1)
        names = ["hook_in", *(f"blocks.{b}.hook_out" for b in range(len(channels))), "hook_hidden"]
        layers = [None, *range(len(channels)), None]
        self.hook_points = {name: HookPoint(name, layer, _no_wiring) for name, layer in zip(names, layers, strict=True)}

    @property
    def hook_names(self) -> list[str]:
        """Every hook point, in forward order (the layers of the cheese-vector sweep and the probes)."""
        return list(self.hook_points)

    def policy_and_value(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        points = self.hook_points
        x = points["hook_in"](obs)
        for b, block in enumerate(self.blocks):
            x = points[f"blocks.{b}.hook_out"](block(x))
        h = points["hook_hidden"](torch.relu(self.fc(torch.relu(x).flatten(1))))
        return self.policy_head(h), self.value_head(h).squeeze(-1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.policy_and_value(obs)[0]

    @contextmanager
    def hooks(self, fwd_hooks: Sequence[tuple[NameFilter, HookFn]] = ()) -> Iterator[MazePolicy]:
        """Attach forward hooks for the duration of a ``with`` block; they are removed however it exits."""
        handles: list[HookHandle] = []
        try:
            for name, fn in fwd_hooks:
                for resolved in resolve_names(name, self.hook_names):
                    handles.append(self.hook_points[resolved].add(fn))
            yield self
        finally:
            for handle in reversed(handles):
                handle.remove()

    def run_with_cache(
        self, obs: torch.Tensor, names: NameFilter = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The logits and the activations at ``names`` (every hook point by default)."""
        cache: dict[str, torch.Tensor] = {}

        def keep(x: torch.Tensor, hook: HookPoint) -> None:
            cache[hook.name] = x.detach()

        with self.hooks([(name, keep) for name in resolve_names(names, self.hook_names)]):
            logits = self(obs)
        return logits, cache
