"""IsoFLOP figure (Chinchilla Approach 2): loss vs N per compute budget with fitted parabolas and vertices,
and the vertices' power laws N_opt = k_N·C^a and D_opt = k_D·C^b.

The figure draws from a plain structure, `IsoFLOPFit` (one `IsoFLOPParabola` per budget:
loss = c0 + c1·x + c2·x² with x = ln N, N in total parameters), built by `as_isoflop_fit` from
- a fitted `lmscale.laws.IsoFLOPAllocation` (the Approach-2 estimator: its `budgets_` give each
  budget's vertex, loss at the vertex and curvature, which fix the parabola (for method "local" the local
  parabola, drawn over its window; for "akima"/"spline" the interpolant, from `est.budget_curve(i)`,
  drawn over the sampled sizes; edge budgets are drawn hollow, excluded); `a_`, `N_coef_`, `b_`,
  `D_coef_` the power laws; `budget_ids_` which rows form each budget; a `BootstrapResult` of it, passed
  as `bootstrap=`, the interval of a),
- an `IsoFLOPFit` itself,
- or a mapping (or object) with `budgets` (FLOPs) and `coefficients` ((c0, c1, c2) per budget), and
  optionally `N_min`, `N_max`, `a`, `k` (N_opt = k·C^a; fitted over the vertices when absent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from lmscale.errors import LmscaleError
from lmscale.laws.data import ScalingData
from lmscale.laws.tables import fmt
from lmscale.report.common import LABELS, FigureFiles, finish_axes, log_colors, new_figure, resolve_out, save_figure

COLUMNS = ["panel", "kind", "budget", "N", "D", "C", "loss", "inside_range", "used"]


@dataclass
class IsoFLOPParabola:
    """One budget's fit: loss = c0 + c1·ln N + c2·(ln N)², N in parameters, loss in nats/token.

    budget: compute (FLOPs). N_min, N_max: the sampled range of N (NaN if unknown). used: whether the
    vertex enters the power law (None: when it lies inside the sampled range). Coefficients may be
    NaN for a budget without a parabola (too few sizes); its points are still drawn.
    """

    budget: float
    coefficients: tuple[float, float, float]
    N_min: float = math.nan
    N_max: float = math.nan
    n_points: int = 0
    used: bool | None = None
    # From a fitted IsoFLOPAllocation: the vertex method, the curve its vertex was taken on (f(N) -> loss; the
    # interpolant for akima/spline, where coefficients are NaN), the N range that curve is drawn over (for "local":
    # its window), the estimator's vertex (N_opt, loss_opt), and whether the minimum is at an edge.
    method: str = "parabola"
    curve: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)
    draw_range: tuple[float, float] | None = None
    vertex: tuple[float, float] | None = None
    edge: bool = False

    @property
    def convex(self) -> bool:
        """Whether there is a minimum (a parabola opening upward, or a finite vertex of an interpolant)."""
        if self.vertex is not None:
            return bool(math.isfinite(self.vertex[0]) and self.vertex[0] > 0)
        return bool(self.coefficients[2] > 0)

    @property
    def N_opt(self) -> float:
        """The vertex (parameters); NaN when the parabola has no minimum."""
        if self.vertex is not None:
            return float(self.vertex[0]) if self.convex else math.nan
        c0, c1, c2 = self.coefficients
        return float(math.exp(-c1 / (2 * c2))) if self.convex else math.nan

    @property
    def loss_opt(self) -> float:
        if self.vertex is not None:
            return float(self.vertex[1]) if self.convex else math.nan
        return float(self.predict(self.N_opt)) if self.convex else math.nan

    @property
    def inside(self) -> bool:
        """Whether the vertex lies within the sampled N range (True when the range is unknown)."""
        n = self.N_opt
        if not math.isfinite(n):
            return False
        if not (math.isfinite(self.N_min) and math.isfinite(self.N_max)):
            return True
        return self.N_min * (1 - 1e-9) <= n <= self.N_max * (1 + 1e-9)

    @property
    def in_power_law(self) -> bool:
        return self.convex and (self.inside if self.used is None else bool(self.used))

    def predict(self, N) -> np.ndarray:
        if self.curve is not None:
            return np.asarray(self.curve(np.asarray(N, float)), float)
        c0, c1, c2 = self.coefficients
        x = np.log(np.asarray(N, float))
        return c0 + c1 * x + c2 * x * x

    @classmethod
    def from_vertex(cls, budget: float, N_opt: float, loss_opt: float, curvature: float, **kw) -> "IsoFLOPParabola":
        """The parabola loss_opt + curvature·(ln N − ln N_opt)²."""
        xv = math.log(N_opt) if N_opt > 0 and math.isfinite(N_opt) else math.nan
        c2 = float(curvature)
        return cls(float(budget), (loss_opt + c2 * xv * xv, -2 * c2 * xv, c2), **kw)


@dataclass
class IsoFLOPFit:
    """Parabolas per budget and the power laws N_opt = k·C^a, D_opt = k_D·C^b (NaN when not fitted).

    row_budget: optional index into `parabolas` for each row of the data the fit was made from (-1:
    none); without it rows are matched to the nearest budget in log C (within 10%).
    """

    parabolas: list[IsoFLOPParabola]
    a: float = math.nan
    k: float = math.nan
    b: float = math.nan
    k_D: float = math.nan
    notes: list[str] = field(default_factory=list)
    a_interval: tuple[float, float, float] | None = None  # (low, high, confidence) from a bootstrap
    row_budget: np.ndarray | None = None
    source: Any = field(default=None, repr=False)

    def power_law(self, C) -> np.ndarray:
        return self.k * np.asarray(C, float) ** self.a

    def power_law_D(self, C) -> np.ndarray:
        if math.isfinite(self.b) and math.isfinite(self.k_D):
            return self.k_D * np.asarray(C, float) ** self.b
        return np.asarray(C, float) / (6.0 * self.power_law(C))


def _ols(parabolas: list[IsoFLOPParabola]) -> tuple[float, float]:
    use = [p for p in parabolas if p.in_power_law]
    if len(use) < 2:
        return math.nan, math.nan
    a, logk = np.polyfit(np.log([p.budget for p in use]), np.log([p.N_opt for p in use]), 1)
    return float(a), float(math.exp(logk))


def _get(obj: Any, *names: str, default=None):
    for n in names:
        if isinstance(obj, Mapping):
            if n in obj:
                return obj[n]
        elif hasattr(obj, n):
            return getattr(obj, n)
    return default


def _from_allocation(est: Any, boot: Any = None) -> IsoFLOPFit:
    """From a fitted `lmscale.laws.IsoFLOPAllocation` (and a `BootstrapResult` of it, for the interval of a)."""
    pars = []
    method = getattr(est, "method", "parabola")
    for i, b in enumerate(est.budgets_):
        kw = dict(N_min=b.N_min, N_max=b.N_max, n_points=b.n_points, used=b.used, method=method,
                  edge=bool(getattr(b, "edge", False)))
        if method != "parabola":
            kw["vertex"] = (b.N_opt, b.loss_opt)
            lo, hi = getattr(b, "fit_N_min", math.nan), getattr(b, "fit_N_max", math.nan)
            if math.isfinite(lo) and math.isfinite(hi):
                kw["draw_range"] = (lo, hi)
        if math.isfinite(b.N_opt) and b.curvature > 0:
            pars.append(IsoFLOPParabola.from_vertex(b.C, b.N_opt, b.loss_opt, b.curvature, **kw))
        elif method in ("akima", "spline") and math.isfinite(b.N_opt) and hasattr(est, "budget_curve"):
            got = est.budget_curve(i)
            pars.append(IsoFLOPParabola(b.C, (math.nan, math.nan, math.nan), curve=got[0] if got else None, **kw))
        else:
            pars.append(IsoFLOPParabola(b.C, (math.nan, math.nan, math.nan), **kw))
    interval = None
    if boot is not None and "a" in boot.samples:
        lo, hi = boot.interval("a")
        interval = (lo, hi, boot.confidence)
    return IsoFLOPFit(pars, float(est.a_), float(est.N_coef_), float(est.b_), float(est.D_coef_),
                      list(getattr(est, "warnings_", []) or []), interval, np.asarray(est.budget_ids_), est)


def as_isoflop_fit(result: Any, bootstrap: Any = None) -> IsoFLOPFit:
    """An `IsoFLOPFit` from a fitted `IsoFLOPAllocation`, an `IsoFLOPFit`, or a mapping/object with
    `budgets` (FLOPs) and `coefficients` ((c0, c1, c2) per budget, loss = c0 + c1 ln N + c2 ln² N),
    optional `N_min`, `N_max`, `a`, `k`. `bootstrap`: a `BootstrapResult` of a fitted IsoFLOPAllocation
    (`lmscale.laws.bootstrap.bootstrap(est, ...)`) for the interval of a."""
    if isinstance(result, IsoFLOPFit):
        return result
    if hasattr(result, "budgets_") and hasattr(result, "a_"):
        return _from_allocation(result, bootstrap)
    if hasattr(result, "fit") and hasattr(result, "min_points") and not hasattr(result, "budgets_"):
        raise LmscaleError(f"{type(result).__name__} is not fitted; expected a fitted IsoFLOPAllocation (call .fit(data))")
    budgets = _get(result, "budgets", "C")
    coefs = _get(result, "coefficients", "coef")
    if budgets is None or coefs is None:
        raise LmscaleError(f"IsoFLOP result of type {type(result).__name__} has no budgets/coefficients; expected a fitted "
                           "IsoFLOPAllocation, an IsoFLOPFit, or a mapping with 'budgets' (FLOPs) and 'coefficients' "
                           "((c0, c1, c2) in ln N)")
    budgets = np.atleast_1d(np.asarray(budgets, float))
    coefs = np.atleast_2d(np.asarray(coefs, float))
    if coefs.shape != (len(budgets), 3):
        raise LmscaleError(f"IsoFLOP coefficients have shape {coefs.shape}; expected ({len(budgets)}, 3), "
                           "one (c0, c1, c2) per budget")
    nmin = np.asarray(_get(result, "N_min", default=[math.nan] * len(budgets)), float)
    nmax = np.asarray(_get(result, "N_max", default=[math.nan] * len(budgets)), float)
    pars = [IsoFLOPParabola(float(c), tuple(float(v) for v in cf), float(lo), float(hi))
            for c, cf, lo, hi in zip(budgets, coefs, nmin, nmax)]
    a, k = _get(result, "a", default=None), _get(result, "k", default=None)
    if a is None or k is None or not (math.isfinite(float(a)) and math.isfinite(float(k))):
        a, k = _ols(pars)
    return IsoFLOPFit(pars, float(a), float(k), notes=list(_get(result, "notes", default=[]) or []))


def _assign(data: ScalingData, fit: IsoFLOPFit, rtol: float = 0.1) -> np.ndarray:
    """Index of each row's budget (-1 if none)."""
    src = fit.source
    if fit.row_budget is not None and src is not None and getattr(src, "data_", None) is not None:
        d = src.data_
        if len(d) == len(data) and np.array_equal(d.N, data.N) and np.array_equal(d.loss, data.loss):
            # IsoFLOPAllocation keeps one BudgetFit per budget id, in id order.
            return np.asarray(fit.row_budget, int)
    out = np.full(len(data), -1)
    ok = np.isfinite(data.C)
    if not ok.any() or not fit.parabolas:
        return out
    lb = np.log([p.budget for p in fit.parabolas])
    dist = np.abs(np.log(data.C[ok])[:, None] - lb[None, :])
    j = np.argmin(dist, axis=1)
    out[ok] = np.where(dist[np.arange(ok.sum()), j] <= np.log1p(rtol), j, -1)
    return out


def isoflop_figure(data: ScalingData, result: Any, *, out: str | Path, bootstrap: Any = None) -> FigureFiles:
    """IsoFLOP curves with each budget's fitted curve and vertex (left), N_opt and D_opt vs C with power laws (right).

    `result`: a fitted `IsoFLOPAllocation` (or what `as_isoflop_fit` accepts; `bootstrap`, a `BootstrapResult`
    of it, adds the interval of a). The curve drawn per budget is the one its vertex was taken on: for method
    "local" the local parabola over its window, for "akima"/"spline" the interpolant over the sampled sizes, for
    "parabola" the whole-profile parabola (extended a little beyond the sizes). Writes ``isoflop.png``
    and ``isoflop.csv`` (or `out`). CSV columns: panel (loss_vs_N, optimum_vs_C), kind (point,
    unassigned_point, parabola, interpolant, vertex, D_vertex, power_law, power_law_D), budget (FLOPs),
    N (parameters), D (tokens), C (FLOPs), loss (nats/token), inside_range (vertex within the sampled
    N range), used (vertex used in the power law).
    """
    fit = as_isoflop_fit(result, bootstrap)
    if not fit.parabolas:
        raise LmscaleError("IsoFLOP result has no budgets; expected at least one budget with its parabola")
    png = resolve_out(out, "isoflop")
    budgets = [p.budget for p in fit.parabolas]
    color, _, _ = log_colors(np.array(budgets), "plasma")
    have_pl = math.isfinite(fit.a) and math.isfinite(fit.k)
    n_used = sum(p.in_power_law for p in fit.parabolas)
    method = fit.parabolas[0].method
    what = {"local": "local parabola per budget over its window in ln N around the lowest loss",
            "akima": "Akima interpolant per budget, minimum on it", "spline": "smoothing spline per budget, minimum on it"}
    caption = [(what[method] + "; D_opt = C / (6 N_opt); filled stars: vertex used in the power laws, hollow: excluded "
                "(minimum at the smallest or largest sampled size, or no usable minimum)") if method in what else
               "parabola per budget: L = c0 + c1·ln N + c2·(ln N)², vertex N_opt = exp(−c1 / (2 c2)), D_opt = C / (6 N_opt); "
               "filled stars: vertex inside the budget's sampled N range, hollow: outside (an extrapolated optimum)"]
    if have_pl:
        line = f"power laws over {n_used} budgets: N_opt = {fmt(fit.k, 4)}·C^a, a = {fit.a:.3f}"
        if fit.a_interval is not None:
            line += f" ({fit.a_interval[2]:.0%} bootstrap interval {fit.a_interval[0]:.3f} to {fit.a_interval[1]:.3f})"
        if math.isfinite(fit.b):
            line += f";  D_opt = {fmt(fit.k_D, 4)}·C^b, b = {fit.b:.3f}"
        caption.append(line)
    else:
        caption.append("no power law: fewer than 2 budgets with a usable vertex")
    caption += [f"warning: {n}" for n in fit.notes[:4]]
    fig, (ax, axp), _ = new_figure(2, width=6.0, height=4.8, caption="\n".join(caption))
    rows: list[list[Any]] = []
    which = _assign(data, fit)
    for j, p in enumerate(fit.parabolas):
        m = which == j
        col = color(p.budget)
        ax.scatter(data.N[m], data.loss[m], color=col, s=24, edgecolors="k", linewidths=0.4, zorder=4,
                   label=f"C = {fmt(p.budget, 3)} FLOPs")
        rows += [["loss_vs_N", "point", p.budget, n, d, c, y, "", ""] for n, d, c, y in
                 zip(data.N[m], data.D[m], data.C[m], data.loss[m])]
        if p.curve is None and not np.isfinite(p.coefficients).all():
            continue
        if p.draw_range is not None:  # the local window or the interpolant's sizes: drawn where it was fitted
            lo, hi = p.draw_range  # to the vertex too when it is used (an excluded edge vertex is not extrapolated to)
            grid = np.geomspace(min(lo, p.N_opt) if p.in_power_law else lo, max(hi, p.N_opt) if p.in_power_law else hi, 120)
        else:
            lo = p.N_min if math.isfinite(p.N_min) else (data.N[m].min() if m.any() else p.N_opt / 10)
            hi = p.N_max if math.isfinite(p.N_max) else (data.N[m].max() if m.any() else p.N_opt * 10)
            if p.convex:
                lo, hi = min(lo, p.N_opt), max(hi, p.N_opt)
            grid = np.geomspace(lo / 1.3, hi * 1.3, 120)
        yy = p.predict(grid)
        ax.plot(grid, yy, "-", color=col, lw=1.2)
        kind = "parabola" if p.curve is None else "interpolant"
        rows += [["loss_vs_N", kind, p.budget, n, p.budget / (6 * n), p.budget, y, "", ""] for n, y in zip(grid, yy)]
        if p.convex:
            filled = p.inside if p.method == "parabola" else p.in_power_law
            ax.scatter([p.N_opt], [p.loss_opt], marker="*", s=160, facecolors=col if filled else "none",
                       edgecolors="k" if filled else col, linewidths=1.0, zorder=6)
            rows.append(["loss_vs_N", "vertex", p.budget, p.N_opt, p.budget / (6 * p.N_opt), p.budget, p.loss_opt,
                         p.inside, p.in_power_law])
    rest = np.isfinite(data.N) & (which < 0)
    if rest.any():
        ax.scatter(data.N[rest], data.loss[rest], color="0.6", s=16, marker="x", label="points outside the budgets")
        rows += [["loss_vs_N", "unassigned_point", "", n, d, c, y, "", ""] for n, d, c, y in
                 zip(data.N[rest], data.D[rest], data.C[rest], data.loss[rest])]
    ax.scatter([], [], marker="*", s=120, facecolors="0.3", edgecolors="k",
               label="parabola vertex (N_opt)" if method == "parabola" else f"vertex (N_opt, {method})")
    finish_axes(ax, LABELS["N"], LABELS["loss"], title="IsoFLOP profiles: loss vs N at fixed compute")
    ax.legend(fontsize=7, loc="best")

    # ---- vertices and their power laws ---------------------------------------------------------
    good = [p for p in fit.parabolas if p.convex]
    for p in good:
        nv, dv = p.N_opt, p.budget / (6 * p.N_opt)
        for v, mk, kind, col in ((nv, "*", "vertex", "tab:blue"), (dv, "D", "D_vertex", "tab:green")):
            filled = p.inside if p.method == "parabola" else p.in_power_law
            axp.scatter([p.budget], [v], marker=mk, s=130 if mk == "*" else 40, facecolors=col if filled else "none",
                        edgecolors="k" if filled else col, linewidths=0.9, zorder=5)
            rows.append(["optimum_vs_C", kind, p.budget, nv, dv, p.budget, p.loss_opt, p.inside, p.in_power_law])
    axp.scatter([], [], marker="*", s=100, color="tab:blue", edgecolors="k", label="N_opt (parameters), vertex")
    axp.scatter([], [], marker="D", s=30, color="tab:green", edgecolors="k", label="D_opt = C/(6 N_opt) (tokens)")
    if have_pl:
        cg = np.geomspace(min(budgets) / 2, max(budgets) * 2, 100)
        ng, dg = fit.power_law(cg), fit.power_law_D(cg)
        axp.plot(cg, ng, "-", color="tab:blue", lw=1.5, label=f"N_opt = {fmt(fit.k, 3)}·C^{fit.a:.3f}")
        axp.plot(cg, dg, "-", color="tab:green", lw=1.5,
                 label=f"D_opt = {fmt(fit.k_D, 3)}·C^{fit.b:.3f}" if math.isfinite(fit.b) else "D_opt = C/(6 N_opt)")
        rows += [["optimum_vs_C", "power_law", "", n, c / (6 * n), c, "", "", ""] for c, n in zip(cg, ng)]
        rows += [["optimum_vs_C", "power_law_D", "", "", d, c, "", "", ""] for c, d in zip(cg, dg)]
    axp.legend(fontsize=7, loc="upper left")
    finish_axes(axp, LABELS["C"], "N_opt (parameters, total) / D_opt (tokens)", logy=True,
                title="compute-optimal N and D vs compute")
    fig.suptitle("IsoFLOP analysis (Chinchilla Approach 2)", fontsize=10)
    return save_figure(fig, png, COLUMNS, rows)
