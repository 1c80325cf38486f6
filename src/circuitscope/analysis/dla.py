"""Direct logit attribution: what each layer, head and MLP neuron writes along the answer direction.

At the answer position, the final residual stream is a sum of components (embeddings,
every attention and MLP output; each attention output a sum of heads; each MLP output a
sum of neurons). With the final norm's scale frozen at its value for the full stream
(as ``ActivationCache.apply_ln_to_stack`` does), the norm is linear, so every component
contributes ``apply_ln(component) · (W_U[:, correct] - W_U[:, incorrect])`` and the
contributions plus the norm's bias term and the unembedding bias add up to the logit
difference exactly. Final logit softcapping (Gemma 2) is not linear; the sum then
matches the logit difference before softcapping, which ``pre_softcap_total`` reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float

from circuitscope.analysis._top import top_cells
from circuitscope.core.capabilities import require_attention
from circuitscope.core.hooked_model import HookedModel
from circuitscope.core.norms import FrozenNorm
from circuitscope.core.readout import require_linear_readout
from circuitscope.errors import UnsupportedAnalysisError, UnsupportedModelError
from circuitscope.tasks.task import Task

__all__ = ["DLAResult", "direct_logit_attribution"]


# Same shape as src/circuitscope/tasks/task.py:Task on purpose: two unrelated dataclasses of tensors, each field
# with its docstring. Same shape as src/circuitscope/toy/superposition_lab.py:SweepResult on purpose: likewise.
@dataclass(frozen=True)
class DLAResult:
    """Mean direct contributions to the logit difference at the answer positions."""

    components: Float[torch.Tensor, " component"]
    """Embeddings, then each layer's attention and MLP output."""
    component_labels: list[str]
    """``embed`` (``pos_embed``), ``{l}_attn_out``, ``{l}_mlp_out``."""
    attn: Float[torch.Tensor, " layer"]
    """Each layer's attention output."""
    mlp: Float[torch.Tensor, " layer"]
    """Each layer's MLP output."""
    heads: Float[torch.Tensor, "layer head"]
    """Each head (they sum to ``attn`` minus the output-bias term)."""
    neurons: Float[torch.Tensor, "layer d_mlp"]
    """Each MLP neuron (they sum to ``mlp`` minus the output-bias term)."""
    head_bias: Float[torch.Tensor, " layer"]
    """The attention output bias's contribution: ``heads.sum(1) + head_bias == attn``."""
    neuron_bias: Float[torch.Tensor, " layer"]
    """The MLP output bias's contribution: ``neurons.sum(1) + neuron_bias == mlp``."""
    bias: float
    """The final norm's bias and the unembedding bias along the answer direction."""
    total: float
    """The model's mean logit difference."""
    pre_softcap_total: float
    """The logit difference before final softcapping (equals ``total`` without softcapping)."""

    def top_neurons(self, k: int = 10) -> list[tuple[int, int, float]]:
        """``(layer, neuron, contribution)`` of the k neurons with the largest |contribution|."""
        return top_cells(self.neurons, k, by_abs=True)


class _Attribution:
    """The mean direct contribution of residual-stream writes at the answer positions to the logit difference:
    through the final norm with its scale frozen at the final residual ``final`` [batch, d_model]."""

    def __init__(self, model: HookedModel, task: Task, final: torch.Tensor) -> None:
        assert model.wiring.final_norm is not None
        self.model, self.task = model, task
        self.norm: FrozenNorm = model.wiring.frozen(model.wiring.final_norm)
        self.scale = self.norm.scale(final)  # [batch 1]
        w_u = model.W_U
        self.logit_scale = model.wiring.logit_factor()  # a family's constant factor on its logits (Cohere, Granite)
        self.direction = (w_u[:, task.correct] - w_u[:, task.incorrect]).T.float() * self.logit_scale

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., batch, d_model] at the answer positions -> mean contribution [...]."""
        return (self.norm.apply(x, self.scale).float() * self.direction).sum(-1).mean(-1)

    def bias_term(self) -> float:
        """What the final norm's bias and the unembedding's bias add to the logit difference."""
        term = 0.0
        if self.norm.bias is not None:
            term += float((self.norm.bias.float() * self.direction).sum(-1).mean())
        u_bias = getattr(self.model.wiring.unembed, "bias", None)
        if isinstance(u_bias, torch.Tensor):
            task = self.task
            term += float((u_bias[task.correct] - u_bias[task.incorrect]).float().mean()) * self.logit_scale
        return term


def _neuron_terms(
    model: HookedModel, layer: int, post: Float[torch.Tensor, "batch d_mlp"], attribute: _Attribution
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each neuron's contribution in ``layer`` [d_mlp] and the MLP output bias's, from its activations ``post``."""
    mlp_w = model.mlp_weights(layer)
    w_down = mlp_w.W_out.float()  # [d_mlp d_model]
    writes = post[:, :, None] * w_down[None]  # [batch d_mlp d_model]
    b_down = mlp_w.b_out.float()
    batch = post.shape[0]
    out_norm = model.wiring.blocks[layer].mlp_out_norm
    if out_norm is None:
        return attribute(writes.movedim(1, 0)), attribute(b_down.expand(batch, -1))
    # a norm after the MLP (Gemma 2/3): push each neuron through it with its frozen scale
    mlp_norm = model.wiring.frozen(out_norm)
    mlp_scale = mlp_norm.scale(post @ w_down + b_down)  # [batch 1]
    writes = mlp_norm.apply(writes, mlp_scale[:, None, :])
    return attribute(writes.movedim(1, 0)), attribute(mlp_norm.apply(b_down.expand(batch, -1), mlp_scale))


def _require_dla(model: HookedModel) -> None:
    """Refuse a model whose logits are not a sum of per-head and per-neuron terms through one readout."""
    require_attention(model.cfg, "direct logit attribution per head and neuron")
    wiring = model.wiring
    if wiring.final_norm is None or wiring.unembed is None or model.cfg.residual == "post_norm":
        raise UnsupportedModelError(
            f"direct logit attribution needs a pre-norm LM with an unembedding ({model.cfg.family})"
        )
    require_linear_readout(model, "direct logit attribution")
    if model.adapter.experts is not None:  # its neuron terms need one MLP per block
        raise UnsupportedAnalysisError(
            f"{model.cfg.family}'s MLPs are mixtures of experts: direct logit attribution per neuron needs one MLP "
            "per block; use circuitscope.analysis.experts.expert_dla (per expert) or cache.decompose_resid() "
            "(per component)"
        )


@torch.no_grad()
def direct_logit_attribution(model: HookedModel, task: Task) -> DLAResult:
    """Direct contributions of every component, head and neuron to the clean logit difference."""
    _require_dla(model)
    wiring = model.wiring
    n = model.cfg.n_layers
    rows = torch.arange(len(task))
    logits, cache = model.run_with_cache(
        task.clean_tokens,
        names=lambda name: (
            name.endswith(
                ("hook_embed", "hook_pos_embed", "hook_attn_out", "hook_mlp_out", "hook_result", "mlp.hook_post")
            )
            or name in ("blocks.0.hook_resid_pre", f"blocks.{n - 1}.hook_resid_post")
        ),
    )
    attribute = _Attribution(model, task, cache["resid_post", n - 1][rows, task.answer_pos])

    def at_answer(t: torch.Tensor) -> torch.Tensor:
        return t.expand(len(task), *t.shape[1:])[rows, task.answer_pos]

    stack = cache.decompose_resid()
    parts = torch.stack([at_answer(t) for t in stack.tensor])  # [component batch d_model]
    components = attribute(parts)
    heads = torch.stack([attribute(cache["result", i][rows, task.answer_pos].movedim(1, 0)) for i in range(n)])
    neurons, head_bias, neuron_bias = [], [], []
    for i in range(n):
        if wiring.blocks[i].attn_out_norm is None:
            head_bias.append(attribute(model.b_O[i].float().expand(len(task), -1)))
        else:  # Gemma: the output projection has no bias, and the norm after it adds none
            head_bias.append(torch.zeros(()))
        per_neuron, bias = _neuron_terms(model, i, cache["post", i][rows, task.answer_pos].float(), attribute)
        neurons.append(per_neuron)
        neuron_bias.append(bias)
    bias_term = attribute.bias_term()
    answer_logits = logits[rows, task.answer_pos].float()
    total = float((answer_logits[rows, task.correct] - answer_logits[rows, task.incorrect]).mean())
    pre_softcap = float(components.sum()) + bias_term
    labels = stack.labels
    attn = torch.stack([components[labels.index(f"{i}_attn_out")] for i in range(n)])
    mlp = torch.stack([components[labels.index(f"{i}_mlp_out")] for i in range(n)])
    return DLAResult(
        components=components,
        component_labels=labels,
        attn=attn,
        mlp=mlp,
        heads=heads,
        neurons=torch.stack(neurons),
        head_bias=torch.stack(head_bias),
        neuron_bias=torch.stack(neuron_bias),
        bias=bias_term,
        total=total,
        pre_softcap_total=pre_softcap,
    )
