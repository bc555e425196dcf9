"""torch's CPU Bernoulli draw with a scalar probability, compiled (numba): the same numbers from torch's own
generator state, about 10x faster; :mod:`r2mr.models.dropout` uses it and falls back to ``bernoulli_``.

What ``empty(n).bernoulli_(q)`` does on a CPU where ATen does not take MKL's generator (it takes it for a scalar
probability on Intel processors only): per element, in memory order, two 32-bit draws ``hi`` then ``lo`` of the
default generator (a Mersenne twister, MT19937) make a 64-bit value whose low 53 bits ``m`` give the double
``m / 2^53``, and the element is 1.0 where that is below ``q``, else 0.0. Since ``m / 2^53`` is exact, that is
the integer test ``m < ceil(q * 2^53)``.

The generator's state is torch's serialised one (``torch.get_rng_state()``, 5056 bytes: the initial seed as
int64 at byte 0, the countdown ``left`` as int32 at 8, the index ``next`` as uint64 at 16, the 624 words of the
twister as uint64 from 24), advanced here in place and given back with ``torch.set_rng_state``. A draw
decrements ``left``, regenerates the 624 words when it reaches 0 (then ``left`` = 624, ``next`` = 0) and tempers
word ``next``; here the words between two regenerations are tempered in one vectorised pass.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

N, M = 624, 397  # MT19937's state words and its shift
STATE_BYTES = 5056  # torch's serialised CPU generator state
LEFT, NEXT, WORDS = slice(8, 12), slice(16, 24), slice(24, 24 + 8 * N)  # its fields used here, as byte ranges
CHUNK = 8192  # elements drawn per pass (their 2 x 8192 words stay in the first-level cache)


def compile_bernoulli(numba: Any) -> Callable[..., None]:
    """The kernel ``(left (1,) int32, next (1,) uint64, words (624,) uint64, threshold, out (n,) float32)``:
    ``out`` filled with torch's Bernoulli draws (1.0 where ``m < threshold``), the state advanced in place."""
    njit = numba.njit
    u32 = np.uint32

    @njit(inline="always")
    def mix(a: Any, b: Any, c: Any) -> Any:  # one word of MT19937's regeneration
        y = (a & u32(0x80000000)) | (b & u32(0x7fffffff))
        return c ^ (y >> u32(1)) ^ (u32(0x9908b0df) * (b & u32(1)))

    @njit(nogil=True)
    def twist(s: Any) -> None:
        for j in range(N - M):
            s[j] = mix(s[j], s[j + 1], s[j + M])
        for j in range(N - M, N - 1):
            s[j] = mix(s[j], s[j + 1], s[j + M - N])
        s[N - 1] = mix(s[N - 1], s[0], s[M - 1])

    @njit(nogil=True)
    def temper(src: Any, dst: Any) -> None:  # MT19937's output function, word by word
        for t in range(src.shape[0]):
            y = src[t]
            y ^= y >> u32(11)
            y ^= (y << u32(7)) & u32(0x9d2c5680)
            y ^= (y << u32(15)) & u32(0xefc60000)
            dst[t] = y ^ (y >> u32(18))

    @njit(nogil=True)
    def threshold_pass(raw: Any, out: Any, threshold: int) -> None:  # element t from words 2t (hi) and 2t+1 (lo)
        for t in range(out.shape[0]):
            m = ((np.int64(raw[2 * t]) & np.int64(0x1fffff)) << np.int64(32)) | np.int64(raw[2 * t + 1])
            out[t] = np.float32(1.0) if m < threshold else np.float32(0.0)

    @njit(nogil=True)
    def bernoulli(left: Any, nxt: Any, words: Any, threshold: int, out: Any) -> None:
        s = words.astype(np.uint32)
        lf, nx = np.int64(left[0]), np.int64(nxt[0])
        raw = np.empty(2 * CHUNK, np.uint32)
        n = out.shape[0]
        for k0 in range(0, n, CHUNK):
            count = min(CHUNK, n - k0)
            need, pos = 2 * count, 0
            while pos < need:
                if lf == 1:  # the next draw regenerates the words
                    twist(s)
                    lf, nx = N + 1, 0
                c = min(lf - 1, need - pos)  # draws before the next regeneration
                temper(s[nx:nx + c], raw[pos:pos + c])
                nx, lf, pos = nx + c, lf - c, pos + c
            threshold_pass(raw, out[k0:k0 + count], threshold)
        words[:] = s
        left[0], nxt[0] = lf, np.uint64(nx)

    return bernoulli


def threshold(q: float) -> int:
    """The integer ``T`` with ``m / 2^53 < q`` exactly when ``m < T`` (m a 53-bit integer)."""
    return math.ceil(q * 2.0 ** 53)


def draw_(kernel: Callable[..., None], out: torch.Tensor, q: float) -> torch.Tensor:
    """``out.bernoulli_(q)`` from the default CPU generator with ``kernel``; ``out`` contiguous CPU float32."""
    state = torch.get_rng_state()
    b = state.numpy()
    kernel(b[LEFT].view(np.int32), b[NEXT].view(np.uint64), b[WORDS].view(np.uint64), threshold(q),
           out.view(-1).numpy())
    torch.set_rng_state(state)
    return out
