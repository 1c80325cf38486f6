"""The IOI circuit tested as Wang et al. 2022 test it: faithfulness, completeness, minimality.

F(X) is the mean logit difference (IO - S) on the clean prompts when the heads of X run as they
are and every other head is mean-ablated over the ABC distribution (its mean ``hook_z`` over ABC
fills of the prompt's own template, at each position: :mod:`~circuitscope.circuits.ioi.ablation`).
MLPs and embeddings always run as they are. M is the whole model (F(M): nothing ablated), C the
circuit (every head in some class), and ``X \\ K`` is X with the heads of K also ablated.

- **Faithfulness**: F(C) / F(M) (87% for GPT-2 small in the paper).
- **Completeness**: for removal sets K, |F(C \\ K) - F(M \\ K)|: a complete circuit stays close to
  the model when parts of both are knocked out. K is each class of the circuit (the paper's
  class-removal sets), the empty set, and ``n_random`` random subsets of the circuit (each head in
  with probability 1/2, as in the paper; an empty draw is drawn again).
- **Minimality**: for each circuit head v, |F(C \\ (K ∪ {v})) - F(C \\ K)| for the K that shows v
  matters most, among: K = ∅; K = v's class without v; K = v's partner group without v. Partner
  groups are heads that can stand in for one another (:data:`PARTNERS`): the three name-mover
  classes (backups take over when name movers are gone), S-inhibition, induction with
  duplicate-token (both mark S2 as a repeated name), previous-token.

Every F(·) is one forward pass over the clean prompts; the distinct ablation sets are stacked in
the batch (``batch_size`` rows per pass, a row: one prompt under one ablation set).

:func:`circuit_of` writes the circuit's edges as a circuit file that ``circuitscope circuit-eval``
reads.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from circuitscope.analysis.attribution import answer_logits
from circuitscope.circuits.circuit import Circuit
from circuitscope.circuits.graph import CircuitError, Graph
from circuitscope.circuits.intervene import graph_of
from circuitscope.circuits.ioi.ablation import HeadMeanAblation, TemplateMeans, template_means
from circuitscope.circuits.ioi.result import (
    CircuitEvaluation,
    CompletenessPoint,
    HeadClass,
    HeadClasses,
    MinimalityPoint,
)
from circuitscope.engine.batching import batch_slices
from circuitscope.progress import OnProgress, track
from circuitscope.tasks.ioi import ioi_abc_prompts
from circuitscope.tasks.metrics import evaluate_metric

if TYPE_CHECKING:
    from circuitscope.core.hooked_model import HookedModel
    from circuitscope.tasks.task import Task

__all__ = [
    "DEFAULT_N_RANDOM",
    "DEFAULT_N_REFERENCE",
    "PARTNERS",
    "WIRING",
    "ablated_logit_diffs",
    "circuit_of",
    "evaluate_circuit",
    "ioi_template_means",
]

Head = tuple[int, int]

DEFAULT_N_REFERENCE = 8
"""ABC prompts per template the means are taken over."""
DEFAULT_N_RANDOM = 8
"""Random removal sets for completeness."""

_MOVERS: tuple[HeadClass, ...] = ("name_mover", "backup_name_mover", "negative_name_mover")
PARTNERS: dict[HeadClass, tuple[HeadClass, ...]] = {
    "name_mover": _MOVERS,
    "backup_name_mover": _MOVERS,
    "negative_name_mover": _MOVERS,
    "s_inhibition": ("s_inhibition",),
    "induction": ("induction", "duplicate_token"),
    "duplicate_token": ("induction", "duplicate_token"),
    "previous_token": ("previous_token",),
}
"""For minimality: the classes whose heads can stand in for a head of this class."""

WIRING: tuple[tuple[tuple[HeadClass, ...], tuple[HeadClass, ...], tuple[str, ...]], ...] = (
    (("previous_token",), ("induction",), ("k",)),
    (("induction", "duplicate_token"), ("s_inhibition",), ("k", "v")),
    (("s_inhibition",), _MOVERS, ("q",)),
)
"""The circuit's head-to-head edges: (sender classes, receiver classes, the receivers' inputs)."""


def ioi_template_means(
    model: HookedModel, task: Task, n_reference: int, *, seed: int, batch_size: int, on_progress: OnProgress | None
) -> TemplateMeans:
    """Every head's mean output over ``n_reference`` ABC fills of each template of ``task`` (an IOI task),
    checked to line up position by position with the task's clean prompts."""
    templates = _templates(task)
    means = template_means(
        model, ioi_abc_prompts(model, templates, n_reference, seed), batch_size=batch_size, on_progress=on_progress
    )
    for i, label in enumerate(templates):
        length = int(task.answer_pos[i]) + 1
        want = means.lengths[means.index(label)]
        if length != want:
            raise CircuitError(
                f"clean prompt {i} ({task.clean_prompts[i]!r}) has {length} tokens but the ABC prompts of its "
                f"template {label} have {want}, so positions do not line up for mean ablation; use names, places "
                "and objects that are one token each"
            )
    return means


def _templates(task: Task) -> list[str]:
    templates = task.labels.get("template")
    if not templates or len(templates) != len(task):
        raise CircuitError(
            f"task {task.name!r} has no per-prompt 'template' labels; the IOI circuit is mean-ablated per "
            "template: build the task with circuitscope.tasks.ioi_task"
        )
    return list(templates)


def ablated_logit_diffs(
    model: HookedModel,
    task: Task,
    means: TemplateMeans,
    ablations: Sequence[frozenset[Head]],
    *,
    batch_size: int,
    on_progress: OnProgress | None = None,
) -> list[float]:
    """F for each ablation set: the mean logit difference on ``task``'s clean prompts with those heads
    mean-ablated (``means`` per template and position) and every other head as it is.

    The sets are stacked in the batch: ``batch_size`` rows per forward pass, a row being one prompt
    under one set.
    """
    cfg = model.cfg
    n, n_sets = len(task), len(ablations)
    masks = torch.zeros(n_sets, cfg.n_layers, cfg.n_heads, dtype=torch.bool)
    for j, heads in enumerate(ablations):
        for layer, head in heads:
            if not (0 <= layer < cfg.n_layers and 0 <= head < cfg.n_heads):
                raise CircuitError(f"head L{layer}H{head} is not in this model ({cfg.n_layers} x {cfg.n_heads} heads)")
            masks[j, layer, head] = True
    rows_template = torch.tensor([means.index(t) for t in _templates(task)])
    sums = torch.zeros(n_sets, dtype=torch.float64)
    for part in track(batch_slices(n_sets * n, batch_size), "ioi mean ablation: F(.)", on_progress):
        row = torch.arange(part.start, part.stop)
        which, prompt = row // n, row % n
        pos = task.answer_pos[prompt]
        tokens = task.clean_tokens[prompt, : int(pos.max()) + 1]
        ablation = HeadMeanAblation(means, rows_template[prompt], masks[which])
        with model.apply(ablation):
            logits, _ = answer_logits(model, tokens, pos)
        dev = logits.device
        diff = evaluate_metric("logit_diff", logits, task.correct[prompt].to(dev), task.incorrect[prompt].to(dev))
        sums.index_add_(0, which, diff.detach().double().cpu())
    return (sums / n).tolist()


def _random_sets(circuit: list[Head], n_random: int, seed: int) -> list[list[Head]]:
    """``n_random`` subsets of the circuit, each head in with probability 1/2 (an empty draw drawn again)."""
    if not circuit:
        return []
    rng = random.Random(seed)
    out = []
    for _ in range(n_random):
        pick: list[Head] = []
        while not pick:
            pick = [h for h in circuit if rng.random() < 0.5]
        out.append(pick)
    return out


def _minimality_sets(classes: HeadClasses, head: Head) -> list[list[Head]]:
    """The K candidates for ``head``: ∅, its class without it, its partner group without it (distinct ones)."""
    own = classes.class_of(*head)
    assert own is not None
    group = sorted({h for c in PARTNERS[own] for h in classes.heads(c)} - {head})
    candidates: list[list[Head]] = [[], [h for h in classes.heads(own) if h != head], group]
    out: list[list[Head]] = []
    for k in candidates:
        if sorted(k) not in [sorted(o) for o in out]:
            out.append(k)
    return out


def evaluate_circuit(
    model: HookedModel,
    task: Task,
    classes: HeadClasses,
    *,
    n_reference: int = DEFAULT_N_REFERENCE,
    n_random: int = DEFAULT_N_RANDOM,
    seed: int = 0,
    batch_size: int = 32,
    on_progress: OnProgress | None = None,
) -> CircuitEvaluation:
    """Faithfulness, completeness and minimality of the circuit ``classes`` on ``task`` (an IOI task from
    :func:`~circuitscope.tasks.ioi_task`), everything outside it mean-ablated over the ABC distribution.

    ``n_reference`` ABC prompts per template give the means; ``n_random`` random removal sets test
    completeness; ``seed`` draws both. ``batch_size`` rows per forward pass (see :func:`ablated_logit_diffs`).
    """
    if n_reference < 1:
        raise CircuitError(f"n_reference must be at least 1 ABC prompt per template, got {n_reference}")
    if n_random < 0:
        raise CircuitError(f"n_random must be 0 or more random removal sets, got {n_random}")
    cfg = model.cfg
    means = ioi_template_means(model, task, n_reference, seed=seed, batch_size=batch_size, on_progress=on_progress)
    circuit = classes.all_heads
    outside = frozenset((layer, head) for layer in range(cfg.n_layers) for head in range(cfg.n_heads)) - set(circuit)
    removals: list[tuple[str, list[Head]]] = [("empty", [])]
    removals += [(f"class:{name}", classes.heads(name)) for name in classes.classes if classes.heads(name)]
    removals += [(f"random:{i}", k) for i, k in enumerate(_random_sets(circuit, n_random, seed))]
    minimal = [(v, _minimality_sets(classes, v)) for v in circuit]
    wanted: dict[frozenset[Head], None] = {frozenset(): None, outside: None}
    for _, k in removals:
        wanted[outside | set(k)] = None
        wanted[frozenset(k)] = None
    for v, ks in minimal:
        for k in ks:
            wanted[outside | set(k)] = None
            wanted[outside | set(k) | {v}] = None
    sets = list(wanted)
    values = ablated_logit_diffs(model, task, means, sets, batch_size=batch_size, on_progress=on_progress)
    f = dict(zip(sets, values, strict=True))
    completeness = [
        CompletenessPoint(label, list(k), f_circuit=f[outside | set(k)], f_model=f[frozenset(k)])
        for label, k in removals
    ]
    minimality = []
    for v, ks in minimal:
        own = classes.class_of(*v)
        assert own is not None  # every circuit head is in a class
        points = [MinimalityPoint(v, own, list(k), f[outside | set(k)], f[outside | set(k) | {v}]) for k in ks]
        minimality.append(max(points, key=lambda p: p.change))
    return CircuitEvaluation(
        f_model=f[frozenset()], f_circuit=f[outside], completeness=completeness, minimality=minimality,
        n_reference=n_reference,
    )  # fmt: skip


def _receiver(graph: Graph, layer: int, head: int, kind: str) -> str:
    """A head's q input, or the k/v input of its key/value head (``a3.kv0<k>`` under grouped-query attention)."""
    if kind == "q":
        return f"a{layer}.h{head}<q>"
    group = graph.n_heads // graph.n_kv_heads
    prefix = "h" if graph.n_kv_heads == graph.n_heads else "kv"
    return f"a{layer}.{prefix}{head // group}<{kind}>"


def circuit_of(model: HookedModel, classes: HeadClasses, task: Task, *, model_name: str) -> Circuit:
    """The circuit's edges in the model's graph, as a circuit file (``method="ioi-classes"``).

    Edges (:data:`WIRING`): previous-token -> induction (k), induction and duplicate-token ->
    S-inhibition (k, v), S-inhibition -> the three name-mover classes (q), the name-mover classes ->
    logits; and the input embedding -> every circuit head's q, k and v (the paper keeps embeddings as
    they are: the name movers copy names the embedding writes). An edge whose sender is not upstream of
    its receiver (e.g. an S-inhibition head below an induction head) cannot exist and is listed in
    ``info["unreachable"]``. ``info["classes"]`` gives each head node's class. Scores are NaN (the edges
    come from the class search, not from edge scores); ``circuit-eval`` runs it with mean ablation.
    """
    graph = graph_of(model)
    edges = torch.zeros(graph.n_senders, graph.n_receivers, dtype=torch.bool)
    unreachable: list[str] = []

    def add(sender: str, receiver: str) -> None:
        u, r = graph.sender(sender), graph.receiver(receiver)
        if bool(graph.allowed[u, r]):
            edges[u, r] = True
        elif f"{sender}->{receiver}" not in unreachable:
            unreachable.append(f"{sender}->{receiver}")

    def members(names: tuple[HeadClass, ...]) -> list[Head]:
        return sorted({h for c in names for h in classes.heads(c)})

    for layer, head in classes.all_heads:
        for kind in ("q", "k", "v"):
            add("input", _receiver(graph, layer, head, kind))
    for senders, receivers, kinds in WIRING:
        for s_layer, s_head in members(senders):
            for r_layer, r_head in members(receivers):
                for kind in kinds:
                    add(f"a{s_layer}.h{s_head}", _receiver(graph, r_layer, r_head, kind))
    for layer, head in members(_MOVERS):
        add(f"a{layer}.h{head}", "logits")
    unscored = torch.full((graph.n_senders, graph.n_receivers), float("nan"))
    info = {
        "classes": {f"a{layer}.h{head}": classes.class_of(layer, head) for layer, head in classes.all_heads},
        "unreachable": unreachable,
    }
    return Circuit.found(
        model, task, edges, unscored, graph=graph, model_name=model_name, method="ioi-classes", ablation="mean",
        info=info,
    )  # fmt: skip
