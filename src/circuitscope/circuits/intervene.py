"""Edge-level interventions: record every sender's output, shift every receiver's input.

One forward pass of the model with hooks that

- record each sender's output as it is produced: the input is ``blocks.0.hook_resid_pre``,
  a head is its slice of ``attn.hook_result``, an MLP is ``hook_mlp_out``;
- give each receiver the input ``x + offset`` instead of the residual stream ``x`` it would read,
  without touching what any other receiver reads. A query input of head ``h`` becomes
  ``q_h + (norm(x + o) - norm(x)) @ W_Q[h]`` (at ``attn.hook_q``; likewise k and v at their key/value
  head), an MLP input ``norm(x + o)`` (at ``ln2.hook_normalized``), the logits read ``x + o`` at the
  last ``hook_resid_post``. With ``o = 0`` every hook returns its input unchanged, bit for bit.

The offset of receiver ``r`` is ``-sum_u c[u, r] (a_u - ablated_u)``: ``c = 1`` ablates the edge
``u -> r`` (the receiver reads the ablated value of ``u`` and the current value of every other
sender), ``c = 0`` keeps it. ``a_u`` is the sender's output *in this run*, so upstream
interventions reach it, as in ACDC. Optionally the offsets also carry zero-valued leaf tensors
whose gradients are the gradients of the metric with respect to every receiver's input (EAP).

Only causal LMs with pre-norm or parallel residual blocks are supported (see :class:`Graph`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import nn

from circuitscope.analysis.attribution import answer_logits
from circuitscope.circuits.graph import CircuitError, Graph
from circuitscope.core.capabilities import require_attention
from circuitscope.core.hook_points import HookPoint
from circuitscope.core.hooked_model import HookedModel
from circuitscope.core.weights import head_in_weights

__all__ = ["EdgeRun", "graph_of", "sender_outputs"]


def graph_of(model: HookedModel) -> Graph:
    """The computational graph of ``model``."""
    require_attention(model.cfg, "circuit discovery over heads (EAP, EAP-IG, ACDC)")
    if model.wiring.final_norm is None or model.wiring.unembed is None:
        raise CircuitError(
            f"circuit discovery needs a causal LM with a final norm and an unembedding ({model.cfg.family})"
        )
    for layer, mods in enumerate(model.wiring.blocks):
        if mods.ln1 is None or mods.ln2 is None:
            # the MLP's input edges go in at ln2: a block whose one norm also feeds attention (GPT-J) has no ln2
            why = "no input norms" if mods.ln1 is None else "one norm feeding both attention and the MLP"
            raise CircuitError(f"block {layer} of {model.cfg.family!r} has {why}; it cannot be split into edges")
    return Graph.from_config(model.cfg)


class EdgeRun:
    """The hooks of one intervened forward pass over a batch of ``batch`` prompts of ``seq`` tokens.

    ``coeff`` ``[sender, receiver]`` says how much of each edge to ablate (1 = fully, 0 = keep) and
    ``ablated`` ``[sender, batch, pos, d_model]`` is what an ablated sender outputs; both or neither.
    ``leaves`` adds zero offsets that require grad (see :meth:`receiver_grads`). ``input_override``
    replaces the input embedding (``blocks.0.hook_resid_pre``) before anything reads it (EAP-IG's
    interpolated inputs). After the pass, :attr:`acts` holds every sender's output (detached).
    """

    def __init__(
        self,
        model: HookedModel,
        graph: Graph,
        batch: int,
        seq: int,
        *,
        coeff: Float[torch.Tensor, "sender receiver"] | None = None,
        ablated: Float[torch.Tensor, "sender batch pos d_model"] | None = None,
        leaves: bool = False,
        input_override: Float[torch.Tensor, "batch pos d_model"] | None = None,
    ) -> None:
        if (coeff is None) != (ablated is None):
            raise ValueError("give both coeff and ablated, or neither")
        self.model, self.graph = model, graph
        dtype = next(model.hf_model.parameters()).dtype
        self.acts: Float[torch.Tensor, "sender batch pos d_model"] = torch.zeros(
            graph.n_senders, batch, seq, model.cfg.d_model, dtype=dtype, device=model.device
        )
        self.coeff = None if coeff is None else coeff.to(device=model.device, dtype=dtype)
        if self.coeff is not None and not self.coeff.requires_grad and not bool(self.coeff.any()):
            self.coeff = None  # nothing ablated: plain forward, no offsets at all
        self.ablated = ablated
        self.delta: torch.Tensor | None = None if self.coeff is None else torch.zeros_like(self.acts)
        """``acts - ablated`` of the senders written so far (only when edges are ablated)."""
        self.input_override = input_override
        self.leaves: list[torch.Tensor] = []
        self._want_leaves = leaves
        self._x: torch.Tensor | None = None  # residual stream read by the current layer's attention
        self._x_mid: torch.Tensor | None = None
        self._offsets: dict[str, torch.Tensor] = {}
        self._weights = [
            model.wiring.blocks[layer] for layer in range(model.cfg.n_layers)
        ]  # modules, read when needed (weights may be edited between runs)

    # ------------------------------------------------------------------ offsets
    def _offset(self, receivers: slice, shape: tuple[int, ...]) -> torch.Tensor | None:
        """Offsets of a run of receivers, ``[batch, pos, n, d_model]`` (None if all zero)."""
        out: torch.Tensor | None = None
        if self.coeff is not None:
            assert self.delta is not None
            n_up = self.graph.n_upstream(self.graph.receivers[receivers.start])  # senders written so far
            c = self.coeff[:n_up, receivers]  # [sender, n]
            if c.requires_grad or bool(c.any()):
                b, p, d = self.delta.shape[1:]
                delta = self.delta[:n_up].reshape(n_up, -1)
                if c.requires_grad:  # autograd keeps delta; later senders are written into the same buffer
                    delta = delta.clone()
                flat = c.T.to(self.delta.dtype) @ delta  # [n, batch*pos*d]
                out = -flat.view(-1, b, p, d).permute(1, 2, 0, 3)
        if self._want_leaves:
            leaf = torch.zeros(shape, dtype=self.acts.dtype, device=self.acts.device, requires_grad=True)
            self.leaves.append(leaf)
            out = leaf if out is None else out + leaf
        return out

    def _layer_offsets(self, layer: int) -> None:
        g = self.graph
        start = g.receiver_start[layer]
        b, p, d = self.acts.shape[1:]
        h, kv = g.n_heads, g.n_kv_heads
        spans = {"q": (start, h), "k": (start + h, kv), "v": (start + h + kv, kv), "mlp": (start + h + 2 * kv, 1)}
        for name, (s, n) in spans.items():
            if name == "mlp":
                continue  # computed when the MLP's input exists (it may read this layer's heads)
            o = self._offset(slice(s, s + n), (b, p, n, d))
            if o is not None:
                self._offsets[name] = o

    def _mlp_offset(self, layer: int) -> torch.Tensor | None:
        g = self.graph
        s = g.receiver_start[layer] + g.n_heads + 2 * g.n_kv_heads
        b, p, d = self.acts.shape[1:]
        o = self._offset(slice(s, s + 1), (b, p, 1, d))
        return None if o is None else o[:, :, 0]

    def _record(self, senders: slice, value: torch.Tensor) -> None:
        self.acts[senders] = value
        if self.delta is not None:
            assert self.ablated is not None
            self.delta[senders] = value - self.ablated[senders]

    # ------------------------------------------------------------------ hooks
    def hooks(self) -> list[tuple[str, Callable[..., Any]]]:
        g = self.graph
        last = g.n_layers - 1
        out: list[tuple[str, Callable[..., Any]]] = []
        for layer in range(g.n_layers):
            pre = f"blocks.{layer}."
            out.append((pre + "hook_resid_pre", self._resid_pre))
            for which in ("q", "k", "v"):
                out.append((pre + f"attn.hook_{which}", self._qkv))
            out.append((pre + "attn.hook_result", self._result))
            if not g.parallel:
                out.append((pre + "hook_resid_mid", self._resid_mid))
            out.append((pre + "ln2.hook_normalized", self._mlp_in))
            out.append((pre + "hook_mlp_out", self._mlp_out))
        out.append((f"blocks.{last}.hook_resid_post", self._final))
        return out

    def _resid_pre(self, x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        layer = hook.layer
        assert layer is not None
        if layer == 0:
            if self.input_override is not None:
                x = self.input_override.to(x.dtype)
            self._record(slice(0, 1), x.detach()[None])
        self._x = x
        self._offsets = {}
        self._layer_offsets(layer)
        return x

    def _qkv(self, t: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        which = hook.name.rsplit("_", 1)[-1]  # q, k or v
        o = self._offsets.get(which)
        if o is None:
            return t
        layer = hook.layer
        assert layer is not None and self._x is not None
        mods = self._weights[layer]
        ln1 = mods.ln1
        assert ln1 is not None
        ad = self.model.adapter
        w = head_in_weights(mods.q, mods.k, mods.v, mods.qkv, ad.qkv_layout, self.model.cfg, ad.conv1d)[
            "qkv".index(which)
        ][0]  # [n, d_model, d_head]
        x = self._x
        diff = ln1.forward(x[:, :, None] + o) - ln1.forward(x)[:, :, None]  # [batch, pos, n, d_model]
        return t + torch.einsum("bpnd,nde->bpne", diff.to(w.dtype), w).to(t.dtype)

    def _result(self, r: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        layer = hook.layer
        assert layer is not None
        s = self.graph.sender_start[layer]
        self._record(slice(s, s + self.graph.n_heads), r.detach().permute(2, 0, 1, 3))
        return r

    def _resid_mid(self, x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        self._x_mid = x
        return x

    def _mlp_in(self, y: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        layer = hook.layer
        assert layer is not None
        o = self._mlp_offset(layer)
        if o is None:
            return y
        x = self._x if self.graph.parallel else self._x_mid
        assert x is not None
        ln2 = self._weights[layer].ln2
        assert isinstance(ln2, nn.Module)
        return y + (ln2.forward(x + o) - ln2.forward(x)).to(y.dtype)

    def _mlp_out(self, m: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        layer = hook.layer
        assert layer is not None
        i = self.graph.sender_start[layer] + self.graph.n_heads
        self._record(slice(i, i + 1), m.detach()[None])
        return m

    def _final(self, x: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        b, p, d = self.acts.shape[1:]
        o = self._offset(slice(self.graph.n_receivers - 1, self.graph.n_receivers), (b, p, 1, d))
        return x if o is None else x + o[:, :, 0].to(x.dtype)

    # ------------------------------------------------------------------ running
    def answer_logits(
        self, tokens: Int[torch.Tensor, "batch pos"], answer_pos: Int[torch.Tensor, " batch"], *, grad: bool = False
    ) -> Float[torch.Tensor, "batch d_vocab"]:
        """Run the intervened model; logits at ``answer_pos`` (the forward stops at the final norm)."""
        with self.model.hooks(self.hooks()):
            logits, _ = answer_logits(self.model, tokens, answer_pos, grad=grad)
        return logits

    def receiver_grads(self, metric: torch.Tensor) -> Float[torch.Tensor, "receiver batch pos d_model"]:
        """d metric / d (every receiver's input), in receiver order (needs ``leaves=True``)."""
        if not self.leaves:
            raise ValueError("this run kept no receiver leaves (leaves=False)")
        if not metric.requires_grad:
            raise CircuitError("the metric does not depend on the model's output; it has no gradient")
        grads = torch.autograd.grad(metric, self.leaves, allow_unused=True)
        parts = [torch.zeros_like(leaf) if g is None else g for leaf, g in zip(self.leaves, grads, strict=True)]
        # leaves were made per layer as q [b p h d], k, v, mlp [b p 1 d], then logits [b p 1 d]
        flat = torch.cat([p.permute(2, 0, 1, 3) for p in parts], dim=0)
        if flat.shape[0] != self.graph.n_receivers:
            raise RuntimeError(f"collected {flat.shape[0]} receiver gradients, expected {self.graph.n_receivers}")
        return flat


def sender_outputs(
    model: HookedModel, graph: Graph, tokens: Int[torch.Tensor, "batch pos"]
) -> Float[torch.Tensor, "sender batch pos d_model"]:
    """Every sender's output on ``tokens`` (one forward pass without gradients, stopped at the final norm)."""
    run = EdgeRun(model, graph, tokens.shape[0], tokens.shape[1])
    names = [f"blocks.{graph.n_layers - 1}.hook_mlp_out"]
    with torch.no_grad(), model.hooks(run.hooks()):
        model.run_with_cache(tokens, names=names, stop_early=True)
    return run.acts
