"""One training step of the superposition toy: features drawn, loss and gradients in closed form, by chunks.

The instances are trained a chunk at a time (:func:`instance_chunks`), each chunk with its own
batch-sized buffers reused every step; the chunks may be spread over a few threads (each runs torch on
one thread, so a chunk's work is never split). An instance's features come from its own generator
(:mod:`circuitscope.toy.superposition_sampling`) and its gradients from its chunk alone, so the result
is the same, bit for bit, whatever the number of threads.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import torch
from jaxtyping import Float

from circuitscope.toy.superposition_sampling import instance_generators, sample_features

__all__ = ["CHUNK_ENTRIES", "TrainingStep", "instance_chunks", "loss_and_grads"]


def loss_and_grads(
    W: Float[torch.Tensor, "instance hidden feature"],
    b: Float[torch.Tensor, "instance feature"],
    x: Float[torch.Tensor, "instance feature batch"],
    importance: Float[torch.Tensor, "instance feature"],
    *,
    with_loss: bool = True,
    buffers: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """The loss of :class:`~circuitscope.toy.superposition.SuperpositionModel` summed over instances and its
    gradients in closed form.

    ``h = W x``, ``y = ReLU(Wᵀ h + b)``, ``L = Σ_i I_i mean_b (y_i - x_i)²``; with ``d = (y - x) [y > 0]`` and
    ``s = 2 I / batch``: ``∂L/∂b = s Σ_b d``, ``∂L/∂W = h ⊗ (s d) + (W (s d)) ⊗ x``. The bias rides in the
    products as an extra hidden unit that is always 1 (``h₁ = [h, 1]``, ``W_b = [W; b]``: ``Wᵀ h + b = W_bᵀ h₁``
    and ``h₁ ⊗ d`` holds ``Σ_b d`` in its last row), so one pass over the batch is four batched matrix
    products and two in-place passes, instead of autograd's graph of temporaries (the tests compare
    both). ``x`` is [instance, feature, batch] (the batch contiguous). ``buffers``: two float32 tensors
    shaped like ``x`` to compute in, reused between steps (a fresh batch-sized tensor per step costs more in
    page faults than the arithmetic on it). Returns ``(loss or None, grad_W, grad_b)``.
    """
    n_instances, n_features, batch = x.shape
    n_hidden = W.shape[1]
    scale = ((2.0 / batch) * importance)[:, None, :]  # [instance, 1, feature]
    one = torch.zeros(n_hidden + 1, 1)
    one[n_hidden] = 1.0  # added to every column of W₀ x: the constant hidden unit
    W0 = torch.cat([W, W.new_zeros(n_instances, 1, n_features)], 1)  # [instance, hidden + 1, feature]
    h1 = torch.baddbmm(one, W0, x)  # [instance, hidden + 1, batch] = [h; 1]
    pre, d = buffers if buffers is not None else (torch.empty_like(x), torch.empty_like(x))
    torch.bmm(torch.cat([W, b[:, None, :]], 1).transpose(1, 2), h1, out=pre)  # Wᵀ h + b, [instance, feature, batch]
    torch.sub(pre, x, out=d)
    # y - x where the ReLU is active: ReLU's own backward kernel (gradient, input, threshold), in place
    torch.ops.aten.threshold_backward.grad_input(d, pre, 0.0, grad_input=d)
    loss = None
    if with_loss:  # the residual where the ReLU is off is -x, not the gradient's 0
        loss = ((pre.clamp_min(0) - x).square().sum(-1) * importance).sum() / batch
    ds_W = torch.bmm(W * scale, d)  # W (s d), [instance, hidden, batch]
    grad = torch.bmm(h1, d.transpose(1, 2)).mul_(scale)  # [instance, hidden + 1, feature]: [h ⊗ s d; s Σ_b d]
    grad_W = grad[:, :n_hidden].baddbmm_(ds_W, x.transpose(1, 2))
    return loss, grad_W, grad[:, n_hidden]


CHUNK_ENTRIES = 1 << 18
"""Batch entries (instances x features x batch, float32) one pass of training computes on: the chunk's
batch-sized buffers (features, pre-activations, residuals) then stay in a core's 2 MB cache instead of
streaming through memory; larger problems are trained a few instances at a time."""


def instance_chunks(n_instances: int, batch_size: int, n_features: int) -> list[slice]:
    """Consecutive instance ranges of at most ``CHUNK_ENTRIES`` batch entries each (at least one instance)."""
    per = max(1, CHUNK_ENTRIES // (batch_size * n_features))
    return [slice(i, min(i + per, n_instances)) for i in range(0, n_instances, per)]


class TrainingStep:
    """Sampling and closed-form gradients of all instances, a chunk at a time, on ``threads`` threads.

    ``W`` and ``b`` are the model's parameters; their ``.grad`` are set to buffers this step fills in place.
    Use it as a context manager (it owns a thread pool when ``threads`` > 1) and keep torch on one thread
    meanwhile.
    """

    def __init__(
        self,
        W: torch.Tensor,
        b: torch.Tensor,
        importance: torch.Tensor,
        probability: torch.Tensor,
        *,
        batch_size: int,
        seed: int,
        threads: int = 1,
    ) -> None:
        self.W, self.b, self.importance, self.probability, self.batch = W, b, importance, probability, batch_size
        n_instances, n_features = importance.shape
        self.generators = instance_generators(seed, n_instances)
        self.chunks = instance_chunks(n_instances, batch_size, n_features)
        self.buffers = [[torch.empty(c.stop - c.start, n_features, batch_size) for _ in range(3)] for c in self.chunks]
        self.grad_W, self.grad_b = torch.empty_like(W), torch.empty_like(b)
        W.grad, b.grad = self.grad_W, self.grad_b  # filled in place, chunk by chunk
        self.threads = max(1, min(threads, len(self.chunks)))
        per = -(-len(self.chunks) // self.threads)  # contiguous groups of chunks, one per thread
        self.groups = [range(k, min(k + per, len(self.chunks))) for k in range(0, len(self.chunks), per)]
        self.pool = ThreadPoolExecutor(len(self.groups) - 1) if len(self.groups) > 1 else None
        self.sampling = [0.0] * len(self.chunks)
        self.busy = [0.0] * len(self.chunks)

    def __enter__(self) -> TrainingStep:
        return self

    def __exit__(self, *_: object) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    @property
    def sampling_share(self) -> float:
        """The fraction of the chunks' time (summed over threads) spent drawing the features."""
        busy = sum(self.busy)
        return sum(self.sampling) / busy if busy > 0 else 0.0

    def gradients(self, with_loss: bool) -> torch.Tensor | None:
        """Draw a batch, write the gradients into the parameters' ``.grad``; the loss if ``with_loss``."""
        if self.pool is None:
            parts = self._group(range(len(self.chunks)), with_loss)
        else:
            futures = [self.pool.submit(self._group, g, with_loss) for g in self.groups[1:]]
            parts = self._group(self.groups[0], with_loss)
            for future in futures:
                parts += future.result()
        return torch.stack(parts).sum() if with_loss else None

    @torch.no_grad()  # grad mode is per thread: set here, where the chunks run
    def _group(self, chunks: range, with_loss: bool) -> list[torch.Tensor]:
        parts = []
        for k in chunks:
            c, (x, pre, d) = self.chunks[k], self.buffers[k]
            start = time.perf_counter()
            sample_features(self.generators[c], self.batch, self.probability[c], out=x)
            drawn = time.perf_counter()
            part, self.grad_W[c], self.grad_b[c] = loss_and_grads(
                self.W[c], self.b[c], x, self.importance[c], with_loss=with_loss, buffers=(pre, d)
            )
            self.sampling[k] += drawn - start
            self.busy[k] += time.perf_counter() - start
            if part is not None:
                parts.append(part)
        return parts
