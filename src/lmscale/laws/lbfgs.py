"""A batched L-BFGS in numpy: thousands of independent small problems advanced in lock-step.

Multi-start fitting runs the same tiny optimisation (3-6 parameters) from thousands of starts, and
bootstrap runs it once per resample. A per-start `scipy.optimize.minimize` loop spends almost all of
its time in Python overhead around a 240-element objective. Here every start is one row of an
(S, p) array: one objective call evaluates all pending rows at once (a (S, n_points) array
computation), so the per-call overhead is shared by every start. Rows that stop are removed from
the batch, so long tails cost only what they need.

The stopping rules copy scipy's L-BFGS-B defaults on purpose, including their dependence on the
objective's scale (the relative-reduction test divides by max(|f|, 1), and the gradient test is
absolute): with the same tolerances the batch reproduces the behaviour of the per-start reference,
including the "loss-scale trap" of averaging instead of summing the Huber terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

# scipy's L-BFGS-B defaults: factr=1e7 -> ftol = 1e7 * eps, pgtol = 1e-5, memory 10.
SCIPY_FTOL = 1e7 * np.finfo(float).eps
SCIPY_GTOL = 1e-5

CONVERGED_GTOL = 0
CONVERGED_FTOL = 1
MAX_ITER = 2
LINE_SEARCH_FAILED = 3
NON_FINITE_START = 4

STATUS_TEXT = {
    CONVERGED_GTOL: "gradient below gtol",
    CONVERGED_FTOL: "relative reduction of f below ftol",
    MAX_ITER: "iteration limit reached",
    LINE_SEARCH_FAILED: "line search found no decrease",
    NON_FINITE_START: "objective not finite at the start",
}

# fg(X, rows) -> (f, g): X is (k, p), rows (k,) says which problem each row belongs to.
BatchObjective = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class BatchResult:
    """Final state of every start: x (S, p), f (S,), g (S, p), iterations, evaluations, status codes."""

    x: np.ndarray
    f: np.ndarray
    g: np.ndarray
    n_iter: np.ndarray
    n_eval: np.ndarray
    status: np.ndarray

    @property
    def converged(self) -> np.ndarray:
        return (self.status == CONVERGED_GTOL) | (self.status == CONVERGED_FTOL)

    def status_counts(self) -> dict[str, int]:
        return {STATUS_TEXT[c]: int((self.status == c).sum()) for c in STATUS_TEXT if (self.status == c).any()}


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("kp,kp->k", a, b)


def minimize_batched(
    fg: BatchObjective,
    x0: np.ndarray,
    rows: np.ndarray | None = None,
    *,
    memory: int = 10,
    max_iter: int = 2000,
    ftol: float = SCIPY_FTOL,
    gtol: float = SCIPY_GTOL,
    max_ls: int = 20,
    c1: float = 1e-4,
    c2: float = 0.9,
) -> BatchResult:
    """Minimise S independent problems from the starts x0 (S, p) with L-BFGS.

    `rows[i]` is passed back to `fg` so that each start can carry its own data (e.g. bootstrap
    weights). The line search enforces Armijo + weak Wolfe curvature (so every stored pair has
    s.y > 0), starting from the unit step (1/||d|| on the first iteration, as L-BFGS-B does),
    interpolating back on failure and expanding while the slope is still steep.
    """
    x0 = np.array(x0, dtype=float, copy=True)
    S, p = x0.shape
    rows = np.arange(S) if rows is None else np.asarray(rows)
    out_x, out_f, out_g = x0.copy(), np.full(S, np.inf), np.zeros((S, p))
    out_it, out_ev, out_st = np.zeros(S, int), np.ones(S, int), np.full(S, MAX_ITER)

    ids = np.arange(S)
    x = x0
    f, g = fg(x, rows[ids])
    finite = np.isfinite(f) & np.isfinite(g).all(1)
    done = ~finite | (np.abs(g).max(1) <= gtol)
    out_st[ids[~finite]] = NON_FINITE_START
    out_st[ids[finite & done]] = CONVERGED_GTOL
    out_x[ids], out_f[ids], out_g[ids] = x, np.where(finite, f, np.inf), np.where(finite[:, None], g, 0.0)

    def keep(mask, *arrays):
        return [a[mask] for a in arrays]

    live = ~done
    ids, x, f, g = keep(live, ids, x, f, g)
    k = len(ids)
    Sh, Yh, rho = np.zeros((k, memory, p)), np.zeros((k, memory, p)), np.zeros((k, memory))
    it = np.zeros(k, int)
    nev = np.ones(k, int)

    while len(ids):
        k = len(ids)
        # Two-loop recursion; rho = 0 marks an empty slot, which then contributes nothing.
        q = -g
        alph = np.empty((k, memory))
        for i in range(memory - 1, -1, -1):
            alph[:, i] = rho[:, i] * _dot(Sh[:, i], q)
            q -= alph[:, i, None] * Yh[:, i]
        has = rho[:, -1] > 0
        yy = _dot(Yh[:, -1], Yh[:, -1])
        gamma = np.where(has, _dot(Sh[:, -1], Yh[:, -1]) / np.where(has, yy, 1.0), 1.0)
        d = gamma[:, None] * q
        for i in range(memory):
            beta = rho[:, i] * _dot(Yh[:, i], d)
            d += Sh[:, i] * (alph[:, i] - beta)[:, None]
        gd = _dot(g, d)
        bad = ~(gd < 0) | ~np.isfinite(gd)
        if bad.any():  # lost descent (numerical breakdown): restart that row from steepest descent
            d[bad], Sh[bad], Yh[bad], rho[bad], has[bad] = -g[bad], 0.0, 0.0, 0.0, False
            gd[bad] = -_dot(g[bad], g[bad])
        t = np.ones(k)
        first = ~has
        if first.any():
            t[first] = np.minimum(1.0, 1.0 / np.maximum(np.linalg.norm(d[first], axis=1), 1e-300))

        # Batched line search over the rows still pending.
        lo = np.zeros(k)
        hi = np.full(k, np.inf)
        acc = np.zeros(k, bool)
        cand = np.zeros(k, bool)  # an Armijo point was found (used if the curvature test never passes)
        xn, fn, gn = x.copy(), f.copy(), g.copy()
        pend = np.arange(k)
        for _ in range(max_ls):
            if not len(pend):
                break
            xt = x[pend] + t[pend, None] * d[pend]
            ft, gt = fg(xt, rows[ids[pend]])
            nev[pend] += 1
            ok = np.isfinite(ft) & np.isfinite(gt).all(1)
            ft = np.where(ok, ft, np.inf)
            armijo = ok & (ft <= f[pend] + c1 * t[pend] * gd[pend])
            gtd = np.where(ok, _dot(np.where(ok[:, None], gt, 0.0), d[pend]), np.nan)
            curv = armijo & (gtd >= c2 * gd[pend])
            better = armijo & (~cand[pend] | (ft < fn[pend]))
            upd = pend[better | curv]
            sel = (better | curv)
            xn[upd], fn[upd], gn[upd] = xt[sel], ft[sel], gt[sel]
            cand[pend[armijo]] = True
            acc[pend[curv]] = True
            # Too long (Armijo fails): shrink by safeguarded quadratic interpolation (bisection once bracketed).
            sh = pend[~armijo]
            if len(sh):
                tt, ff = t[sh], ft[~armijo]
                hi[sh] = tt
                denom = 2.0 * (ff - f[sh] - gd[sh] * tt)
                tq = np.where(np.isfinite(denom) & (denom > 0), -gd[sh] * tt * tt / np.where(denom > 0, denom, 1.0), 0.1 * tt)
                tq = np.clip(tq, 0.1 * tt, 0.5 * tt)
                t[sh] = np.where(lo[sh] > 0, 0.5 * (lo[sh] + tt), tq)
            # Too short (slope still steep): expand, or bisect towards a known upper bracket.
            ex = pend[armijo & ~curv]
            if len(ex):
                lo[ex] = t[ex]
                t[ex] = np.where(np.isfinite(hi[ex]), 0.5 * (t[ex] + hi[ex]), 4.0 * t[ex])
            pend = pend[~curv]
        acc |= cand
        failed = ~acc

        s = xn - x
        y = gn - g
        sy = _dot(s, y)
        store = acc & (sy > np.finfo(float).eps * _dot(y, y))
        if store.any():
            Sh[store] = np.roll(Sh[store], -1, axis=1)
            Yh[store] = np.roll(Yh[store], -1, axis=1)
            rho[store] = np.roll(rho[store], -1, axis=1)
            Sh[store, -1], Yh[store, -1], rho[store, -1] = s[store], y[store], 1.0 / sy[store]
        rel = (f - fn) / np.maximum(np.maximum(np.abs(f), np.abs(fn)), 1.0)
        x, f, g = np.where(acc[:, None], xn, x), np.where(acc, fn, f), np.where(acc[:, None], gn, g)
        it += acc
        status = np.full(k, -1)
        status[acc & (rel <= ftol)] = CONVERGED_FTOL
        status[acc & (np.abs(g).max(1) <= gtol)] = CONVERGED_GTOL
        status[failed] = LINE_SEARCH_FAILED
        status[(status < 0) & (it >= max_iter)] = MAX_ITER
        stop = status >= 0
        if stop.any():
            si = ids[stop]
            out_x[si], out_f[si], out_g[si] = x[stop], f[stop], g[stop]
            out_it[si], out_ev[si], out_st[si] = it[stop], nev[stop], status[stop]
            live = ~stop
            ids, x, f, g, Sh, Yh, rho, it, nev = keep(live, ids, x, f, g, Sh, Yh, rho, it, nev)
    return BatchResult(out_x, out_f, out_g, out_it, out_ev, out_st)
