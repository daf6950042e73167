"""Chinchilla Approach 2: IsoFLOP profiles.

Final losses are grouped by compute budget (the `budget` column of an IsoFLOP sweep, else C values
within a relative tolerance, so that nearly equal FLOP counts of different shapes form one
budget). Per budget the vertex of the loss-vs-ln N profile is N_opt (`lmscale.laws.vertex`) and
D_opt = C/(6 N_opt). Power laws N_opt = k_N C^a and D_opt = k_D C^b are then fitted by OLS in
log space over the budgets.

Vertex methods (`method=`): "local" (default), a parabola over +-`window` in ln N around the size
with the lowest loss; "akima" or "spline", the minimum of an Akima interpolant or a smoothing
spline (Porian et al. 2024); "parabola", one parabola over the whole profile (the original
estimator, kept for comparison). The whole-profile parabola is biased when alpha != beta and the
profile is wide or off-centre (Open-Athena's analysis; measured in vertex.py): on profiles of 3
decades whose optimum moves across the sampled sizes it tilts the exponent a by several hundredths.
A budget whose lowest loss is at its smallest or largest sampled size is not bracketed: with the
robust methods it is excluded from the power laws and reported in `warnings_`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lmscale.errors import LmscaleError
from lmscale.laws.data import ScalingData
from lmscale.laws.extrapolation import group_budgets
from lmscale.laws.frontier import compute_array
from lmscale.laws.params import Params
from lmscale.laws.summary import fmt
from lmscale.laws.vertex import _MIN_SIZES  # distinct sizes each method needs
from lmscale.laws.vertex import DEFAULT_WINDOW, METHODS, bootstrap_vertex, exponent_samples, profile_curve, profile_vertex


@dataclass
class BudgetFit:
    """One IsoFLOP profile: its budget C (FLOPs, geometric mean of the group), sampled N range, vertex.

    method: the vertex method; edge: the lowest (mean) loss is at the smallest or largest sampled size, so the
    minimum is not bracketed; fit_N_min, fit_N_max: the sizes that entered the vertex fit ("local": its window).
    used: the vertex enters the power laws (not for edge budgets unless method is "parabola").
    """

    C: float
    n_points: int
    N_min: float
    N_max: float
    curvature: float  # d2 loss / d (ln N)^2 / 2 of the (local) parabola; must be > 0; NaN for akima/spline
    N_opt: float
    D_opt: float
    loss_opt: float
    used: bool
    warning: str | None = None
    method: str = "parabola"
    edge: bool = False
    fit_N_min: float = float("nan")
    fit_N_max: float = float("nan")


def fit_power_law(C: np.ndarray, Y: np.ndarray) -> tuple[float, float, float]:
    """OLS of ln Y on ln C: (exponent, coefficient k in Y = k C^exponent, standard error of the exponent)."""
    x, y = np.log(C), np.log(Y)
    if len(x) < 2 or np.ptp(x) == 0:
        return float("nan"), float("nan"), float("nan")
    slope, icpt = np.polyfit(x, y, 1)
    se = float("nan")
    if len(x) > 2:
        resid = y - (icpt + slope * x)
        se = float(np.sqrt(resid @ resid / (len(x) - 2) / np.sum((x - x.mean()) ** 2)))
    return float(slope), float(np.exp(icpt)), se


def parabola_vertex(lnN: np.ndarray, loss: np.ndarray, weights: np.ndarray) -> tuple[float, float, float]:
    """The per-budget fit: a weighted least-squares parabola of loss in ln N (centred at the weighted mean).

    Returns (curvature c2, ln N at the vertex, loss at the vertex); without a minimum (c2 <= 0) the
    vertex is (nan, nan). This is the one place a budget's optimum is estimated.
    """
    xm = np.average(lnN, weights=weights)
    c2, c1, c0 = np.polyfit(lnN - xm, loss, 2, w=np.sqrt(weights))
    if not c2 > 0:
        return float(c2), float("nan"), float("nan")
    return float(c2), float(xm - c1 / (2 * c2)), float(c0 - c1 * c1 / (4 * c2))


def _edge_side(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> str | None:
    """'smallest' or 'largest' when the lowest weighted mean loss over distinct sizes is at an end; else None."""
    xs, inv = np.unique(x, return_inverse=True)
    ys = np.bincount(inv, weights=w * y) / np.bincount(inv, weights=w)
    i = int(np.argmin(ys))
    return "smallest" if i == 0 else "largest" if i == len(xs) - 1 else None


def _fit_budgets(N, C, loss, ids, weights, min_points, drop_outside, max_spread=None, method="parabola",
                 window=DEFAULT_WINDOW) -> list[BudgetFit]:
    out = []
    need = max(min_points, _MIN_SIZES[method])
    nan = float("nan")
    for g in np.unique(ids):
        m = (ids == g) & (weights > 0)
        if not m.any():
            continue
        Ng, Lg, wg = N[m], loss[m], weights[m]
        Cg = float(np.exp(np.average(np.log(C[ids == g]))))
        x = np.log(Ng)
        nd = len(np.unique(x))
        base = dict(C=Cg, n_points=int(m.sum()), N_min=float(Ng.min()), N_max=float(Ng.max()), method=method)
        spread = float(C[ids == g].max() / C[ids == g].min())
        if max_spread is not None and spread > max_spread:
            # Grouping by C chains values that are each within rtol of the next, so data with no
            # shared budgets (a random N x D scatter) form groups spanning a wide range of compute,
            # whose "parabolas" would give a meaningless exponent.
            out.append(BudgetFit(**base, curvature=nan, N_opt=nan, D_opt=nan, loss_opt=nan, used=False,
                                 warning=f"budget {fmt(Cg)} FLOPs: C ranges over {spread:.3g}x ({fmt(C[ids == g].min())} to "
                                         f"{fmt(C[ids == g].max())}); not one compute budget, skipped"))
            continue
        if nd < need:
            who = "a parabola" if method in ("parabola", "local") else f"method {method!r}"
            out.append(BudgetFit(**base, curvature=nan, N_opt=nan, D_opt=nan, loss_opt=nan, used=False,
                                 warning=f"budget {fmt(Cg)} FLOPs: {nd} distinct model size(s); {who} needs {need}"))
            continue
        side = _edge_side(x, Lg, wg)
        edge = dict(edge=side is not None)
        if method == "parabola":
            out.append(_parabola_budget(base, edge, x, Ng, Lg, wg, Cg, side, drop_outside))
            continue
        v = profile_vertex(x, Lg, method, wg, window=window)
        xu = x[v.used]
        c2 = parabola_vertex(xu, Lg[v.used], wg[v.used])[0] if method == "local" else nan
        fit = dict(fit_N_min=float(np.exp(xu.min())), fit_N_max=float(np.exp(xu.max())))
        warn, used = None, True
        if side is not None:
            warn = (f"budget {fmt(Cg)} FLOPs: minimum at the {side} sampled size (N = "
                    f"{fmt(Ng.min() if side == 'smallest' else Ng.max())}): not bracketed, excluded from the exponent fit")
            used = False
        elif not np.isfinite(v.lnN_opt) or v.warning:
            warn = f"budget {fmt(Cg)} FLOPs: {v.warning or 'no minimum'}; budget skipped"
            used = False
        Nopt = float(np.exp(v.lnN_opt))
        out.append(BudgetFit(**base, **edge, **fit, curvature=c2, N_opt=Nopt, D_opt=Cg / (6 * Nopt), loss_opt=v.loss_opt,
                             used=used, warning=warn))
    return out


def _parabola_budget(base, edge, x, Ng, Lg, wg, Cg, side, drop_outside) -> BudgetFit:
    """method="parabola": the original rule (one whole-profile parabola; outside vertices warned, kept unless
    drop_outside); an edge budget is flagged and noted but kept, as before."""
    nan = float("nan")
    fit = dict(fit_N_min=float(Ng.min()), fit_N_max=float(Ng.max()))
    c2, xv, loss_v = parabola_vertex(x, Lg, wg)
    if not c2 > 0:
        return BudgetFit(**base, **edge, **fit, curvature=c2, N_opt=nan, D_opt=nan, loss_opt=nan, used=False,
                         warning=f"budget {fmt(Cg)} FLOPs: the parabola opens downward (curvature {c2:.3g}); "
                                 "no minimum, budget skipped")
    Nopt = float(np.exp(xv))
    warn = None
    used = True
    if not (x.min() <= xv <= x.max()):
        warn = (f"budget {fmt(Cg)} FLOPs: vertex N_opt = {fmt(Nopt)} lies outside the sampled range "
                f"[{fmt(Ng.min())}, {fmt(Ng.max())}]; extrapolated optimum"
                + ("; budget skipped" if drop_outside else "; sample sizes around it"))
        used = not drop_outside
    if side is not None:
        note = f"minimum at the {side} sampled size: not bracketed (kept by method 'parabola')"
        warn = f"{warn}; {note}" if warn else f"budget {fmt(Cg)} FLOPs: {note}"
    return BudgetFit(**base, **edge, **fit, curvature=c2, N_opt=Nopt, D_opt=Cg / (6 * Nopt), loss_opt=loss_v,
                     used=used, warning=warn)


def _why_unused(budgets: list[BudgetFit], min_points: int) -> str:
    """What kept budgets out, counted: e.g. '30 with fewer than 3 model sizes, 2 spanning a range of C'."""
    counts = {"spanning a range of C": 0, f"with fewer than {min_points} model sizes": 0, "without a minimum": 0,
              "with the minimum at the smallest or largest size": 0, "with the vertex outside the sizes": 0}
    for b in budgets:
        if b.used or not b.warning:
            continue
        key = ("spanning a range of C" if "not one compute budget" in b.warning else
               f"with fewer than {min_points} model sizes" if "distinct model size" in b.warning else
               "without a minimum" if "opens downward" in b.warning or "no minimum" in b.warning else
               "with the minimum at the smallest or largest size" if "not bracketed, excluded" in b.warning else
               "with the vertex outside the sizes")
        counts[key] += 1
    return ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "none found"


class IsoFLOPAllocation(Params):
    """Approach 2 estimator. Fitted: a_, b_ (N_opt ~ C^a, D_opt ~ C^b), N_coef_, D_coef_, a_se_, b_se_,
    budgets_ (list of BudgetFit), budget_ids_, warnings_ (list of str), n_budgets_used_, data_.

    method: how each budget's vertex is estimated (`lmscale.laws.vertex`): "local" (default: a parabola over
    +-`window` in ln N around the size with the lowest loss, widened to 3 sizes with one on each side), "akima"
    (Akima interpolant), "spline" (smoothing spline; 5 sizes per budget) or "parabola" (one parabola over the
    whole profile: the original estimator, kept for comparison).
    window: half-width in ln N of the "local" window (1.5, about +-0.65 decade; the trade-off is measured in
    lmscale.laws.vertex).
    budget_rtol: C values within this relative distance form one budget (ignored with a budget column).
    min_points: distinct model sizes a budget needs (3 for a parabola; "spline" needs 5 regardless).
    drop_outside: with method "parabola", skip budgets whose vertex lies outside the sampled sizes (default:
    keep, warn). The other methods never use a vertex outside the sizes that were fitted (the interpolants'
    minimum is inside by construction; a local parabola whose vertex leaves its window is skipped).

    Edges: a budget whose lowest loss is at its smallest or largest sampled size does not bracket its minimum;
    with "local", "akima" and "spline" it is excluded from the power laws and reported in `warnings_`
    ("minimum at the smallest sampled size ...: not bracketed, excluded"). "parabola" flags it (`edge`) and keeps
    it, as the original estimator did.

    Bootstrap (`lmscale.laws.bootstrap.bootstrap(est, ...)`): stratified by budget. Each resample draws, for
    every usable budget, as many of its points as it has, with replacement (the same shared generator, budget
    by budget: the same seed gives the same numbers), re-estimates each vertex (a resample whose minimum lands at
    an edge of its sizes, or with too few sizes, is NaN for that budget) and refits the power laws over the
    non-edge budgets. Stratified because each point of an IsoFLOP profile is a separate run: resampling runs
    within a budget keeps every budget in every resample, whereas a cluster bootstrap over whole runs (or over
    WSD trunks shared across budgets) would drop sizes from every profile at once and move minima to edges.
    Samples: a, b (R,); N_opt, D_opt, tokens_per_param at the requested compute ((R,) or (R, m)); and per budget
    vertex_N_opt and vertex_tokens_per_param, shape (R, n_budgets), one column per entry of `budgets_` (NaN for
    excluded budgets); the budgets' C (FLOPs) is `point["budgets"]` of the BootstrapResult.
    Parameters are stored by `__init__` and validated by `fit` (scikit-learn's rules).
    """

    _bootstrap_label = "approach 2 (IsoFLOP)"
    _bootstrap_resampling = "stratified bootstrap (runs resampled within each compute budget)"
    _own_params = ("method", "window", "budget_rtol", "min_points", "drop_outside")

    def __init__(self, method: str = "local", window: float = DEFAULT_WINDOW, budget_rtol: float = 0.1,
                 min_points: int = 3, drop_outside: bool = False):
        self.method = method
        self.window = window
        self.budget_rtol = budget_rtol
        self.min_points = min_points
        self.drop_outside = drop_outside

    def _check_params(self) -> None:
        if not isinstance(self.method, str) or self.method not in METHODS:
            raise LmscaleError(f"method={self.method!r}; expected one of {', '.join(repr(m) for m in METHODS)}")
        h = self.window
        if isinstance(h, bool) or not isinstance(h, (int, float, np.integer, np.floating)) or not (np.isfinite(h) and h > 0):
            raise LmscaleError(f"window={h!r}; expected a positive half-width in ln N such as 1.5")
        r = self.budget_rtol
        if isinstance(r, bool) or not isinstance(r, (int, float, np.floating)) or not 0 < r < 1:
            raise LmscaleError(f"budget_rtol={r!r}; expected a relative tolerance in (0, 1) such as 0.1")
        m = self.min_points
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 3:
            raise LmscaleError(f"min_points={m!r}; a parabola needs at least 3 model sizes per budget")
        if not isinstance(self.drop_outside, (bool, np.bool_)):
            raise LmscaleError(f"drop_outside={self.drop_outside!r}; expected True or False")

    def _max_spread(self, data: ScalingData) -> float | None:
        """Largest max/min ratio of C within a budget found by grouping C values (none with a budget column)."""
        if data.budget is not None and np.isfinite(data.budget).all():
            return None
        return (1 + self.budget_rtol) ** 2

    def _solve(self, data: ScalingData, ids: np.ndarray, weights: np.ndarray):
        budgets = _fit_budgets(data.N, data.C, data.loss, ids, weights, self.min_points, self.drop_outside,
                               self._max_spread(data), self.method, float(self.window))
        used = [b for b in budgets if b.used]
        C = np.array([b.C for b in used])
        a, kN, a_se = fit_power_law(C, np.array([b.N_opt for b in used])) if len(used) >= 2 else (np.nan,) * 3
        b, kD, b_se = fit_power_law(C, np.array([b.D_opt for b in used])) if len(used) >= 2 else (np.nan,) * 3
        return budgets, a, kN, a_se, b, kD, b_se

    def fit(self, data: ScalingData) -> "IsoFLOPAllocation":
        """Estimate each compute budget's vertex and fit the power laws over the usable budgets; returns self."""
        self._check_params()
        if not isinstance(data, ScalingData):
            raise LmscaleError(f"IsoFLOPAllocation.fit expects a ScalingData; got {type(data).__name__} "
                               "(wrap arrays with ScalingData.from_arrays(N=..., D=..., C=..., loss=...))")
        if len(data) < self.min_points * 2:
            raise LmscaleError(f"{data.source}: {len(data)} data point(s) for Approach 2; it needs at least "
                               f"{self.min_points * 2} (2 budgets x {self.min_points} model sizes)")
        ids = group_budgets(data.C, self.budget_rtol, data.budget)
        budgets, a, kN, a_se, b, kD, b_se = self._solve(data, ids, np.ones(len(data)))
        used = [x for x in budgets if x.used]
        if len(used) < 2:
            why = _why_unused(budgets, self.min_points)
            raise LmscaleError(f"{data.source}: {len(used)} usable IsoFLOP budget(s) of {len(budgets)} ({why}); Approach 2 "
                               f"needs IsoFLOP structure: at least 2 compute budgets (a 'budget' column, or C values equal "
                               f"within {self.budget_rtol:.0%}) with {self.min_points}+ model sizes and a minimum each")
        on_budgets = sum(x.n_points for x in budgets if x.used or x.edge)  # edge budgets are profiles too
        if on_budgets < len(data) / 2:
            # A few chance near-coincidences of C in scattered data are not an IsoFLOP design.
            raise LmscaleError(f"{data.source}: only {on_budgets} of {len(data)} points lie on the {len(used)} usable IsoFLOP "
                               f"budgets; Approach 2 needs IsoFLOP structure (most points sharing {self.min_points}+-size "
                               "compute budgets); expected an IsoFLOP sweep, or Approach 3 (--approach 3) for scattered data")
        self.data_, self.budget_ids_ = data, ids
        self.budgets_, self.a_, self.N_coef_, self.a_se_, self.b_, self.D_coef_, self.b_se_ = budgets, a, kN, a_se, b, kD, b_se
        self.n_budgets_used_ = len(used)
        self.warnings_ = [x.warning for x in budgets if x.warning]
        if len(used) == 2:
            self.warnings_.append("only 2 budgets: the exponents have no residual degrees of freedom (no standard error)")
        return self

    def _require_fitted(self) -> None:
        if not hasattr(self, "budgets_"):
            raise LmscaleError("IsoFLOPAllocation is not fitted yet; call .fit(data) first")

    def optimal_allocation(self, C) -> dict[str, Any]:
        """N_opt (params), D_opt (tokens), tokens/param at compute C (FLOPs) from the fitted power laws; the same
        keys as an Approach-3 law (C, N_opt, D_opt, tokens_per_param, loss_opt = NaN: not estimated)."""
        self._require_fitted()
        return power_law_allocation(self.a_, self.N_coef_, self.b_, self.D_coef_, C)

    def _budget_rows(self) -> list[np.ndarray]:
        """Row mask of each entry of `budgets_` (they are in budget-id order, one per id)."""
        return [self.budget_ids_ == g for g in np.unique(self.budget_ids_)]

    def budget_curve(self, i: int):
        """The curve budget i's vertex was taken on, for drawing: (f, N_lo, N_hi) with f(N) -> loss (nats/token) on
        [N_lo, N_hi] (parameters): the whole-profile parabola, the local parabola over its window, or the
        interpolant; None for a budget without a fit (too few sizes, not one budget)."""
        self._require_fitted()
        b = self.budgets_[i]
        if not (np.isfinite(b.fit_N_min) and np.isfinite(b.fit_N_max)):
            return None
        m = self._budget_rows()[i]
        f, lo, hi = profile_curve(np.log(self.data_.N[m]), self.data_.loss[m], self.method, window=float(self.window))
        return (lambda N: f(np.log(np.asarray(N, float)))), float(np.exp(lo)), float(np.exp(hi))

    def _quantities(self, a, kN, b, kD, C) -> dict[str, Any]:
        N, D = kN * C ** a, kD * C ** b
        return {"a": a, "b": b, "N_opt": N, "D_opt": D, "tokens_per_param": D / N}

    def _bootstrap_n_clusters(self) -> int:
        """Runs resampled: the points on the usable budgets (each point of a profile is one run)."""
        return int(sum(b.n_points for b in self.budgets_ if b.used))

    def _parabola_resamples(self, x, y, n_resamples, rng) -> np.ndarray:
        """method="parabola": ln N at the vertex per resample of one budget's points, by the original rule."""
        n = len(x)
        out = np.full(n_resamples, np.nan)
        for r in range(n_resamples):
            w = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
            xs = x[w > 0]
            if len(np.unique(xs)) < self.min_points:
                continue
            c2, xv, _ = parabola_vertex(x, y, w)
            if c2 > 0 and (not self.drop_outside or xs.min() <= xv <= xs.max()):
                out[r] = xv
        return out

    def _bootstrap_samples(self, n_resamples, rng, compute, predict_at, n_starts):
        """Stratified bootstrap: resample each usable budget's runs, re-estimate its vertex, refit the power laws."""
        self._require_fitted()
        data = self.data_
        tc = _compute_array(compute, data)
        R, nb = n_resamples, len(self.budgets_)
        Cb = np.array([b.C for b in self.budgets_])
        used = np.array([b.used for b in self.budgets_])
        S = np.full((nb, R), np.nan)  # ln N_opt per budget and resample
        for j, (b, m) in enumerate(zip(self.budgets_, self._budget_rows())):
            if not b.used:
                continue
            x, y = np.log(data.N[m]), data.loss[m]
            S[j] = (self._parabola_resamples(x, y, R, rng) if self.method == "parabola" else
                    bootstrap_vertex(x, y, self.method, R, rng, window=float(self.window)))
        a = exponent_samples(Cb, S, exclude=~used)["a"]
        ok = np.isfinite(S) & used[:, None]
        lc = np.log(Cb)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            k = ok.sum(0)
            ln_kN = np.where(ok, S, 0.0).sum(0) / k - a * np.where(ok, lc, 0.0).sum(0) / k
        lt = np.log(tc) if np.ndim(tc) == 0 else np.log(tc)[None, :]
        ln_N = (ln_kN + a * lt) if np.ndim(tc) == 0 else (ln_kN[:, None] + a[:, None] * lt)
        N = np.exp(ln_N)
        D = tc / (6 * N)
        samples = {"a": a, "b": 1.0 - a, "N_opt": N, "D_opt": D, "tokens_per_param": D / N}
        vN = np.exp(S.T)  # (R, n_budgets); NaN where excluded or failed
        samples["vertex_N_opt"] = vN
        samples["vertex_tokens_per_param"] = Cb / (6 * vN * vN)
        conv = np.isfinite(samples["a"])
        point = _point(self._quantities(self.a_, self.N_coef_, self.b_, self.D_coef_, tc))
        pN = np.array([b.N_opt if b.used else np.nan for b in self.budgets_])
        point.update(vertex_N_opt=pN, vertex_tokens_per_param=Cb / (6 * pN * pN), budgets=Cb)
        notes = [f"stratified bootstrap by compute budget (vertex method {self.method!r}): each budget's runs are "
                 "resampled with replacement within the budget; vertex_N_opt and vertex_tokens_per_param have one "
                 "column per budget, C = " + ", ".join(fmt(c) for c in Cb) + " FLOPs (point['budgets']); NaN for "
                 "budgets excluded from the power laws"]
        return point, samples, conv, None, notes + _predict_at_note(predict_at)

    def to_dict(self, bootstrap=None, **kw) -> dict[str, Any]:
        from lmscale.laws.summary import to_dict

        return to_dict(self, bootstrap, **kw)

    def summary(self, bootstrap=None, **kw) -> str:
        from lmscale.laws.summary import summary

        return summary(self, bootstrap, **kw)

    def __str__(self) -> str:
        return self.summary() if hasattr(self, "budgets_") else repr(self)


def power_law_allocation(a: float, kN: float, b: float, kD: float, C) -> dict[str, Any]:
    """N_opt = kN C^a, D_opt = kD C^b at C (FLOPs): the allocation dict of every approach (loss_opt NaN)."""
    Carr = compute_array(C)
    N, D = kN * Carr ** a, kD * Carr ** b
    out = {"C": Carr, "N_opt": N, "D_opt": D, "tokens_per_param": D / N, "loss_opt": np.full(Carr.shape, np.nan)}
    return {k: (float(v) if np.ndim(v) == 0 else np.asarray(v, float)) for k, v in out.items()}


def _compute_array(compute, data: ScalingData):
    """The bootstrap's compute: a float, or an (m,) array; default 10x the largest compute in the data."""
    if compute is None:
        return float(10 * np.nanmax(data.C))
    return float(compute) if np.ndim(compute) == 0 else np.asarray(compute, float)


def _point(q: dict[str, Any]) -> dict[str, Any]:
    return {k: (float(v) if np.ndim(v) == 0 else np.asarray(v, float)) for k, v in q.items()}


def _predict_at_note(predict_at) -> list[str]:
    return ([] if predict_at is None else
            ["predict_at ignored: Approaches 1 and 2 estimate the allocation, not the loss at a point"])
