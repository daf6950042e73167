"""Vectorised scalar solvers: every element of a batch (one per ensemble or compute budget) is
solved in lock-step with numpy, so a 200-budget sweep costs about as many numpy calls as one."""

from __future__ import annotations

import numpy as np

_INV_PHI = (np.sqrt(5.0) - 1.0) / 2.0


def golden_min(f, lo: np.ndarray, hi: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised golden-section minimisation of f on [lo, hi] (elementwise); returns (x, f(x))."""
    a, b = lo.copy(), hi.copy()
    c = b - _INV_PHI * (b - a)
    d = a + _INV_PHI * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iterations):
        left = fc <= fd  # minimum in [a, d]
        b = np.where(left, d, b)
        a = np.where(left, a, c)
        new = np.where(left, b - _INV_PHI * (b - a), a + _INV_PHI * (b - a))
        fnew = f(new)
        d, fd, c, fc = (
            np.where(left, c, new), np.where(left, fc, fnew), np.where(left, new, d), np.where(left, fnew, fd)
        )
    use_c = fc <= fd
    return np.where(use_c, c, d), np.where(use_c, fc, fd)


def illinois(h, a, b, fa, fb, iterations: int) -> np.ndarray:
    """Vectorised Illinois root finder on brackets [a, b] with h(a) < 0 < h(b); ~10 steps to 1 ulp."""
    a, b, fa, fb = a.copy(), b.copy(), fa.copy(), fb.copy()
    side = np.zeros(a.shape, dtype=np.int8)
    c_prev = a
    with np.errstate(invalid="ignore", divide="ignore"):
        for _ in range(iterations):
            c = (a * fb - b * fa) / (fb - fa)
            c = np.where(np.isfinite(c) & (c > a) & (c < b), c, 0.5 * (a + b))
            if np.all(np.abs(c - c_prev) <= 1e-15 * c):
                break
            c_prev = c
            fc = h(c)
            neg = fc < 0
            # Halve the stale endpoint's value when the same side is kept twice (Illinois step).
            fb = np.where(neg & (side == -1), 0.5 * fb, fb)
            fa = np.where(~neg & (side == 1), 0.5 * fa, fa)
            a, fa = np.where(neg, c, a), np.where(neg, fc, fa)
            b, fb = np.where(neg, b, c), np.where(neg, fb, fc)
            side = np.where(neg, -1, 1).astype(np.int8)
    return c
