"""Deterministic batches indexed by step.

Each epoch draws a random phase ``offset in [0, T)`` and a random permutation of the
non-overlapping windows ``offset + T*k`` (T = context), both from a generator seeded by
``(seed, epoch)``. Batches take consecutive entries of that permutation, so within an epoch
every window is used exactly once (sampling without replacement) and the windows tile the data:
each token is seen once per epoch, except at most 2T tokens at the ends. Because sample ``i`` is a pure function of ``(seed, i)``, the loader's whole state is
the step number: resuming needs no replay.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from lmscale.errors import LmscaleError

_LOADER_STREAM = 0x10AD  # keeps the data order independent of the parameter-init stream


def n_windows(n_tokens: int, context: int) -> int:
    """Windows of context+1 tokens per epoch, valid for every phase offset in [0, context)."""
    return n_tokens // context - 1


class BatchLoader:
    def __init__(self, tokens: np.ndarray, context: int, batch_size: int, seed: int, split: str = "train"):
        self.tokens = tokens
        self.context = context
        self.batch_size = batch_size
        self.seed = seed
        self.windows = n_windows(len(tokens), context)
        if self.windows < 1:
            raise LmscaleError(
                f"model.context={context} is too long for the {split} split ({len(tokens)} tokens); "
                f"expected a context of at most {len(tokens) // 2} tokens"
            )
        self._epoch = lru_cache(maxsize=2)(self._make_epoch)
        self._arange = np.arange(context + 1)

    def _make_epoch(self, epoch: int) -> tuple[int, np.ndarray]:
        rng = np.random.Generator(np.random.PCG64([self.seed, _LOADER_STREAM, epoch]))
        offset = int(rng.integers(self.context))
        return offset, rng.permutation(self.windows)

    def starts(self, step: int) -> np.ndarray:
        """Start positions of the `batch_size` windows of optimizer step `step`."""
        i = step * self.batch_size + np.arange(self.batch_size)
        epochs, within = np.divmod(i, self.windows)
        out = np.empty(self.batch_size, dtype=np.int64)
        for e in np.unique(epochs):
            offset, perm = self._epoch(int(e))
            sel = epochs == e
            out[sel] = offset + self.context * perm[within[sel]]
        return out

    def batch(self, step: int) -> np.ndarray:
        """Token windows of shape (batch_size, context + 1); inputs are [:, :-1], targets [:, 1:]."""
        idx = self.starts(step)[:, None] + self._arange[None, :]
        return np.asarray(self.tokens[idx], dtype=np.int32)

    def epochs_seen(self, steps: int) -> float:
        return steps * self.batch_size / self.windows


def eval_starts(n_tokens: int, context: int, count: int | None) -> np.ndarray:
    """Fixed validation windows: `count` evenly spaced non-overlapping windows (all if None)."""
    total = (n_tokens - 1) // context
    if total < 1:
        raise LmscaleError(
            f"model.context={context} is too long for the validation split ({n_tokens} tokens); "
            f"expected a context of at most {n_tokens - 1} tokens"
        )
    if count is None or count >= total:
        return context * np.arange(total, dtype=np.int64)
    idx = np.unique(np.linspace(0, total - 1, count).round().astype(np.int64))
    return context * idx
