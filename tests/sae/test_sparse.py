"""The sparse TopK kernels: the same gradients as autograd through the dense activations, AuxK included."""

from __future__ import annotations

import torch

from circuitscope import sae as S  # noqa: N812
from circuitscope.sae.base import StepContext
from circuitscope.sae.sparse import scatter_rows, sparse_decode


def test_scatter_rows_is_the_dense_product_with_repeated_indices() -> None:
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 7, (20, 3), generator=gen)  # latents repeat across rows (and within a row)
    weights, rows = torch.randn(20, 3, generator=gen), torch.randn(20, 5, generator=gen)
    dense = torch.zeros(20, 9)
    for b in range(20):
        for s in range(3):
            dense[b, idx[b, s]] += weights[b, s]
    torch.testing.assert_close(scatter_rows(idx, weights, rows, 9), dense.T @ rows)
    assert bool((scatter_rows(idx, weights, rows, 9)[7:] == 0).all())  # latents never selected


def _dense_reference(sae: S.SAE, x: torch.Tensor, dead: torch.Tensor, aux_k: int) -> torch.Tensor:
    """TopK's loss (MSE + AuxK) the plain way: dense activations, a dense decode, autograd through all of it."""
    assert sae.cfg.k is not None
    pre = sae.pre_acts(x)
    vals, idx = pre.topk(sae.cfg.k, dim=-1)
    recon = torch.zeros_like(pre).scatter(-1, idx, torch.relu(vals)) @ sae.W_dec + sae.b_dec
    dead_idx = dead.nonzero().squeeze(-1)
    dvals, pos = pre[:, dead_idx].topk(aux_k, dim=-1)
    err_hat = torch.zeros_like(pre).scatter(-1, dead_idx[pos], torch.relu(dvals)) @ sae.W_dec
    aux = (1 / 32) * min(int(dead.sum()) / aux_k, 1.0) * (err_hat - (x - recon).detach()).pow(2).sum(-1).mean()
    return (recon - x).pow(2).sum(-1).mean() + aux


def test_topk_step_has_the_gradients_of_the_dense_computation() -> None:
    sae = S.create_sae(S.SAEConfig(architecture="topk", d_in=12, d_sae=48, k=4))
    sae.initialize(torch.Generator().manual_seed(0), tied=False)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        sae.b_enc.copy_(torch.randn(48, generator=gen))
        sae.b_dec.copy_(torch.randn(12, generator=gen))
    x = torch.randn(64, 12, generator=gen)
    dead = torch.zeros(48, dtype=torch.bool)
    dead[::3] = True
    out = sae.training_forward(x, StepContext(dead_mask=dead, options={"aux_k": 5}))
    out.loss.backward()
    sparse = {n: p.grad.clone() for n, p in sae.named_parameters() if p.grad is not None}
    sae.zero_grad()
    reference = _dense_reference(sae, x, dead, aux_k=5)
    reference.backward()
    torch.testing.assert_close(out.loss.detach(), reference.detach())
    assert sorted(sparse) == ["W_dec", "W_enc", "b_dec", "b_enc"]
    for name, p in sae.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().max() > 0), name
        torch.testing.assert_close(sparse[name], p.grad, atol=1e-5, rtol=1e-5)
    acts = sae.encode(x)
    assert torch.equal(out.fired, (acts > 0).sum(0)) and float(out.l0) == float((acts > 0).sum(-1).float().mean())


def test_sparse_decode_without_gradients_is_the_dense_decode() -> None:
    gen = torch.Generator().manual_seed(2)
    W = torch.randn(10, 4, generator=gen)
    idx, vals = torch.randint(0, 10, (6, 3), generator=gen), torch.rand(6, 3, generator=gen)
    dense = torch.zeros(6, 10).index_put_((torch.arange(6)[:, None].expand(6, 3), idx), vals, accumulate=True)
    torch.testing.assert_close(sparse_decode(W, idx, vals), dense @ W)
