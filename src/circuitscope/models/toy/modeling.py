"""circuitscope's toy model, written to be read top to bottom: a small decoder-only transformer.

It is a Hugging Face ``PreTrainedModel`` of its own family (``model_type = "circuitscope_toy"``),
so ``circuitscope.HookedModel(model)`` gives it every canonical hook name and every analysis in
circuitscope runs on it unchanged. Its attention goes through transformers' attention registry
like the Hugging Face families do, so circuitscope's hooked attention sees q, k, v shaped
``[batch, head, pos, d_head]``.

Options: number of layers and heads, widths, attention-only (no MLP), with or without
LayerNorm, learned or no positional embedding, the MLP activation, biases and the init.

Shapes, with ``B`` = batch, ``P`` = positions, ``H`` = heads, ``D`` = d_model, ``E`` = d_head::

    tokens [B, P] -> embed [B, P, D] (+ pos_embed [1, P, D]) -> resid
    for each block:
        resid = resid + attn(ln1(resid))      # q, k, v: [B, H, P, E]; pattern [B, H, P, P]
        resid = resid + mlp(ln2(resid))       # [B, P, d_mlp] in the middle (width 0 if attention-only)
    logits = unembed(ln_final(resid))         # [B, P, d_vocab]

``forward(..., last_only=True)`` computes the last block's queries, MLP and the unembedding at the
last position only (the earlier blocks still run everywhere): what a loss on the final token needs.
Build one with :func:`circuitscope.toy.build_toy`; ``circuitscope.toy`` re-exports the classes.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from jaxtyping import Float, Int
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from circuitscope.models.toy import register_auto_classes

__all__ = ["ToyBlock", "ToyConfig", "ToyTransformer"]

ACTIVATIONS = ("relu", "gelu", "gelu_new", "silu")


class ToyConfig(PretrainedConfig):
    """Sizes and options of a :class:`ToyTransformer` (TransformerLens's names; HF names are aliases)."""

    model_type = "circuitscope_toy"
    attribute_map = {  # noqa: RUF012 (transformers' class attribute)
        "hidden_size": "d_model",
        "num_hidden_layers": "n_layers",
        "num_attention_heads": "n_heads",
        "head_dim": "d_head",
        "intermediate_size": "d_mlp",
        "max_position_embeddings": "n_ctx",
        "vocab_size": "d_vocab",
    }

    def __init__(
        self,
        d_vocab: int = 64,
        n_ctx: int = 64,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        d_head: int | None = None,
        d_mlp: int | None = None,
        attn_only: bool = False,
        layer_norm: bool = True,
        positional: Literal["learned", "none"] = "learned",
        act_fn: str = "relu",
        bias: bool = False,
        init: Literal["normal", "fan_in"] = "normal",
        initializer_range: float = 0.02,
        **kwargs: Any,
    ) -> None:
        d_head = d_head if d_head is not None else d_model // max(n_heads, 1)
        d_mlp = 0 if attn_only else (d_mlp if d_mlp is not None else 4 * d_model)
        for name, value in (("d_vocab", d_vocab), ("n_ctx", n_ctx), ("d_model", d_model), ("n_layers", n_layers)):
            if value < 1:
                raise ValueError(f"ToyConfig: {name} must be at least 1, got {value}")
        if n_heads < 1 or d_head < 1:
            raise ValueError(f"ToyConfig: need at least one head of width >= 1, got n_heads={n_heads}, d_head={d_head}")
        if not attn_only and d_mlp < 1:
            raise ValueError(f"ToyConfig: d_mlp must be positive (or attn_only=True), got {d_mlp}")
        if positional not in ("learned", "none"):
            raise ValueError(f"ToyConfig: positional must be 'learned' or 'none', got {positional!r}")
        if act_fn not in ACTIVATIONS:
            raise ValueError(f"ToyConfig: act_fn must be one of {ACTIVATIONS}, got {act_fn!r}")
        if init not in ("normal", "fan_in"):
            raise ValueError(f"ToyConfig: init must be 'normal' or 'fan_in', got {init!r}")
        self.d_vocab = d_vocab
        self.n_ctx = n_ctx
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.d_head = d_head
        self.d_mlp = d_mlp
        self.attn_only = attn_only
        self.layer_norm = layer_norm
        self.positional = positional
        self.act_fn = act_fn
        self.bias = bias
        self.init = init
        self.initializer_range = initializer_range
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)


def _norm(config: ToyConfig) -> nn.Module:
    return nn.LayerNorm(config.d_model) if config.layer_norm else nn.Identity()


def _activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "silu":
        return nn.SiLU()
    return nn.GELU(approximate="tanh" if name == "gelu_new" else "none")


def eager_attention(
    module: nn.Module,
    query: Float[torch.Tensor, "B H Pq E"],
    key: Float[torch.Tensor, "B H Pk E"],
    value: Float[torch.Tensor, "B H Pk E"],
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **_: Any,
) -> tuple[Float[torch.Tensor, "B Pq H E"], Float[torch.Tensor, "B H Pq Pk"]]:
    """Plain softmax attention with a causal mask (the fallback when no implementation is registered)."""
    scores = query @ key.transpose(-1, -2) * scaling  # [B, H, Pq, Pk]
    q_len, k_len = scores.shape[-2:]
    if attention_mask is None:
        q_idx = torch.arange(k_len - q_len, k_len, device=scores.device)[:, None]
        allowed = torch.arange(k_len, device=scores.device)[None, :] <= q_idx
    else:
        allowed = attention_mask
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    pattern = scores.softmax(-1)
    return (pattern @ value).transpose(1, 2), pattern  # [B, Pq, H, E]


class ToyAttention(nn.Module):
    """Multi-head causal self-attention; ``o`` sums the heads back into the residual stream."""

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.n_heads, self.d_head = config.n_heads, config.d_head
        self.scaling = config.d_head**-0.5
        self.is_causal = True
        self.num_key_value_groups = 1
        inner = config.n_heads * config.d_head
        self.q = nn.Linear(config.d_model, inner, bias=config.bias)
        self.k = nn.Linear(config.d_model, inner, bias=config.bias)
        self.v = nn.Linear(config.d_model, inner, bias=config.bias)
        self.o = nn.Linear(inner, config.d_model, bias=config.bias)

    def forward(
        self,
        x: Float[torch.Tensor, "B P D"],
        attention_mask: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> Float[torch.Tensor, "B Pq D"]:
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        B, P, _ = x.shape
        x_q = x[:, -1:] if last_only else x
        q = self.q(x_q).view(B, x_q.shape[1], self.n_heads, self.d_head).transpose(1, 2)  # [B, H, Pq, E]
        k = self.k(x).view(B, P, self.n_heads, self.d_head).transpose(1, 2)  # [B, H, P, E]
        v = self.v(x).view(B, P, self.n_heads, self.d_head).transpose(1, 2)  # [B, H, P, E]
        if attention_mask is not None and last_only:
            attention_mask = attention_mask[:, :, -1:]
        attend = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation or "eager", eager_attention)
        z, _ = attend(self, q, k, v, attention_mask, scaling=self.scaling, dropout=0.0)  # z: [B, Pq, H, E]
        return self.o(z.reshape(B, x_q.shape[1], self.n_heads * self.d_head))  # [B, Pq, D]


class _Linear(nn.Linear):
    """``nn.Linear`` that may have width 0 (torch warns when initialising an empty weight)."""

    def reset_parameters(self) -> None:
        if self.weight.numel():
            super().reset_parameters()


class ToyMLP(nn.Module):
    """``W_out(act(W_in x))``; width 0 (adds zero) in an attention-only model."""

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.W_in = _Linear(config.d_model, config.d_mlp, bias=config.d_mlp > 0)
        self.act = _activation(config.act_fn)
        self.W_out = _Linear(config.d_mlp, config.d_model, bias=config.d_mlp > 0)

    def forward(self, x: Float[torch.Tensor, "B P D"]) -> Float[torch.Tensor, "B P D"]:
        return self.W_out(self.act(self.W_in(x)))  # [B, P, d_mlp] in the middle


class ToyBlock(nn.Module):
    """Pre-norm block: ``x + attn(ln1 x)``, then ``+ mlp(ln2 .)``."""

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.ln1 = _norm(config)
        self.attn = ToyAttention(config)
        self.ln2 = _norm(config)
        self.mlp = ToyMLP(config)

    # Same shape as src/circuitscope/models/toy/modeling.py:ToyAttention on purpose: the block's forward takes
    # attention's arguments and hands the mask and last_only on to it.
    def forward(
        self,
        hidden_states: Float[torch.Tensor, "B P D"],
        attention_mask: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> Float[torch.Tensor, "B Pq D"]:
        x = hidden_states
        resid = x[:, -1:] if last_only else x
        resid = resid + self.attn(self.ln1(x), attention_mask, last_only)  # resid_mid
        return resid + self.mlp(self.ln2(resid))  # resid_post


class ToyTransformer(PreTrainedModel):
    """The model: embeddings, blocks, final norm, unembedding. Build it with :func:`build_toy`."""

    config_class = ToyConfig
    config: ToyConfig
    base_model_prefix = "toy"
    main_input_name = "input_ids"
    _supports_sdpa = True
    _supports_attention_backend = True
    _no_split_modules = ["ToyBlock"]  # noqa: RUF012

    def __init__(self, config: ToyConfig) -> None:
        register_auto_classes()
        super().__init__(config)
        self.embed = nn.Embedding(config.d_vocab, config.d_model)
        if config.positional == "learned":
            self.pos_embed = nn.Embedding(config.n_ctx, config.d_model)
        self.blocks = nn.ModuleList([ToyBlock(config) for _ in range(config.n_layers)])
        self.ln_final = _norm(config)
        self.unembed = nn.Linear(config.d_model, config.d_vocab, bias=config.bias)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        cfg = self.config
        if isinstance(module, nn.Linear):
            if module.weight.numel():
                std = module.in_features**-0.5 if cfg.init == "fan_in" else cfg.initializer_range
                module.weight.normal_(0.0, std)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.Embedding):
            std = cfg.d_model**-0.5 if cfg.init == "fan_in" else cfg.initializer_range
            module.weight.normal_(0.0, std)
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()

    def get_input_embeddings(self) -> nn.Module:
        return self.embed

    def get_output_embeddings(self) -> nn.Module:
        return self.unembed

    def _mask(self, attention_mask: torch.Tensor | None, P: int) -> torch.Tensor | None:
        """A 2-D padding mask [B, P] -> boolean [B, 1, P, P] (causal and not padding), or None."""
        if attention_mask is None or bool(attention_mask.all()):
            return None
        causal = torch.ones(P, P, dtype=torch.bool, device=attention_mask.device).tril()
        return causal[None, None] & attention_mask.bool()[:, None, None, :]

    def forward(
        self,
        input_ids: Int[torch.Tensor, "B P"],
        attention_mask: Int[torch.Tensor, "B P"] | None = None,
        labels: Int[torch.Tensor, "B P"] | None = None,
        last_only: bool = False,
        **_: Any,
    ) -> CausalLMOutput:
        """Logits [B, P, d_vocab] (``[B, 1, d_vocab]`` with ``last_only``); ``loss`` is next-token CE if ``labels``."""
        _B, P = input_ids.shape
        if self.config.n_ctx < P:
            raise ValueError(f"{P} positions exceed the model's n_ctx={self.config.n_ctx}")
        resid = self.embed(input_ids)  # [B, P, D]
        if self.config.positional == "learned":
            positions = torch.arange(P, device=input_ids.device)[None]  # [1, P]
            resid = resid + self.pos_embed(positions)  # [1, P, D] broadcasts over the batch
        mask = self._mask(attention_mask, P)
        n = len(self.blocks)
        for i, block in enumerate(self.blocks):
            resid = block(resid, mask, last_only and i == n - 1)
        logits = self.unembed(self.ln_final(resid))  # [B, P, d_vocab]
        loss = None
        if labels is not None:
            shift = logits[:, :-1] if not last_only else logits
            target = labels[:, 1:] if not last_only else labels[:, -1:]
            loss = nn.functional.cross_entropy(shift.reshape(-1, shift.shape[-1]), target.reshape(-1))
        return CausalLMOutput(loss=loss, logits=logits)
