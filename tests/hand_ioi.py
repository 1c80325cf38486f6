"""A hand-built 2-layer attention-only model with a planted IOI circuit, and IOI-shaped tasks for token models.

Every prompt has one template, ``[BOS, IO, f, S1, f, f, S2, f, END]`` (``f`` fixed filler tokens),
so the roles sit at fixed positions: IO 1, S1 3, S1+1 4, S2 6, END 8. The residual stream is a
direct sum of one-hot subspaces (``V`` = ``d_vocab``, ``N`` = ``n_ctx``)::

    TOK  [0, V)          the current token
    POS  [V, V+N)        the position
    SIG  [V+N, 2V+N)     the token at S2, written at END by the S-inhibition head
    OUT  [2V+N, 3V+N)    what the logits read: W_U[OUT[t], t] = logit_scale

- layer 0, head 0, **S-inhibition**: the query at q attends to key q-2 (END -> S2); OV: TOK[t] -> SIG[t].
- layer 1, head 0, **name mover**: at END its query reads POS[END] (a bonus ``b`` for the name positions
  IO and S1) and SIG (``-c`` for a key holding the S2 token); so it attends to IO, the name that is not
  repeated. OV: TOK[t] -> OUT[t] (it copies the name).
- layer 1, head 1, **negative name mover**: the same attention, OV: TOK[t] -> -``negative`` OUT[t].
- every other head has zero weights (uniform attention, zero output).

Clean logit difference IO - S: ``(1 - negative) * logit_scale``. Under the ABC corruption (three new
names) SIG matches no key, both movers split their attention between the new IO and S1, and the
logit difference of the original names is 0.
"""

from __future__ import annotations

import math
from typing import Any

import torch

import circuitscope as cs
from circuitscope.circuits.ioi.result import Role
from circuitscope.tasks.task import Task
from circuitscope.toy.model import build_toy

__all__ = ["IOI_ROLES", "ioi_like_task", "planted_ioi_model"]

IOI_ROLES: dict[Role, int] = {"IO": 1, "S1": 3, "S1+1": 4, "S2": 6, "END": 8}
"""Positions of the roles in the one template."""
_FILLERS = {2: 1, 4: 2, 5: 3, 7: 4, 8: 5}  # position -> filler token id
_FIRST_NAME = 8


def planted_ioi_model(
    d_vocab: int = 40, n_ctx: int = 16, bonus: float = 30.0, avoid: float = 30.0, logit_scale: float = 10.0,
    negative: float = 0.5,
) -> cs.HookedModel:  # fmt: skip
    """The planted model of the module docstring (names are token ids ``8..d_vocab-1``)."""
    V, N = d_vocab, n_ctx
    tok, pos, sig, out = 0, V, V + N, 2 * V + N
    d_model, d_head = 3 * V + N, V + 1
    hf = build_toy(
        seed=0, d_vocab=V, n_ctx=N, d_model=d_model, n_layers=2, n_heads=4, d_head=d_head, attn_only=True,
        layer_norm=False, positional="learned", bias=False,
    )  # fmt: skip
    root = math.sqrt(d_head)  # attention scores are q.k / sqrt(d_head)
    t, p = torch.arange(V), torch.arange(N)
    with torch.no_grad():
        for param in hf.parameters():
            param.zero_()
        hf.embed.weight[t, tok + t] = 1.0
        hf.pos_embed.weight[p, pos + p] = 1.0
        hf.unembed.weight[t, out + t] = logit_scale
        rows = [slice(h * d_head, (h + 1) * d_head) for h in range(4)]
        a0: Any = hf.blocks[0].attn
        a0.q.weight[rows[0]][p, pos + p] = avoid * root  # query q -> e_q
        a0.k.weight[rows[0]][p[2:], pos + p[:-2]] = 1.0  # key k -> e_{k+2}: query q matches key q-2
        a0.v.weight[rows[0]][t, tok + t] = 1.0
        a0.o.weight[:, rows[0]][sig + t, t] = 1.0
        a1: Any = hf.blocks[1].attn
        for head, sign in ((0, 1.0), (1, -negative)):
            q = a1.q.weight[rows[head]]
            q[t, sig + t] = -avoid * root  # a key holding the S2 token scores -avoid
            q[V, pos + IOI_ROLES["END"]] = bonus * root  # ... and the name positions +bonus
            k = a1.k.weight[rows[head]]
            k[t, tok + t] = 1.0
            k[V, pos + IOI_ROLES["IO"]] = 1.0
            k[V, pos + IOI_ROLES["S1"]] = 1.0
            a1.v.weight[rows[head]][t, tok + t] = 1.0
            a1.o.weight[:, rows[head]][out + t, t] = sign
    return cs.HookedModel(hf.eval())


def ioi_like_task(d_vocab: int, n: int = 8, seed: int = 0, templates: int = 1) -> Task:
    """IOI-shaped prompts ``[BOS, IO, f, S1, f, f, S2, f, END]`` of token ids (names from ``8..d_vocab-1``) and
    their ABC corruptions; with ``templates=2`` every other prompt has one more filler before END (another
    length, template label ``T1``)."""
    gen = torch.Generator().manual_seed(seed)
    clean, corrupted, labels = [], [], []
    correct, incorrect = [], []
    for i in range(n):
        io, s, c1, c2, c3 = (torch.randperm(d_vocab - _FIRST_NAME, generator=gen)[:5] + _FIRST_NAME).tolist()
        longer = templates == 2 and i % 2 == 1
        row = [0, io, _FILLERS[2], s, _FILLERS[4], _FILLERS[5], s, _FILLERS[7]] + [6] * longer + [_FILLERS[8]]
        bad = list(row)
        bad[1], bad[3], bad[6] = c1, c2, c3
        clean.append(row)
        corrupted.append(bad)
        labels.append(f"T{int(longer)}")
        correct.append(io)
        incorrect.append(s)
    width = max(len(r) for r in clean)

    def pad(rows: list[list[int]]) -> torch.Tensor:
        return torch.tensor([r + [0] * (width - len(r)) for r in rows])

    return Task(
        name="ioi",
        clean_prompts=[" ".join(map(str, r)) for r in clean],
        corrupted_prompts=[" ".join(map(str, r)) for r in corrupted],
        clean_tokens=pad(clean),
        corrupted_tokens=pad(corrupted),
        answer_pos=torch.tensor([len(r) - 1 for r in clean]),
        correct=torch.tensor(correct),
        incorrect=torch.tensor(incorrect),
        labels={"template": labels},
    )
