"""Dropout with torch's bits, its mask drawn about 10x faster on a CPU.

torch's CPU dropout (``F.dropout`` and ``nn.Dropout`` in training) is ``x * (noise / (1 - p))`` with ``noise =
empty_like(x).bernoulli_(1 - p)``, and the draw is most of its time (about 11 ns an element: R2MR's two dropouts
on the user table take 12% of its training step, BM3's on both tables more). :func:`dropout` composes the same
three operations, drawing the mask with the compiled generator of :mod:`r2mr.data.bernoulli_kernel` from torch's
own generator state, so the output, its gradient and every later random draw are the same bits
(tests/test_dropout.py). Used for a contiguous CPU float32 input where numba is available, ``R2MR_SPMM`` is not
``torch`` and a self-check (once per process) finds torch's masks and next draws; anything else calls
``F.dropout``.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..data import kernels
from ..data.bernoulli_kernel import CHUNK, STATE_BYTES, N, compile_bernoulli, draw_

_agreement: list[bool] = []  # the self-check's answer, once per process


@functools.cache
def _kernel() -> Callable[..., None]:
    import numba

    return compile_bernoulli(numba)


def agrees_with_torch() -> bool:
    """Whether the compiled draw gives torch's masks and leaves its generator where torch does, for sizes around
    the twister's regeneration and the kernel's chunk, from the generator's current state (restored after);
    checked once per process. Where they differ (MKL's generator on Intel processors), ``F.dropout`` is used."""
    if not _agreement:
        saved = torch.get_rng_state()
        ok = saved.numel() == STATE_BYTES  # the serialised layout the kernel reads (another torch: torch's draw)
        try:
            for n in (1, 7, N - 1, 2 * N + 3, CHUNK + 5) if ok else ():
                for q in (0.7, 0.5):
                    start = torch.get_rng_state()
                    ref = (torch.empty(n).bernoulli_(q), torch.rand(3))
                    torch.set_rng_state(start)
                    ours = (draw_(_kernel(), torch.empty(n), q), torch.rand(3))
                    ok = ok and all(torch.equal(a, b) for a, b in zip(ref, ours))
        finally:
            torch.set_rng_state(saved)
        _agreement.append(ok)
    return _agreement[0]


def fast_path_applies(x: torch.Tensor) -> bool:
    """A contiguous CPU float32 tensor, numba importable, ``R2MR_SPMM`` not ``torch``, the self-check passed."""
    return x.is_contiguous() and x.numel() > 0 and kernels.numba_applies(x) and agrees_with_torch()


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)``: the same values, gradient and generator state; x (any shape) -> same."""
    if not training or not 0.0 < p < 1.0 or not fast_path_applies(x):
        return F.dropout(x, p, training)
    noise = draw_(_kernel(), torch.empty_like(x), 1.0 - p)  # ATen: empty_like(x).bernoulli_(1 - p)
    noise.div_(1.0 - p)
    return x * noise


class Dropout(nn.Dropout):
    """``nn.Dropout`` (not in place) whose training-mode forward is :func:`dropout`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inplace:
            return super().forward(x)
        return dropout(x, self.p, self.training)
