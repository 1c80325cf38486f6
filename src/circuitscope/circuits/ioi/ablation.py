"""Mean ablation of attention heads over the ABC distribution, per template and position.

Wang et al. 2022 test the IOI circuit by replacing every head outside it with its mean output
over ABC prompts (three distinct names, so nothing points at an indirect object), taken for the
prompt's own template at each position, while MLPs and embeddings run as they are.

:func:`template_means` takes those means (``blocks.L.attn.hook_z``, a head's output before ``W_O``);
:class:`HeadMeanAblation` is the intervention that swaps them in, row by row, for the heads a row
ablates (``model.apply(ablation)`` or ``interventions=[ablation]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Bool, Float, Int

from circuitscope.circuits.graph import CircuitError
from circuitscope.core.fingerprint import model_fingerprint
from circuitscope.engine.batching import batch_slices
from circuitscope.errors import ShapeError
from circuitscope.progress import OnProgress, track

if TYPE_CHECKING:
    from circuitscope.core.hook_points import HookFn
    from circuitscope.core.hooked_model import HookedModel
    from circuitscope.tasks.task import Task

__all__ = ["HeadMeanAblation", "TemplateMeans", "task_template_means", "template_groups", "template_means"]


def _z(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_z"


@dataclass(frozen=True, eq=False)
class TemplateMeans:
    """Every head's mean ``hook_z`` per template and position over a reference set of prompts."""

    templates: list[str]
    """Template labels (``BABA3``, ...), in the order of ``z``'s first axis."""
    lengths: list[int]
    """Token length (BOS included) of each template's prompts."""
    z: Float[torch.Tensor, "template layer pos head d_head"]
    """The means; zero beyond a template's length."""
    n_reference: int
    """Prompts per template the means were taken over."""
    fingerprint: str
    """:func:`~circuitscope.core.fingerprint.model_fingerprint` of the model they were taken on."""

    def index(self, template: str) -> int:
        try:
            return self.templates.index(template)
        except ValueError:
            raise CircuitError(
                f"no mean was taken for template {template!r} (means exist for {', '.join(self.templates)}); "
                "take the means over the templates of the prompts you ablate"
            ) from None


def template_means(
    model: HookedModel,
    prompts: Mapping[str, list[str]],
    *,
    batch_size: int,
    on_progress: OnProgress | None = None,
) -> TemplateMeans:
    """The mean ``hook_z`` of every head over each template's prompts (``{template: prompts}``).

    The prompts of one template must all tokenize to the same length, so that positions line up
    (an error names the template otherwise). ``batch_size`` bounds the prompts of one forward pass.
    """
    labels = list(prompts)
    if not labels or any(not p for p in prompts.values()):
        raise CircuitError("template_means needs at least one prompt for every template")
    counts = {len(p) for p in prompts.values()}
    if len(counts) != 1:
        raise CircuitError(f"every template needs the same number of reference prompts, got {sorted(counts)}")
    rows: list[list[int]] = []
    which: list[int] = []
    lengths: list[int] = []
    for t, label in enumerate(labels):
        encoded = [model.tok.encode(p) for p in prompts[label]]
        sizes = sorted({len(ids) for ids in encoded})
        if len(sizes) != 1:
            raise CircuitError(
                f"the reference prompts of template {label!r} tokenize to different lengths {sizes}, so their "
                "positions do not line up; use names, places and objects that are one token each"
            )
        lengths.append(sizes[0])
        rows += encoded
        which += [t] * len(encoded)
    width = max(lengths)
    tokens = torch.full((len(rows), width), model.tok.pad_token_id, dtype=torch.long)
    for i, ids in enumerate(rows):
        tokens[i, : len(ids)] = torch.tensor(ids)
    return _means_by_template(model, tokens, labels, which, lengths, batch_size, on_progress)


def task_template_means(
    model: HookedModel, task: Task, *, batch_size: int, on_progress: OnProgress | None = None
) -> TemplateMeans:
    """The mean ``hook_z`` of every head over the task's own corrupted (ABC) prompts of each template.

    Prompts are grouped by ``labels["template"]`` (by answer position when the task has no template
    labels) and averaged at every position of the task's width, padding included (right padding: it
    never reaches a real position). ``n_reference`` is the smallest group.
    """
    groups = template_groups(task)
    labels = list(dict.fromkeys(groups))
    which = [labels.index(g) for g in groups]
    lengths = [task.seq_len] * len(labels)
    return _means_by_template(model, task.corrupted_tokens, labels, which, lengths, batch_size, on_progress)


def template_groups(task: Task) -> list[str]:
    """Each prompt's template (``labels["template"]``), or its answer position where the task has no such labels."""
    return task.labels.get("template") or [str(int(p)) for p in task.answer_pos]


def _means_by_template(
    model: HookedModel,
    tokens: Int[torch.Tensor, "row pos"],
    labels: list[str],
    which: list[int],
    lengths: list[int],
    batch_size: int,
    on_progress: OnProgress | None,
) -> TemplateMeans:
    """Every head's ``hook_z`` averaged over the rows of each template (row ``i`` is of ``labels[which[i]]``),
    in float32, at the positions below the template's length (zero beyond)."""
    cfg = model.cfg
    width = tokens.shape[1]
    template = torch.tensor(which)
    valid = torch.arange(width)[None, :] < torch.tensor(lengths)[template][:, None]  # [row, pos]
    sums = torch.zeros(len(labels), cfg.n_layers, width, cfg.n_heads, cfg.d_head, device=model.device)
    names = [_z(layer) for layer in range(cfg.n_layers)]
    for part in track(batch_slices(len(which), batch_size), "ioi mean ablation: ABC means", on_progress):
        # right padding: causal attention keeps every real position as it would be alone
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens[part], names=names, stop_early=True)
        keep = valid[part].to(model.device)[:, :, None, None]
        idx = template[part].to(model.device)
        for layer, name in enumerate(names):
            z = cache[name].float() * keep
            sums[:, layer].index_add_(0, idx, z)
    counts = torch.bincount(template, minlength=len(labels)).to(sums)
    means = sums / counts[:, None, None, None, None]
    return TemplateMeans(labels, lengths, means, int(counts.min()), model_fingerprint(model))


@dataclass(frozen=True, eq=False)
class HeadMeanAblation:
    """An intervention: row ``b`` of the batch has the heads ``ablated[b]`` output their template's mean.

    Row ``b`` belongs to template ``means.templates[template_rows[b]]``; at every position ``p`` an
    ablated head ``(L, H)`` outputs ``means.z[template, L, p, H]`` at ``blocks.L.attn.hook_z``, every
    other head its own output. One value per batch layout: the batch it runs on must have
    ``len(template_rows)`` rows, or whole copies of them stacked copy-major (path patching's layout).
    """

    means: TemplateMeans
    template_rows: Int[torch.Tensor, " batch"]
    """Per row, the index of its template in ``means.templates``."""
    ablated: Bool[torch.Tensor, "batch layer head"]
    """Per row, which heads output their mean."""

    def __post_init__(self) -> None:
        b = self.template_rows.shape[0]
        n_t, n_layers, _, n_heads, _ = self.means.z.shape
        if self.template_rows.ndim != 1 or tuple(self.ablated.shape) != (b, n_layers, n_heads):
            raise ShapeError(
                f"ablated must be [batch, layer, head] = [{b}, {n_layers}, {n_heads}] for {b} template rows, "
                f"got {tuple(self.ablated.shape)}"
            )
        if b and (int(self.template_rows.min()) < 0 or int(self.template_rows.max()) >= n_t):
            raise ShapeError(f"template_rows index {n_t} templates; got values outside 0..{n_t - 1}")

    def check(self, model: HookedModel) -> None:
        mine = model_fingerprint(model)
        if mine != self.means.fingerprint:
            raise CircuitError(
                f"these means were taken on model {self.means.fingerprint}, not this one ({mine}); "
                "take them again on this model with template_means"
            )
        shape = tuple(self.means.z.shape[1:2]) + tuple(self.means.z.shape[3:])
        cfg = model.cfg
        if shape != (cfg.n_layers, cfg.n_heads, cfg.d_head):
            raise ShapeError(
                f"means for (layer, head, d_head) = {shape}; the model has "
                f"{(cfg.n_layers, cfg.n_heads, cfg.d_head)}: take them again on this model"
            )

    def hooks(self, model: HookedModel) -> list[tuple[str, HookFn]]:
        out: list[tuple[str, HookFn]] = []
        for layer in range(model.cfg.n_layers):
            mask = self.ablated[:, layer]
            if bool(mask.any()):
                out.append((_z(layer), self._hook(layer, mask)))
        return out

    def _hook(self, layer: int, mask: Bool[torch.Tensor, "batch head"]) -> HookFn:
        def ablate(z: torch.Tensor, hook: Any) -> torch.Tensor:
            b, pos = z.shape[:2]
            if b % mask.shape[0]:
                raise ShapeError(f"this mean ablation is for batches of {mask.shape[0]} rows; the forward pass has {b}")
            if pos > self.means.z.shape[2]:
                raise ShapeError(f"the means cover {self.means.z.shape[2]} positions; the forward pass has {pos}")
            copies = b // mask.shape[0]  # stacked copies of the batch (copy-major, as path patching runs them)
            rows = self.template_rows.to(self.means.z.device).repeat(copies)
            value = self.means.z[rows, layer, :pos].to(z.device, z.dtype)  # [batch, pos, head, d_head]
            return torch.where(mask.repeat(copies, 1).to(z.device)[:, None, :, None], value, z)

        return ablate
