"""Density evolution (DE) on the erasure channel and the belief-propagation threshold epsilon_BP.

DE: x_{l+1} = epsilon * lambda(1 - rho(1 - x_l)), x_0 = epsilon (variable-to-check erasure rate).
Threshold: epsilon_BP = min over x of g(x) = x / lambda(1 - rho(1 - x)), the tangency of the DE
map with the identity; x_BP is the minimiser and y_BP = 1 - rho(1 - x_BP).

With degree-1 concepts (binomial/Poisson ensembles, lambda(0) > 0) g(x) -> 0 as x -> 0: a few
concepts appear in one text only, so DE never reaches exactly zero and the "min over (0, 1]" is
trivial. The threshold that matters is the waterfall: the minimum of g beyond its first local
maximum (the released code gets the same point by flooring x at 0.1). For regular codes g -> inf
at 0 and this is the plain global minimum.

Numerics (float64 only): log g on a 400-point log-spaced grid brackets the minimum for every
ensemble of a batch at once; then a vectorised Illinois (safeguarded regula falsi) iteration
solves d log g/dx = 0 (analytic derivative) inside the bracket, so x_BP is accurate to ~1e-15
relative and epsilon_BP = exp(log g(x_BP)) to a few ulps. Where the derivative does not change
sign across the bracket, a golden-section search on log g is used instead.
For binomial ensembles so large that their Poisson limit is exact in float64 (see
`BinomialDegrees.poisson_is_exact`), the Lambert-W closed form is used instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmscale.theory._numerics import golden_min, illinois
from lmscale.theory.ensemble import BinomialDegrees, DegreeDistribution, PoissonDegrees, lambert_w_threshold

GRID_POINTS = 400
GRID_X_MIN = 1e-12
GOLDEN_ITERATIONS = 90
ILLINOIS_ITERATIONS = 60


def _degrees(obj) -> DegreeDistribution:
    return obj if isinstance(obj, DegreeDistribution) else obj.degrees


@dataclass(frozen=True)
class Threshold:
    """epsilon_BP, the tangency point (x_BP, y_BP), and whether it is a waterfall (interior minimum).

    Fields are floats for one ensemble, arrays for a batch. `waterfall` is False where g has no
    interior minimum (then epsilon_BP = min(1, g(1)) and x_BP = 1: decoding degrades smoothly).
    """

    eps_bp: np.ndarray
    x_bp: np.ndarray
    y_bp: np.ndarray
    waterfall: np.ndarray


def de_step(ensemble, epsilon, x) -> np.ndarray:
    """One density-evolution iteration."""
    return _degrees(ensemble).de_map(x, epsilon)


def de_trajectory(ensemble, epsilon, iterations: int = 200, x0=None) -> np.ndarray:
    """x_0..x_iterations (x_0 = epsilon unless given); leading axis is the iteration."""
    deg = _degrees(ensemble)
    x = np.asarray(epsilon if x0 is None else x0, dtype=np.float64)
    out = [x]
    for _ in range(iterations):
        x = deg.de_map(x, epsilon)
        out.append(x)
    return np.stack(out)


def de_fixed_point(ensemble, epsilon, max_iterations: int = 100_000, tol: float = 1e-15) -> np.ndarray:
    """The DE fixed point reached from x_0 = epsilon (the residual erasure rate after peeling)."""
    deg = _degrees(ensemble)
    x = np.asarray(epsilon, dtype=np.float64)
    for _ in range(max_iterations):
        nxt = deg.de_map(x, epsilon)
        if np.all(np.abs(nxt - x) <= tol * np.maximum(np.abs(x), 1e-300)):
            return nxt
        x = nxt
    return x


_GRID = np.geomspace(GRID_X_MIN, 1.0, GRID_POINTS)


def _threshold_arrays(deg: DegreeDistribution, shape: tuple[int, ...]) -> Threshold:
    grid = _GRID.reshape((GRID_POINTS,) + (1,) * len(shape))
    lg = np.broadcast_to(deg.log_g(grid), (GRID_POINTS,) + shape)
    # First local maximum: the first grid step where log g decreases.
    falling = np.diff(lg, axis=0) < 0
    has_fall = falling.any(axis=0)
    j_peak = np.argmax(falling, axis=0)
    idx = np.arange(GRID_POINTS).reshape((GRID_POINTS,) + (1,) * len(shape))
    masked = np.where(idx >= j_peak, lg, np.inf)
    j_min = np.argmin(masked, axis=0)
    interior = has_fall & (j_min < GRID_POINTS - 1)
    flat = grid.reshape(-1)
    lo = flat[np.maximum(j_min - 1, 0)]
    hi = flat[np.minimum(j_min + 1, GRID_POINTS - 1)]
    lo, hi = np.broadcast_to(lo, shape).astype(np.float64), np.broadcast_to(hi, shape).astype(np.float64)
    h_lo, h_hi = deg.x_dlog_g(lo), deg.x_dlog_g(hi)
    sign_change = (h_lo < 0) & (h_hi > 0)
    x_opt = illinois(deg.x_dlog_g, lo, hi, h_lo, h_hi, ILLINOIS_ITERATIONS)
    if not np.all(sign_change | ~interior):
        x_gold, _ = golden_min(deg.log_g, lo, hi, GOLDEN_ITERATIONS)
        x_opt = np.where(sign_change, x_opt, x_gold)
    lg_opt = deg.log_g(x_opt)
    lg_one = np.broadcast_to(deg.log_g(np.float64(1.0)), shape)
    x_bp = np.where(interior, x_opt, 1.0)
    eps_bp = np.minimum(np.exp(np.where(interior, lg_opt, lg_one)), 1.0)
    if isinstance(deg, BinomialDegrees):
        exact = np.broadcast_to(deg.poisson_is_exact(), shape)
        if exact.any():
            pd = deg.poisson()
            e_cf, x_cf = lambert_w_threshold(pd.a, pd.b)
            e_cf, x_cf = np.broadcast_to(e_cf, shape), np.broadcast_to(x_cf, shape)
            use = exact & interior & np.isfinite(e_cf)
            eps_bp, x_bp = np.where(use, e_cf, eps_bp), np.where(use, x_cf, x_bp)
    y_bp = 1.0 - deg.rho_c(x_bp)
    y_bp = np.broadcast_to(y_bp, shape)
    return Threshold(eps_bp=eps_bp, x_bp=x_bp, y_bp=y_bp, waterfall=interior)


def bp_threshold(ensemble) -> Threshold:
    """epsilon_BP and the tangency point for an ensemble or a (possibly batched) DegreeDistribution."""
    deg = _degrees(ensemble)
    shape = np.broadcast_shapes(*(np.shape(v) for v in vars(deg).values()))
    th = _threshold_arrays(deg, shape)
    if shape == ():
        return Threshold(float(th.eps_bp), float(th.x_bp), float(th.y_bp), bool(th.waterfall))
    return th


def poisson_threshold(ensemble) -> Threshold:
    """Closed-form (Lambert W) threshold of the Poisson limit of a concept–text ensemble."""
    deg = _degrees(ensemble)
    pd = deg.poisson() if isinstance(deg, BinomialDegrees) else deg
    if not isinstance(pd, PoissonDegrees):
        raise TypeError("poisson_threshold needs a binomial or Poisson degree distribution")
    eps, x = lambert_w_threshold(pd.a, pd.b)
    y = 1.0 - pd.rho_c(x)
    if np.ndim(eps) == 0:
        return Threshold(float(eps), float(x), float(y), bool(np.isfinite(eps)))
    return Threshold(eps, x, y, np.isfinite(eps))


def asymptotic_bit_erasure(ensemble, epsilon=None) -> np.ndarray:
    """Fraction of ALL variables still erased when peeling stops, in the large-n limit: eps L(y_inf).

    y_inf = 1 - rho(1 - x_inf) at the DE fixed point x_inf reached from x_0 = eps; zero below the
    threshold, a finite fraction above it (what a single large Monte-Carlo graph concentrates on).
    """
    deg = _degrees(ensemble)
    eps = np.asarray(ensemble.epsilon if epsilon is None else epsilon, dtype=np.float64)
    x = de_fixed_point(deg, eps)
    return eps * deg.L_c(deg.rho_c(x))
