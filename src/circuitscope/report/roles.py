"""The roles of a prompt's positions, for labels a reader can follow: IO, S1, S2, END in an IOI prompt.

A report shows "attends to S2 ' John'·12 (0.41)" rather than a bare repeated name: the position
says which occurrence, the role says what it is. Roles come from the prompt's tokens and its two
answers: the correct answer's first occurrence is the IO, the incorrect answer's first and second
occurrences are S1 and S2, the token after S1 is S1+1, the answer position is END. For a task that is
not IOI the answers' occurrences are called ``correct`` and ``incorrect``.
"""

from __future__ import annotations

__all__ = ["labelled_positions", "position_roles"]


def position_roles(tokens: list[int], correct: int, incorrect: int, end: int, *, ioi: bool) -> dict[int, str]:
    """Position -> role for one prompt (positions without a role are absent)."""
    roles: dict[int, str] = {}
    right = [i for i, t in enumerate(tokens[: end + 1]) if t == correct]
    wrong = [i for i, t in enumerate(tokens[: end + 1]) if t == incorrect]
    if ioi:
        if right:
            roles[right[0]] = "IO"
        if wrong:
            roles[wrong[0]] = "S1"
            if wrong[0] + 1 < end and wrong[0] + 1 not in roles:
                roles[wrong[0] + 1] = "S1+1"
        if len(wrong) > 1:
            roles[wrong[1]] = "S2"
    else:
        for i in right:
            roles[i] = "correct"
        for i in wrong:
            roles[i] = "incorrect"
    roles[end] = "END"
    return roles


def labelled_positions(str_tokens: list[str], roles: dict[int, str]) -> list[str]:
    """Tick labels ``'tok'·i`` with the role appended where there is one (``' John'·12 S2``)."""
    return [f"{t!r}·{i}" + (f" {roles[i]}" if i in roles else "") for i, t in enumerate(str_tokens)]
