"""Robust IsoFLOP vertices (Chinchilla Approach 2): N_opt of one compute budget's loss-vs-ln N profile.

Methods (`profile_vertex(..., method=...)`):
- "local" (default): a parabola in ln N fitted only to the sizes within +-`window` = 1.5 (natural log units, about
  +-0.65 decade) of the size with the lowest mean loss. If that holds fewer than 3 sizes, or none on a side that has
  sizes, the interval is widened symmetrically (by distance in ln N) to the next size until it holds 3 with one on
  each side. A window in ln N, not a loss margin: under L = E + A/N^alpha + B/D^beta with D = C/(6N), the profile in
  u = ln N - ln N_opt is one curve at every budget up to scale, so a fixed ln N window gives every budget the same
  small bias, which moves the coefficient, not the exponent; a loss margin would widen as the loss scale falls with C.
  The leading bias is (alpha - beta)/6 * m4/m2 (moments of the window's sizes about the optimum). Half-width 1.5 is
  the measured trade-off (alpha 0.34, beta 0.28, noise 1e-3; max noise-free bias / rmse over 400 noisy profiles,
  13 sizes over 3 decades): 1.15: 0.003 / 0.043 (3-5 sizes: noisy); 1.5: 0.0115 / 0.019; 2.0: 0.024 / 0.024;
  whole profile: 0.089 / 0.082.
- "akima": Akima interpolation of the per-size mean losses, minimised on a grid then refined (Porian et al. 2024).
- "spline": a cubic smoothing spline (scipy make_smoothing_spline, penalty by GCV; needs 5 sizes), minimised likewise.
- "parabola": one parabola over the whole profile (as isoflop.py), for comparison.

Measured in tests/laws/test_vertex.py (Chinchilla A 406.4, B 410.7, E 1.69, alpha 0.34, beta 0.28; 13 sizes over
3 decades; error in ln N_opt):
- noise-free: parabola +0.071..+0.089 centred, 0.045..0.44 at other bracketed offsets, -0.60 with the optimum one size
  from the largest size, +0.93 (inside the sampled range) on a one-sided profile; local <= 0.0115; akima <= 0.0061;
  spline <= 0.0003, 0.037 with the optimum one size from an edge (natural end conditions);
- noise 1e-3 (40 profiles): rmse local 0.016, akima 0.081, spline 0.080 (both unbiased: mean -0.011, -0.009), parabola
  0.082 (bias);
- exponent a (true 0.4516), the same 13 sizes 1e7..1e10 at 9 budgets 1e18..1e22: parabola 0.396 (b 0.604 against
  0.548), local 0.4516, akima 0.4508, spline 0.4509 (noise 1e-3: 0.395, 0.454, 0.448, 0.447); the same 13 token counts
  1e9..1e12 at 13 budgets 1e19..1e25: parabola 0.626 with its 5 edge budgets, 0.489 without; local 0.4513, akima
  0.4508, spline 0.4546 without them. With this law the parabola never gave b < 0: its vertex follows a shift of the
  sampled window by less than the shift, so b stays between 0 and 1.

A profile whose lowest loss is at its smallest or largest size is flagged `edge`: its vertex is not bracketed, and the
caller must exclude it from the exponent fit and report it (`exponent_samples` takes that mask). Replicates at one size
(seeds) are averaged, weighted; `weights` are frequency weights (the bootstrap passes its resampling counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.interpolate import Akima1DInterpolator, make_smoothing_spline
from scipy.optimize import minimize_scalar

from lmscale.errors import LmscaleError

METHODS = ("local", "akima", "spline", "parabola")
DEFAULT_WINDOW = 1.5  # half-width in ln N (about +-0.65 decade) around the empirical minimum
_MIN_SIZES = {"local": 3, "akima": 3, "spline": 5, "parabola": 3}
_GRID = 2001  # grid points over the sampled range for the interpolants, before a bounded refinement


@dataclass(frozen=True)
class Vertex:
    """One profile's vertex. `used`: mask over the input points that entered the fit. `edge`: the lowest mean loss is
    at the smallest or largest sampled size (not bracketed). lnN_opt is NaN when the fit has no minimum."""

    lnN_opt: float
    N_opt: float
    loss_opt: float
    method: str
    used: np.ndarray
    edge: bool
    warning: str | None = None


class PowerLaw(NamedTuple):
    """Y = coef * C^exponent, fitted by (weighted) OLS of ln Y on ln C; se: standard error of the exponent."""

    exponent: float
    coef: float
    se: float


def _as_1d(name: str, v, n: int | None = None) -> np.ndarray:
    try:
        a = np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        raise LmscaleError(f"{name} = {v!r}; expected a 1-D array of numbers") from None
    if a.ndim != 1:
        raise LmscaleError(f"{name} has shape {a.shape}; expected a 1-D array")
    if n is not None and len(a) != n:
        raise LmscaleError(f"{name} has {len(a)} values; expected {n}, one per point")
    bad = np.flatnonzero(~np.isfinite(a))
    if len(bad):
        raise LmscaleError(f"{name}[{bad[0]}] = {a[bad[0]]}; expected finite values")
    return a


def _check(lnN, loss, method, weights, window):
    if method not in METHODS:
        raise LmscaleError(f"method={method!r}; expected one of {', '.join(repr(m) for m in METHODS)}")
    x = _as_1d("lnN", lnN)
    y = _as_1d("loss", loss, len(x))
    w = np.ones(len(x)) if weights is None else _as_1d("weights", weights, len(x))
    if (w < 0).any():
        i = int(np.flatnonzero(w < 0)[0])
        raise LmscaleError(f"weights[{i}] = {w[i]}; expected non-negative weights")
    if not (np.isfinite(window) and window > 0):
        raise LmscaleError(f"window={window}; expected a positive half-width in ln N")
    k = len(np.unique(x[w > 0]))
    if k < _MIN_SIZES[method]:
        raise LmscaleError(f"{k} distinct model size(s) with positive weight; method {method!r} needs at least "
                           f"{_MIN_SIZES[method]}")
    return x, y, w


def _aggregate(x, y, w):
    """Distinct sizes (sorted), their weighted mean losses and summed weights; index of each point's size."""
    pos = w > 0
    xs, inv = np.unique(x[pos], return_inverse=True)
    ws = np.bincount(inv, weights=w[pos])
    ys = np.bincount(inv, weights=w[pos] * y[pos]) / ws
    return xs, ys, ws, pos, inv


def _window(xs, i, h):
    """Sizes within +-h of xs[i], widened symmetrically (by distance) to >= 3 sizes with one on each side when there is one."""
    d = np.abs(xs - xs[i])
    for r in np.unique(np.concatenate([[h], d[d > h]])):
        m = d <= r
        one_sided = (not (xs[m] < xs[i]).any() and i > 0) or (not (xs[m] > xs[i]).any() and i < len(xs) - 1)
        if m.sum() >= 3 and not one_sided:
            return m
    return np.ones(len(xs), bool)


def _parabola(xs, ys, ws):
    xm = np.average(xs, weights=ws)
    c2, c1, c0 = np.polyfit(xs - xm, ys, 2, w=np.sqrt(ws))
    if not c2 > 0:
        return np.nan, np.nan, f"the parabola opens downward (curvature {c2:.3g}); no minimum"
    return xm - c1 / (2 * c2), c0 - c1 * c1 / (4 * c2), None


def _curve_min(f, lo, hi):
    g = np.linspace(lo, hi, _GRID)
    j = int(np.argmin(f(g)))
    a, b = g[max(j - 1, 0)], g[min(j + 1, _GRID - 1)]
    r = minimize_scalar(lambda t: float(f(t)), bounds=(a, b), method="bounded", options={"xatol": 1e-9})
    t = float(r.x) if r.fun <= f(g[j]) else float(g[j])
    return t, float(f(t))


def _vertex(xs, ys, ws, method, window):
    """(lnN_opt, loss_opt, size mask used, edge, warning) on aggregated, sorted sizes."""
    i = int(np.argmin(ys))
    edge = i == 0 or i == len(xs) - 1
    warn = None
    used = np.ones(len(xs), bool)
    if method == "parabola":
        xv, lv, warn = _parabola(xs, ys, ws)
    elif method == "local":
        used = _window(xs, i, window)
        xv, lv, warn = _parabola(xs[used], ys[used], ws[used])
    elif method == "akima":
        xv, lv = _curve_min(Akima1DInterpolator(xs, ys), xs[0], xs[-1])
    else:
        xv, lv = _curve_min(make_smoothing_spline(xs, ys, w=ws / ws.mean()), xs[0], xs[-1])
    if warn is None and not (xs[used][0] <= xv <= xs[used][-1]):
        warn = (f"vertex N_opt = {np.exp(xv):.4g} lies outside the fitted sizes "
                f"[{np.exp(xs[used][0]):.4g}, {np.exp(xs[used][-1]):.4g}]; extrapolated")
    if edge:
        side = "smallest" if i == 0 else "largest"
        e = (f"lowest loss at the {side} sampled size N = {np.exp(xs[i]):.4g}: the minimum is not bracketed; "
             "exclude this budget from the exponent fit")
        warn = e if warn is None else f"{e}; {warn}"
    return float(xv), float(lv), used, edge, warn


def profile_vertex(lnN, loss, method: str = "local", weights=None, *, window: float = DEFAULT_WINDOW) -> Vertex:
    """Vertex of one IsoFLOP profile: final losses `loss` at model sizes exp(lnN) (replicates allowed).

    method: "local" | "akima" | "spline" | "parabola" (see the module docstring). weights: non-negative frequency
    weights per point (zero drops a point). window: half-width in ln N of the "local" window around the minimum.
    """
    x, y, w = _check(lnN, loss, method, weights, window)
    xs, ys, ws, pos, inv = _aggregate(x, y, w)
    xv, lv, used_sizes, edge, warn = _vertex(xs, ys, ws, method, window)
    used = np.zeros(len(x), bool)
    used[np.flatnonzero(pos)[used_sizes[inv]]] = True
    return Vertex(lnN_opt=xv, N_opt=float(np.exp(xv)), loss_opt=lv, method=method, used=used, edge=edge, warning=warn)


def bootstrap_vertex(lnN, loss, method: str = "local", n_resamples: int = 1000, rng=None, weights=None, *,
                     window: float = DEFAULT_WINDOW) -> np.ndarray:
    """ln N_opt for `n_resamples` resamples of the profile's points (runs) drawn with replacement.

    A resample with fewer distinct sizes than the method needs, whose minimum is at an edge of its sizes, or whose fit
    has no minimum is failed: NaN. rng: a numpy Generator or a seed.
    """
    x, y, w = _check(lnN, loss, method, weights, window)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise LmscaleError(f"n_resamples={n_resamples!r}; expected a positive integer")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    n = len(x)
    out = np.full(n_resamples, np.nan)
    for r in range(n_resamples):
        wr = np.bincount(rng.integers(0, n, n), minlength=n) * w
        xs, ys, ws, _, _ = _aggregate(x, y, wr)
        if len(xs) < _MIN_SIZES[method]:
            continue
        xv, _, _, edge, _ = _vertex(xs, ys, ws, method, window)
        if not edge:
            out[r] = xv
    return out


def fit_exponent(C, N_opt, weights=None) -> PowerLaw:
    """N_opt = coef * C^exponent by (weighted) OLS of ln N_opt on ln C over budgets; se from the residuals
    (NaN with 2 budgets). For D_opt = C/(6 N_opt) the exponent is 1 - exponent, with the same se."""
    C = _as_1d("C", C)
    N = _as_1d("N_opt", N_opt, len(C))
    w = np.ones(len(C)) if weights is None else _as_1d("weights", weights, len(C))
    for name, v in (("C", C), ("N_opt", N)):
        if (v <= 0).any():
            i = int(np.flatnonzero(v <= 0)[0])
            raise LmscaleError(f"{name}[{i}] = {v[i]}; expected positive values")
    if (w < 0).any() or (w > 0).sum() < 2:
        raise LmscaleError(f"weights = {w.tolist()}; expected non-negative weights, positive for at least 2 budgets")
    x, y = np.log(C)[w > 0], np.log(N)[w > 0]
    w = w[w > 0]
    if np.ptp(x) == 0:
        raise LmscaleError(f"all budgets have C = {C[0]:.4g}; expected at least 2 different compute budgets")
    xm, ym = np.average(x, weights=w), np.average(y, weights=w)
    sxx = np.sum(w * (x - xm) ** 2)
    slope = float(np.sum(w * (x - xm) * (y - ym)) / sxx)
    icpt = ym - slope * xm
    se = float("nan")
    if len(x) > 2:
        r = y - icpt - slope * x
        se = float(np.sqrt(np.sum(w * r * r) / (len(x) - 2) / sxx))
    return PowerLaw(slope, float(np.exp(icpt)), se)


def exponent_samples(C, lnN_samples, exclude=None, min_budgets: int = 2) -> dict[str, np.ndarray]:
    """Propagate per-budget vertex bootstrap samples into samples of a (N_opt ~ C^a) and b (D_opt ~ C^b, D_opt = C/(6 N_opt),
    so b = 1 - a).

    C: (n_budgets,) budgets; lnN_samples: (n_budgets, n_resamples) from bootstrap_vertex, NaN where a resample failed;
    exclude: (n_budgets,) mask of budgets left out (edge profiles). Per resample, the budgets with a finite vertex enter
    an OLS fit; with fewer than `min_budgets` of them the sample is NaN. Returns {"a", "b", "n_budgets"}.
    """
    C = _as_1d("C", C)
    if (C <= 0).any():
        i = int(np.flatnonzero(C <= 0)[0])
        raise LmscaleError(f"C[{i}] = {C[i]}; expected positive budgets")
    S = np.asarray(lnN_samples, dtype=float)
    if S.ndim != 2 or S.shape[0] != len(C):
        raise LmscaleError(f"lnN_samples has shape {S.shape}; expected ({len(C)}, n_resamples), one row per budget")
    if np.isinf(S).any():
        raise LmscaleError("lnN_samples holds an infinite value; expected finite ln N_opt or NaN for a failed resample")
    ex = np.zeros(len(C), bool) if exclude is None else np.asarray(exclude, bool)
    if ex.shape != C.shape:
        raise LmscaleError(f"exclude has shape {ex.shape}; expected ({len(C)},), one flag per budget")
    if min_budgets < 2:
        raise LmscaleError(f"min_budgets={min_budgets}; an exponent needs at least 2 budgets")
    x = np.log(C)
    ok = np.isfinite(S) & ~ex[:, None]
    k = ok.sum(0)
    X = np.where(ok, x[:, None], 0.0)
    Y = np.where(ok, S, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        xm, ym = X.sum(0) / k, Y.sum(0) / k
        sxx = np.sum(np.where(ok, (x[:, None] - xm) ** 2, 0.0), 0)
        a = np.sum(np.where(ok, (x[:, None] - xm) * (S - ym), 0.0), 0) / sxx
    a = np.where((k >= min_budgets) & (sxx > 0), a, np.nan)
    return {"a": a, "b": 1.0 - a, "n_budgets": k}


def profile_curve(lnN, loss, method: str = "local", weights=None, *, window: float = DEFAULT_WINDOW):
    """The curve `profile_vertex` minimised, for drawing: (f, lo, hi) with f(lnN) -> loss, defined on [lo, hi] (ln N).

    "parabola": the whole-profile parabola over the sampled sizes; "local": the parabola over its window's sizes;
    "akima"/"spline": the interpolant over the sampled sizes. The same aggregation and fit as `profile_vertex`.
    """
    x, y, w = _check(lnN, loss, method, weights, window)
    xs, ys, ws, _, _ = _aggregate(x, y, w)
    if method in ("parabola", "local"):
        m = _window(xs, int(np.argmin(ys)), window) if method == "local" else np.ones(len(xs), bool)
        xm = np.average(xs[m], weights=ws[m])
        c = np.polyfit(xs[m] - xm, ys[m], 2, w=np.sqrt(ws[m]))
        return (lambda t: np.polyval(c, np.asarray(t, float) - xm)), float(xs[m][0]), float(xs[m][-1])
    f = Akima1DInterpolator(xs, ys) if method == "akima" else make_smoothing_spline(xs, ys, w=ws / ws.mean())
    return (lambda t: np.asarray(f(np.asarray(t, float)), float)), float(xs[0]), float(xs[-1])
