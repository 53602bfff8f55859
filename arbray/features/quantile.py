"""Exact quantiles over a sliding window of integer trade sizes.

Keeps a count per distinct size (sorted keys). Adding or evicting a batch is a vectorised
search-and-increment; a quantile query is one cumulative sum over the distinct sizes (a few
thousand for a liquid symbol), independent of the number of trades in the window. Results equal
sorting the window and taking element ``int(n × p)`` — the predecessor's definition (digest §3.4).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]


class SlidingQuantile:
    """Multiset of int64 values with exact order statistics."""

    def __init__(self) -> None:
        self.keys: I64 = np.zeros(0, np.int64)
        self.counts: I64 = np.zeros(0, np.int64)
        self.total = 0

    def add(self, values: I64) -> None:
        if values.shape[0] == 0:
            return
        u, c = np.unique(values, return_counts=True)
        nk = self.keys.shape[0]
        pos = np.searchsorted(self.keys, u)
        if nk == 0 or np.any(pos >= nk) or np.any(self.keys[np.minimum(pos, nk - 1)] != u):
            merged = np.union1d(self.keys, u)
            counts = np.zeros(merged.shape[0], np.int64)
            counts[np.searchsorted(merged, self.keys)] = self.counts
            self.keys, self.counts = merged, counts
            pos = np.searchsorted(self.keys, u)
        self.counts[pos] += c
        self.total += int(values.shape[0])

    def remove(self, values: I64) -> None:
        """Remove values previously added (each occurrence once)."""
        if values.shape[0] == 0:
            return
        u, c = np.unique(values, return_counts=True)
        pos = np.searchsorted(self.keys, u)
        if np.any(pos >= self.keys.shape[0]) or np.any(self.keys[pos] != u) or np.any(self.counts[pos] < c):
            raise ValueError("removing values that are not in the window")
        self.counts[pos] -= c
        self.total -= int(values.shape[0])
        if self.keys.shape[0] > 4096 and np.count_nonzero(self.counts) < self.keys.shape[0] // 2:
            keep = self.counts > 0
            self.keys, self.counts = self.keys[keep], self.counts[keep]

    def scale(self, factor: int) -> None:
        """Multiply every value by ``factor`` (used when the tape's lot precision grows)."""
        self.keys = self.keys * factor

    def quantiles(self, probs: tuple[float, ...]) -> list[int | None]:
        """Element ``int(n × p)`` of the sorted window for each ``p`` (None when empty)."""
        if self.total == 0:
            return [None for _ in probs]
        cs = np.cumsum(self.counts)
        out: list[int | None] = []
        for p in probs:
            k = min(int(self.total * p), self.total - 1)
            out.append(int(self.keys[int(np.searchsorted(cs, k, "right"))]))
        return out
