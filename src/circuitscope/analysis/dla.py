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
from circuitscope.core.hooked_model import HookedModel
from circuitscope.core.norms import FrozenNorm
from circuitscope.errors import UnsupportedModelError
from circuitscope.tasks.task import Task

__all__ = ["DLAResult", "direct_logit_attribution"]


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


@torch.no_grad()
def direct_logit_attribution(model: HookedModel, task: Task) -> DLAResult:
    """Direct contributions of every component, head and neuron to the clean logit difference."""
    wiring = model.wiring
    if wiring.final_norm is None or wiring.unembed is None or model.cfg.residual == "post_norm":
        raise UnsupportedModelError(
            f"direct logit attribution needs a pre-norm LM with an unembedding ({model.cfg.family})"
        )
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
    final_norm: FrozenNorm = wiring.frozen(wiring.final_norm)
    final = cache["resid_post", n - 1][rows, task.answer_pos]  # [batch d_model]
    scale = final_norm.scale(final)  # [batch 1]
    w_u = model.W_U
    direction = (w_u[:, task.correct] - w_u[:, task.incorrect]).T.float()  # [batch d_model]

    def attribute(x: torch.Tensor) -> torch.Tensor:
        """x: [..., batch, d_model] at the answer positions -> mean contribution [...]."""
        return (final_norm.apply(x, scale).float() * direction).sum(-1).mean(-1)

    def at_answer(t: torch.Tensor) -> torch.Tensor:
        return t.expand(len(task), *t.shape[1:])[rows, task.answer_pos]

    stack = cache.decompose_resid()
    parts = torch.stack([at_answer(t) for t in stack.tensor])  # [component batch d_model]
    components = attribute(parts)
    heads = torch.stack([attribute(cache["result", i][rows, task.answer_pos].movedim(1, 0)) for i in range(n)])
    neurons, head_bias, neuron_bias = [], [], []
    for i in range(n):
        block = wiring.blocks[i]
        b_o = model.b_O[i].float()
        if block.attn_out_norm is None:
            head_bias.append(attribute(b_o.expand(len(task), -1)))
        else:  # Gemma: the output projection has no bias, and the norm after it adds none
            head_bias.append(torch.zeros(()))
        post = cache["post", i][rows, task.answer_pos].float()  # [batch d_mlp]
        mlp_w = model.mlp_weights(i)
        w_down = mlp_w.W_out.float()  # [d_mlp d_model]
        writes = post[:, :, None] * w_down[None]  # [batch d_mlp d_model]
        b_down = mlp_w.b_out.float()
        if block.mlp_out_norm is not None:
            # a norm after the MLP (Gemma 2/3): push each neuron through it with its frozen scale
            mlp_norm = wiring.frozen(block.mlp_out_norm)
            mlp_scale = mlp_norm.scale(post @ w_down + b_down)  # [batch 1]
            writes = mlp_norm.apply(writes, mlp_scale[:, None, :])
            neuron_bias.append(attribute(mlp_norm.apply(b_down.expand(len(task), -1), mlp_scale)))
        else:
            neuron_bias.append(attribute(b_down.expand(len(task), -1)))
        neurons.append(attribute(writes.movedim(1, 0)))
    bias_term = 0.0
    if final_norm.bias is not None:
        bias_term += float((final_norm.bias.float() * direction).sum(-1).mean())
    u_bias = getattr(wiring.unembed, "bias", None)
    if isinstance(u_bias, torch.Tensor):
        bias_term += float((u_bias[task.correct] - u_bias[task.incorrect]).float().mean())
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
