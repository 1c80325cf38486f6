"""Where the roles of an IOI prompt sit: IO, S1, S1+1, S2 and END, one index per prompt.

"When Mary and John went to the store, John gave a drink to" -> " Mary": IO is the indirect
object's one mention (``Mary``), S1 and S2 the subject's first and second mention (``John``),
S1+1 the token after S1, END the last token (where the answer is predicted). Templates differ in
length, so every role is a ``[batch]`` tensor of positions in the clean tokens.

The positions are read off the clean tokens and the answers (IO is the correct answer, S the
incorrect one, as :func:`~circuitscope.tasks.ioi.ioi_task` builds them): a prompt must hold the IO
token once and the S token exactly twice before its answer position, IO and S1 before S2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Int
from torch import Tensor

from circuitscope.circuits.ioi.result import ROLES, Role
from circuitscope.tasks.task import Task, TaskError

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel

__all__ = ["IOIPositions", "ioi_positions"]


@dataclass(frozen=True)
class IOIPositions:
    """Per-prompt positions (in the clean tokens, BOS included) of every IOI role."""

    io: Int[Tensor, " batch"]
    """The indirect object's mention."""
    s1: Int[Tensor, " batch"]
    """The subject's first mention."""
    s1_plus_1: Int[Tensor, " batch"]
    """The token right after S1."""
    s2: Int[Tensor, " batch"]
    """The subject's second mention."""
    end: Int[Tensor, " batch"]
    """The last token, where the answer is predicted (the task's ``answer_pos``)."""

    def __post_init__(self) -> None:
        shapes = {tuple(t.shape) for t in (self.io, self.s1, self.s1_plus_1, self.s2, self.end)}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise ValueError(f"every role needs one position per prompt (equal [batch] shapes), got {sorted(shapes)}")

    def __len__(self) -> int:
        return int(self.end.shape[0])

    def of(self, role: Role) -> Int[Tensor, " batch"]:
        """The positions of ``role`` (one of :data:`~circuitscope.circuits.ioi.result.ROLES`)."""
        table = {"IO": self.io, "S1": self.s1, "S1+1": self.s1_plus_1, "S2": self.s2, "END": self.end}
        if role not in table:
            raise ValueError(f"unknown IOI role {role!r}; choose one of {ROLES}")
        return table[role]

    def to_json(self) -> dict[str, Any]:
        return {role: self.of(role).tolist() for role in ROLES}


def _token(model: HookedModel, token: int) -> str:
    return repr(model.to_string(token)) if model.tokenizer is not None else f"token {token}"


def ioi_positions(model: HookedModel, task: Task) -> IOIPositions:
    """The role positions of every clean prompt of an IOI ``task`` (IO = the correct answer, S = the incorrect one).

    Raises :class:`~circuitscope.tasks.task.TaskError` for a prompt that does not hold the IO token once and
    the S token twice before its answer position, IO and S1 before S2 (not an IOI prompt as the circuit needs).
    """
    rows: list[tuple[int, int, int]] = []
    for i in range(len(task)):
        end = int(task.answer_pos[i])
        prompt = task.clean_tokens[i, : end + 1]
        io_id, s_id = int(task.correct[i]), int(task.incorrect[i])
        io_at = (prompt == io_id).nonzero().flatten().tolist()
        s_at = (prompt == s_id).nonzero().flatten().tolist()
        if len(io_at) != 1 or len(s_at) != 2 or not io_at[0] < s_at[1] or s_at[1] == end:
            text = task.clean_prompts[i] if i < len(task.clean_prompts) else ""
            raise TaskError(
                f"prompt {i} ({text!r}) is not an IOI prompt: it needs the indirect object "
                f"({_token(model, io_id)}, the correct answer) once and the subject ({_token(model, s_id)}, the "
                f"incorrect answer) twice, both before S2 and S2 before the last token; found IO at {io_at} and S at "
                f"{s_at}. Build the task with circuitscope.tasks.ioi.ioi_task."
            )
        rows.append((io_at[0], s_at[0], s_at[1]))
    io, s1, s2 = (torch.tensor(col, dtype=torch.long) for col in zip(*rows, strict=True))
    return IOIPositions(io=io, s1=s1, s1_plus_1=s1 + 1, s2=s2, end=task.answer_pos.clone().long())
