"""The fast path of evaluation's top-k (numba): rows whose top k has no tie are selected from a few candidates
above a sampled threshold; the others are left to the exact heap of :mod:`r2mr.data.topk_kernel`.

Why it keeps torch's indices: the order ``torch.topk`` gives tied values depends on its heap's history, but a
row whose k largest values are distinct, and whose k-th is greater than every value left out, has one answer,
whatever the algorithm: the k indices sorted by value, largest first. Per row (user):

1. threshold ``t``: the ``SAMPLE_KEEP``-th largest of every ``step``-th score (``step`` such that about
   ``3 k`` scores of the row are >= t);
2. candidates: every score with ``not (s < t)``, in one pass (NaN is a candidate, and sends the row to the heap);
3. with ``k <= c <= cap`` candidates, the k-th largest ``tau`` of them (a quickselect): the row is decided here
   when exactly k - 1 candidates are > tau and one equals it (scores left out are < t <= tau), and the k
   sorted (insertion) are strictly decreasing. Any tie (``+0.0 == -0.0`` included), NaN, too few or too many
   candidates: the row goes to the heap (``fallback``).

A batch where many rows tie (constant or few-valued scores) would pay for both paths: with item-major scores
the collecting pass stops once more than ``SENT_ON`` of the rows hold too many candidates, and the heap then
takes the whole batch in its own order (gathering many strided rows costs more); a user-major row stops
collecting at its cap. Measured, 4,096 users x 7,050 items: constant scores 47 ms with the heap alone, 55 ms
this way; eight levels 61 / 128 ms (without the stop: 489 and 491 ms).

Measured on the scores of a LightGCN trained 300 steps, 4,096 users a batch, one thread, medians of 5 in one
process: Baby 122.8 ms with the heap alone, 62.5 ms this way; Sports 204.8 / 91.7; TikTok 98.1 / 62.7; the
same indices; 1-2 rows of 4,096 went to the heap.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

SAMPLE_KEEP = 8  # the threshold: the 8th largest sampled score (too few candidates: ~1.5% of rows in random order)
CANDIDATES_PER_K = 3  # the sample's step aims at about 3 k candidates a row
CAP_PER_K = 8  # at most 8 k candidates a row are kept (more: the heap)
SENT_ON = 1 / 64  # more rows than this share for the heap: item-major scores go to the heap whole
CHECK_EVERY = 256  # items between two counts of the rows with too many candidates (item-major)


def sample_step(k: int) -> int:
    """Every how many scores of a row the threshold is sampled for a top ``k``."""
    return max(1, CANDIDATES_PER_K * k // SAMPLE_KEEP)


def compile_topk_sampled(numba: Any) -> Callable[..., int]:
    """``kernel(s, k, by_columns, out (B, k) int64, fallback (B,) int64) -> n_fallback``: ``s`` (n, B) item-major
    (``by_columns``, a C-contiguous table whose column i is user i) or (B, n) user-major. Rows decided here get
    their indices in ``out``; the others (``fallback[:n_fallback]``) are left for the heap."""
    njit = numba.njit

    @njit(inline="always")
    def keep_sampled(kept: Any, i: int, v: Any) -> None:  # kept[i]: the row's largest sampled scores, descending
        last = kept.shape[1] - 1
        if v > kept[i, last]:
            p = last
            while p > 0 and kept[i, p - 1] < v:
                kept[i, p] = kept[i, p - 1]
                p -= 1
            kept[i, p] = v

    @njit
    def kth_largest(a: Any, c: int, k: int) -> Any:  # quickselect on a[:c] (reordered), NaN-free
        lo, hi, target = 0, c - 1, k - 1
        while lo < hi:
            pivot, i, j = a[(lo + hi) // 2], lo, hi
            while i <= j:
                while a[i] > pivot:
                    i += 1
                while a[j] < pivot:
                    j -= 1
                if i <= j:
                    a[i], a[j] = a[j], a[i]
                    i, j = i + 1, j - 1
            if target <= j:
                hi = j
            elif target >= i:
                lo = i
            else:
                break
        return a[target]

    @njit
    def decide(vals: Any, idx: Any, c: int, k: int, scratch: Any, hv: Any, hi: Any, out_row: Any) -> bool:
        """The row's top k from its c candidates (vals, idx) into out_row, or False where a tie or NaN."""
        for r in range(c):
            if vals[r] != vals[r]:
                return False
            scratch[r] = vals[r]
        tau = kth_largest(scratch, c, k)
        above, at, where = 0, 0, 0
        for r in range(c):
            if vals[r] > tau:
                if above == k - 1:
                    return False
                hv[above], hi[above] = vals[r], idx[r]
                above += 1
            elif vals[r] == tau:
                at, where = at + 1, r
        if above != k - 1 or at != 1:
            return False
        hv[k - 1], hi[k - 1] = tau, idx[where]
        for r in range(1, k):  # insertion sort, descending
            v, vi, p = hv[r], hi[r], r
            while p > 0 and hv[p - 1] < v:
                hv[p], hi[p] = hv[p - 1], hi[p - 1]
                p -= 1
            hv[p], hi[p] = v, vi
        for r in range(k - 1):
            if not hv[r] > hv[r + 1]:
                return False
        for r in range(k):
            out_row[r] = hi[r]
        return True

    @njit(nogil=True)
    def sample_threshold(s: Any, n: int, n_rows: int, by_columns: bool, step: int) -> Any:
        """(n_rows,): each row's SAMPLE_KEEP-th largest of every step-th score (-inf where fewer)."""
        kept = np.full((n_rows, SAMPLE_KEEP), -np.inf, s.dtype)
        for j in range(0, n, step):
            for i in range(n_rows):
                keep_sampled(kept, i, s[j, i] if by_columns else s[i, j])
        return kept[:, SAMPLE_KEEP - 1].copy()

    @njit(nogil=True)
    def collect_by_columns(s: Any, t: Any, bv: Any, bi: Any, cnt: Any, cap: int) -> bool:  # s (n, B)
        """The candidates of each row, in one loop (a helper inlined here, or a second loop, ran ~2x slower).
        False (stopped early) where more than ``SENT_ON`` of the rows already hold over ``cap`` candidates: a
        batch of ties or constant scores, which the heap decides faster on its own."""
        n_rows = s.shape[1]
        for j in range(s.shape[0]):
            for i in range(n_rows):
                v = s[j, i]
                if not v < t[i]:
                    c = cnt[i]
                    if c < cap:
                        bv[i, c] = v
                        bi[i, c] = j
                    cnt[i] = c + 1
            if j % CHECK_EVERY == CHECK_EVERY - 1 and np.sum(cnt > cap) > SENT_ON * n_rows:
                return False
        return True

    @njit(nogil=True)
    def collect_by_rows(s: Any, t: Any, bv: Any, bi: Any, cnt: Any, cap: int) -> None:  # s (B, n)
        for i in range(s.shape[0]):
            ti, c = t[i], 0
            for j in range(s.shape[1]):
                v = s[i, j]
                if not v < ti:
                    if c == cap:  # too many: the heap decides this row
                        c += 1
                        break
                    bv[i, c] = v
                    bi[i, c] = j
                    c += 1
            cnt[i] = c

    @njit(nogil=True)
    def decide_rows(bv: Any, bi: Any, cnt: Any, k: int, out: Any, fallback: Any) -> int:
        scratch, hv, hi, n_fallback = np.empty(bv.shape[1], bv.dtype), np.empty(k, bv.dtype), np.empty(k, np.int64), 0
        for i in range(cnt.shape[0]):
            c = cnt[i]
            if not (k <= c <= bv.shape[1] and decide(bv[i], bi[i], c, k, scratch, hv, hi, out[i])):
                fallback[n_fallback] = i
                n_fallback += 1
        return n_fallback

    def topk_sampled(s: Any, k: int, by_columns: bool, out: Any, fallback: Any) -> int:
        n, n_rows = (s.shape[0], s.shape[1]) if by_columns else (s.shape[1], s.shape[0])
        t = sample_threshold(s, n, n_rows, by_columns, sample_step(k))
        cap = CAP_PER_K * k
        bv, bi, cnt = np.empty((n_rows, cap), s.dtype), np.empty((n_rows, cap), np.int32), np.zeros(n_rows, np.int64)
        if by_columns and not collect_by_columns(s, t, bv, bi, cnt, cap):
            fallback[:] = np.arange(n_rows)
            return n_rows
        if not by_columns:
            collect_by_rows(s, t, bv, bi, cnt, cap)
        return decide_rows(bv, bi, cnt, k, out, fallback)

    return topk_sampled


def select_topk(kernels: dict[str, Callable[..., Any]], s: np.ndarray, k: int, by_columns: bool,
                out: np.ndarray) -> int:
    """``out`` (B, k) = the top-k indices of each row of ``s`` (B, n; a transposed view of an (n, B) table where
    ``by_columns``): the sampled path, then the heap (``kernels["topk"]``) for the rows it leaves. Returns how
    many rows went to the heap."""
    fallback = np.empty(s.shape[0], np.int64)
    n_fallback = kernels["topk_sampled"](s.T if by_columns else s, k, by_columns, out, fallback)
    if by_columns and n_fallback > max(8, SENT_ON * len(s)):  # gathering many strided rows costs more
        kernels["topk"](s, k, True, out)
    elif n_fallback:
        rows = fallback[:n_fallback]
        part = np.empty((n_fallback, k), np.int64)
        kernels["topk"](np.ascontiguousarray(s[rows]), k, False, part)
        out[rows] = part
    return n_fallback
