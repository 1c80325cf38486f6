"""The IOI circuit's answer in words and its comparison with GPT-2 small's published circuit.

:func:`answer_paragraph` writes, from the numbers of an
:class:`~circuitscope.circuits.ioi.result.IOICircuitResult` alone, which head classes the model has,
where they sit (relative depth: layer / n_layers, so models of different depth compare), how
faithful the circuit is, and what differs from GPT-2 small (Wang et al. 2022). The report puts it
first and ``circuitscope report ioi --json`` prints it.
"""

from __future__ import annotations

from circuitscope.circuits.ioi.result import HEAD_CLASSES, HeadClass, IOICircuitResult

__all__ = [
    "CLASS_TITLES",
    "answer_paragraph",
    "answer_sentences",
    "comparison_rows",
    "depth_text",
    "head_roles",
    "heads_text",
]

CLASS_TITLES: dict[HeadClass, str] = {
    "name_mover": "name movers",
    "negative_name_mover": "negative name movers",
    "s_inhibition": "S-inhibition heads",
    "induction": "induction heads",
    "duplicate_token": "duplicate-token heads",
    "previous_token": "previous-token heads",
    "backup_name_mover": "backup name movers",
}
"""Each class in words (plural), as the page and the answer name it."""


def depth_text(heads: list[tuple[int, int]], n_layers: int) -> str:
    """The relative depth (layer / n_layers) of ``heads``: ``0.75`` or a range ``0.58-0.67``; '' for none."""
    if not heads:
        return ""
    depths = sorted(layer / n_layers for layer, _ in heads)
    lo, hi = depths[0], depths[-1]
    return f"{lo:.2f}" if round(lo, 2) == round(hi, 2) else f"{lo:.2f}-{hi:.2f}"


def heads_text(heads: list[tuple[int, int]]) -> str:
    """``L9H6, L9H9`` (or ``none``)."""
    return ", ".join(f"L{a}H{b}" for a, b in heads) or "none"


def _mean_depth(heads: list[tuple[int, int]], n_layers: int) -> float:
    return sum(layer for layer, _ in heads) / len(heads) / n_layers


def head_roles(result: IOICircuitResult) -> dict[tuple[int, int], str]:
    """Each circuit head's class in words (a head found in two steps keeps the first class)."""
    roles: dict[tuple[int, int], str] = {}
    for name in HEAD_CLASSES:
        for head in result.classes.heads(name):
            roles.setdefault(head, CLASS_TITLES[name])
    return roles


def comparison_rows(result: IOICircuitResult) -> list[list[str]]:
    """One row per class: its heads and relative depth here, and in the published circuit."""
    ref = result.reference
    rows = []
    for name in HEAD_CLASSES:
        ours = result.classes.heads(name)
        theirs = ref.classes.get(name, [])
        rows.append([
            CLASS_TITLES[name],
            heads_text(ours) if ours else "empty",
            depth_text(ours, result.n_layers) or "—",
            heads_text(theirs) if theirs else "none listed",
            depth_text(theirs, ref.n_layers) or "—",
        ])  # fmt: skip
    return rows


def _classes_sentence(result: IOICircuitResult) -> str:
    found: list[HeadClass] = [c for c in HEAD_CLASSES if result.classes.heads(c)]
    empty = [CLASS_TITLES[c] for c in HEAD_CLASSES if not result.classes.heads(c)]
    rule = result.classes.rule
    if not found:
        return (
            f"No head passed the threshold rule (more than {rule.k_std:g} standard deviations from the mean score) "
            "in any step, so every class is empty."
        )
    parts = [
        f"{CLASS_TITLES[c]} {heads_text(result.classes.heads(c))} "
        f"(relative depth {depth_text(result.classes.heads(c), result.n_layers)})"
        for c in found
    ]
    text = f"It has {len(found)} of the paper's seven head classes: {'; '.join(parts)}."
    if empty:
        text += f" Empty (no head passed the cut): {', '.join(empty)}."
    return text


_MOVER_CLASSES: tuple[HeadClass, ...] = ("name_mover", "backup_name_mover")


def _movers_sentence(result: IOICircuitResult) -> str:
    """Name movers that attend to S rather than IO, said as such (the paper's name movers attend to IO and copy it)."""
    odd = []
    for name in _MOVER_CLASSES:
        for m in result.classes.classes[name].members:
            to_io = m.attention.get("END->IO")
            to_s = m.attention.get("END->S1", 0.0) + m.attention.get("END->S2", 0.0)
            if to_io is None or to_s <= to_io:
                continue
            copy = f", OV copy score on names {m.copy_score:.2f}" if m.copy_score is not None else ""
            odd.append(f"{m.name} ({CLASS_TITLES[name][:-1]}: END->S {to_s:.2f} vs END->IO {to_io:.2f}{copy})")
    if not odd:
        return ""
    return (
        f"By direct effect these heads move the answer toward IO, but they attend from END to S more than to IO: "
        f"{'; '.join(odd)}. They raise the logit difference mostly by writing against S (as an S-suppressing or "
        "copy-suppression head does), not by copying IO as GPT-2 small's name movers do."
    )


def _evaluation_sentences(result: IOICircuitResult) -> list[str]:
    ev = result.evaluation
    if ev is None:
        return ["The circuit was not evaluated (it is empty, or the model cannot do the task)."]
    n_heads = len(result.classes.all_heads)
    paper = result.reference.faithfulness
    versus = f" (the paper: {paper:.0%} for {result.reference.model})" if paper is not None else ""
    out = [
        f"With every other head mean-ablated (means over {ev.n_reference} ABC prompts per template), the circuit "
        f"of {n_heads} heads gives F(C) = {ev.f_circuit:.2f} against the model's F(M) = {ev.f_model:.2f}: "
        f"faithfulness {ev.faithfulness:.0%}{versus}."
    ]
    if ev.completeness:
        worst = max(ev.completeness, key=lambda p: p.gap)
        share = f" ({worst.gap / abs(ev.f_model):.0%} of F(M))" if ev.f_model else ""
        out.append(
            f"Completeness: over {len(ev.completeness)} removal sets K the largest |F(C\\K) - F(M\\K)| is "
            f"{worst.gap:.2f}{share}, for {worst.label}."
        )
    if ev.minimality:
        least = min(ev.minimality, key=lambda p: p.change)
        most = max(ev.minimality, key=lambda p: p.change)
        out.append(
            f"Minimality: removing one circuit head changes the circuit's logit difference by {least.change:.2f} "
            f"(L{least.head[0]}H{least.head[1]}, the least needed) to {most.change:.2f} "
            f"(L{most.head[0]}H{most.head[1]})."
        )
    return out


def _differences_sentence(result: IOICircuitResult) -> str:
    ref = result.reference
    parts = []
    for name in HEAD_CLASSES:
        ours, theirs = result.classes.heads(name), ref.classes.get(name, [])
        title = CLASS_TITLES[name]
        if ours and theirs:
            parts.append(
                f"{title} at relative depth {_mean_depth(ours, result.n_layers):.2f} here, "
                f"{_mean_depth(theirs, ref.n_layers):.2f} there ({len(ours)} vs {len(theirs)} heads)"
            )
        elif theirs:
            where = depth_text(theirs, ref.n_layers)
            parts.append(f"{ref.model} has {title} ({len(theirs)}, depth {where}), none here")
        elif ours:
            parts.append(f"{title} here, none listed for {ref.model}")
    n_ref = len({h for heads in ref.classes.values() for h in heads})
    size = f"The circuit has {len(result.classes.all_heads)} heads, {ref.model}'s published one {n_ref}."
    return f"Compared with {ref.model}: {'; '.join(parts)}. {size}" if parts else size


def answer_paragraph(result: IOICircuitResult) -> str:
    """The short written answer: which classes exist, where, how faithful the circuit is, what differs."""
    return " ".join(answer_sentences(result))


def answer_sentences(result: IOICircuitResult) -> list[str]:
    """:func:`answer_paragraph` in its parts: the task, the classes, the evaluation, the comparison."""
    r = result
    text = [
        f"{r.model_name} ({r.n_layers} layers x {r.n_heads} heads) on {r.n_prompts} IOI prompts: the indirect "
        f"object beats the subject in {r.clean_accuracy:.0%} of them (mean logit difference {r.clean_logit_diff:.2f})."
    ]
    if r.evaluation is None and r.warnings:
        return [*text, f"No circuit was built: {r.warnings[0]}"]
    movers = [m for m in (_movers_sentence(r),) if m]
    return [*text, _classes_sentence(r), *movers, *_evaluation_sentences(r), _differences_sentence(r)]
