"""Profiling the irreducible loss E of the Chinchilla law: is E identified by the data at all?

A free fit of L = E + A/N^alpha + B/D^beta reports some E, but when every observed loss is far
above E (small models, few tokens: the data-limited regime) the data barely constrain it and the
optimiser runs to the bound (the demo's old fit: E = 6.6e-36). Printing that value as an estimate
is wrong; the honest report is the profile: fix E on a grid over its plausible range, fit the other
four parameters at each value (`ChinchillaFixedEForm`, the same Huber-in-log-space objective and
multi-start fit as the free law), and look at how the objective and the quantities that matter
(the compute-optimal exponent a = beta/(alpha+beta), tokens per parameter at given compute) move
with E.

    res = profile_E(data)                      # default grid: 1e-3 L_min to 0.99 L_min, 25 values
    identified(res)                            # True / False (rule below)
    print(res.summary())                       # the table, and whether E is identified, and why

Identification rule (`identification`): E is identified when (1) the profile objective has an
interior minimum on the grid, and (2) the likelihood-ratio interval {E : Lambda(E) <= chi2_1(level)}
is bounded inside the plausible range, i.e. Lambda exceeds the threshold at both ends of the grid.
Lambda is the robust likelihood-ratio statistic of an M-estimator (the "drop-in-dispersion" test of
Schrader & Hettmansperger 1980 and Ronchetti 1982, see `lr_scale`), so the Huber objective acts as
a scaled negative log-likelihood with the scale estimated from the residuals of the best fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.stats import chi2, norm

from lmscale.errors import LmscaleError
from lmscale.laws.data import ScalingData
from lmscale.laws.fit import fit_multistart
from lmscale.laws.forms import ChinchillaFixedEForm, ChinchillaForm
from lmscale.laws.frontier import chinchilla_allocation
from lmscale.laws.objective import HuberLogObjective
from lmscale.laws.summary import fmt, format_table, jsonable

# Default plausible range of E: from a small positive floor (the log-sum-exp parametrisation cannot
# hold E = 0) to just below the smallest observed loss (E is a floor every loss stays above).
FLOOR_FRACTION = 1e-3
TOP_FRACTION = 0.99
N_GRID = 25
MIN_QUADRATIC = 5  # fewer residuals than this inside +-delta: the Gaussian-model estimate of lr_scale is used
MAX_GRID = 1000


def default_E_grid(data: ScalingData, n: int = N_GRID, floor: float = FLOOR_FRACTION,
                   top: float = TOP_FRACTION) -> np.ndarray:
    """n values of E evenly spaced from floor*L_min to top*L_min (L_min: the smallest observed loss)."""
    if not 0 < floor < top < 1:
        raise LmscaleError(f"E range fractions floor={floor!r}, top={top!r}; expected 0 < floor < top < 1")
    if not 3 <= int(n) <= MAX_GRID:
        raise LmscaleError(f"n={n!r} grid values of E; expected 3 to {MAX_GRID}")
    lmin = float(np.min(data.loss))
    return np.linspace(floor * lmin, top * lmin, int(n))


def _check_grid(E_values, loss_min: float) -> np.ndarray:
    try:
        E = np.asarray(E_values, dtype=float).ravel()
    except (TypeError, ValueError):
        raise LmscaleError(f"E_values={E_values!r}; expected numbers (irreducible losses in nats/token)") from None
    if E.size == 0:
        raise LmscaleError("E_values is empty; expected at least one irreducible loss to profile (3+ to judge identification)")
    if E.size > MAX_GRID:
        raise LmscaleError(f"{E.size:,} values of E; expected at most {MAX_GRID:,}")
    bad = ~np.isfinite(E)
    if bad.any():
        raise LmscaleError(f"E_values holds {int(bad.sum())} non-finite value(s) (first: {E[bad][0]!r}); expected finite numbers")
    if (E <= 0).any():
        raise LmscaleError(f"E_values holds {float(E[E <= 0][0])!r}; expected positive irreducible losses (nats/token)")
    if (E >= loss_min).any():
        raise LmscaleError(f"E_values holds {float(E.max())!r} >= the smallest observed loss {loss_min:.6g}; "
                           f"expected E below every loss (E is the loss of an infinite model on infinite data)")
    return np.unique(E)


def lr_scale(residuals: np.ndarray, delta: float, n_params: int) -> tuple[float, str]:
    """kappa such that Lambda = 2 kappa (objective - minimum) is approximately chi2-distributed.

    For an M-estimator minimising sum rho(r) with psi = rho', the likelihood-ratio statistic for q
    restrictions is 2 [sum rho(restricted) - sum rho(free)] * E[psi'] / E[psi^2] ~ chi2_q
    (Schrader & Hettmansperger 1980; Ronchetti 1982). For Huber_delta on log-loss residuals,
    psi = clip(r, -delta, delta) and psi' = 1{|r| < delta}: with every residual inside +-delta this is
    the Gaussian LR, Delta(sum r^2)/sigma^2; with delta far below the residuals it is the Laplace LR,
    2 Delta(sum |r|)/b. E[psi^2] is taken with the n/(n - p) correction for p fitted parameters.
    When fewer than MIN_QUADRATIC residuals fall inside +-delta the empirical E[psi'] is too noisy,
    so both moments come from a Gaussian model with the robust scale 1.4826 MAD. Returns (kappa, method).
    """
    r = np.asarray(residuals, float)
    n = len(r)
    dof = n / max(n - n_params, 1)
    psi = np.clip(r, -delta, delta)
    inside = np.abs(r) < delta
    tiny = (1e-9 * delta) ** 2  # an exact fit: a huge but finite kappa
    if inside.sum() >= MIN_QUADRATIC:
        return float(inside.mean() / max(np.mean(psi ** 2) * dof, tiny)), "empirical E[psi']/E[psi^2]"
    sigma = 1.4826 * float(np.median(np.abs(r - np.median(r)))) * math.sqrt(dof)
    sigma = max(sigma, 1e-9 * delta)
    c = delta / sigma
    p_in = 2 * norm.cdf(c) - 1
    e_psi2 = sigma ** 2 * (p_in - 2 * c * norm.pdf(c) + 2 * c ** 2 * norm.sf(c))
    return float(p_in / max(e_psi2, tiny)), f"Gaussian model, robust residual scale {sigma:.3g} (log loss)"


@dataclass
class ProfileResult:
    """The profile of the Chinchilla law over fixed values of E (nats/token), one row per grid value.

    `objective[i]` is the minimised Huber objective with E = E[i]; `params` the fitted (A, B, E,
    alpha, beta) per row; `a` = beta/(alpha+beta) (N_opt ~ C^a) and `tokens_per_param[i, j]` the
    compute-optimal D/N at `compute[j]` FLOPs under row i's law. `free` is the unconstrained
    5-parameter fit (or None), `kappa` the scale that turns objective differences into the
    likelihood-ratio statistic (`lr_scale`), already multiplied by `cluster_factor`.
    """

    E: np.ndarray
    objective: np.ndarray
    theta: np.ndarray
    params: dict[str, np.ndarray]
    converged: np.ndarray
    a: np.ndarray
    compute: np.ndarray
    N_opt: np.ndarray
    D_opt: np.ndarray
    tokens_per_param: np.ndarray
    delta: float
    n_points: int
    n_clusters: int
    loss_min: float
    kappa: float
    kappa_method: str
    cluster_factor: float
    free: dict[str, Any] | None = None
    source: str = "<arrays>"
    n_starts: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def reference_objective(self) -> float:
        """The smallest objective seen: the profile's grid minimum or the free fit, whichever is lower."""
        f = float(np.min(self.objective))
        if self.free is not None and np.isfinite(self.free["objective"]):
            f = min(f, float(self.free["objective"]))
        return f

    def lr_statistic(self) -> np.ndarray:
        """Lambda(E) = 2 kappa (objective(E) - reference objective), >= 0; ~ chi2_1 at the true E."""
        return np.maximum(2.0 * self.kappa * (self.objective - self.reference_objective), 0.0)

    def summary(self, level: float = 0.95) -> str:
        ident = identification(self, level)
        lam = self.lr_statistic()
        j = len(self.compute) - 1
        head = ["E", "objective", "Lambda", "A", "B", "alpha", "beta", "a (N_opt~C^a)",
                f"tokens/param at C={fmt(self.compute[j])}", "converged"]
        rows = [[fmt(self.E[i]), f"{self.objective[i]:.6e}", fmt(lam[i]), fmt(self.params["A"][i]),
                 fmt(self.params["B"][i]), fmt(self.params["alpha"][i]), fmt(self.params["beta"][i]), fmt(self.a[i]),
                 fmt(self.tokens_per_param[i, j]), "yes" if self.converged[i] else "NO"]
                for i in range(len(self.E))]
        title = (f"profile of E over [{fmt(self.E[0])}, {fmt(self.E[-1])}] nats/token ({len(self.E)} values; smallest "
                 f"observed loss {fmt(self.loss_min)}); Lambda = 2 kappa (objective - min), kappa = {fmt(self.kappa)} "
                 f"({self.kappa_method})")
        lines = [format_table(head, rows, title=title)]
        if self.free is not None:
            fp = self.free["params"]
            lines.append(f"free 5-parameter fit: E = {fmt(fp['E'])}, objective {self.free['objective']:.6e}"
                         + (" (E at its bound: not an estimate)" if fp["E"] < self.E[0] else ""))
        lines.append(ident.message)
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self, level: float = 0.95) -> dict[str, Any]:
        ident = identification(self, level)
        lam = self.lr_statistic()
        rows = []
        for i in range(len(self.E)):
            rows.append({"E": self.E[i], "objective": self.objective[i], "lambda": lam[i],
                         "params": {k: v[i] for k, v in self.params.items()}, "a": self.a[i],
                         "converged": bool(self.converged[i]),
                         "at_compute": [{"C": c, "N_opt": self.N_opt[i, j], "D_opt": self.D_opt[i, j],
                                         "tokens_per_param": self.tokens_per_param[i, j]}
                                        for j, c in enumerate(self.compute)]})
        return jsonable({"source": self.source, "units": {"E": "nats/token", "C": "FLOPs (6ND)"},
                         "delta": self.delta, "n_points": self.n_points, "n_clusters": self.n_clusters,
                         "loss_min": self.loss_min, "kappa": self.kappa, "kappa_method": self.kappa_method,
                         "cluster_factor": self.cluster_factor, "free": self.free, "rows": rows,
                         "identification": ident.to_dict(), "notes": self.notes})


def profile_E(data: ScalingData, E_values: Sequence[float] | None = None, delta: float = 1e-3, *,
              compute: float | Sequence[float] | None = None, starts: np.ndarray | None = None,
              free: Any = True, cluster_correction: bool = True, polish: bool = True) -> ProfileResult:
    """Fit the Chinchilla law with E fixed at each value of `E_values` (default: `default_E_grid`).

    data: ScalingData with N (params), D (tokens), loss (nats/token). delta: the Huber threshold
    (1e-3 as the free law). compute: FLOPs at which to report the allocation (default 10x the
    largest C). starts: (k, 4) starts in (a, b, alpha, beta) (default: Hoffmann's grid restricted to
    them, 900 starts), plus, at every E, the optimum of the previous grid value and of the free fit.
    free: also fit the free 5-parameter law (the reference minimum and its E), or a ChinchillaLaw
    already fitted to this data with this delta, whose optimum is used instead of fitting again. cluster_correction:
    multiply the LR statistic by n_clusters/n (runs with several rows have correlated residuals;
    this is the design-effect bound when rows of a run are fully correlated; no effect with one row per run).
    """
    if not isinstance(data, ScalingData):
        raise LmscaleError(f"profile_E expects a ScalingData (N, D, loss); got {type(data).__name__}")
    if not (isinstance(delta, (int, float)) and math.isfinite(delta) and delta > 0):
        raise LmscaleError(f"delta={delta!r}; expected a positive Huber threshold such as 1e-3")
    if len(data) < 6:
        raise LmscaleError(f"{data.source}: {len(data)} data point(s); profiling E needs at least 6 "
                           "(5 parameters of the free law + 1)")
    for v in ("N", "D"):
        col = getattr(data, v)
        if not np.isfinite(col).all():
            raise LmscaleError(f"{data.source}: the Chinchilla law needs the column {v}; it is missing from the data")
        if len(np.unique(col)) < 2:
            raise LmscaleError(f"{data.source}: all points have the same {v}; profiling E needs at least 2 distinct values")
    loss_min = float(np.min(data.loss))
    E = default_E_grid(data) if E_values is None else _check_grid(E_values, loss_min)
    if compute is None:
        finite_C = data.C[np.isfinite(data.C)]
        compute = [10.0 * float(finite_C.max())] if len(finite_C) else [1e21]
    C = np.atleast_1d(np.asarray(compute, dtype=float)).ravel()
    if C.size == 0 or not (np.isfinite(C).all() and (C > 0).all()):
        raise LmscaleError(f"compute={compute!r}; expected positive finite FLOPs such as 1e21")

    full = ChinchillaForm()
    X = full.features(N=data.N, D=data.D)
    free_res = None
    free_theta4 = None
    notes: list[str] = []
    if hasattr(free, "theta_") or free:
        if hasattr(free, "theta_"):  # a fitted law: its optimum, not a second 4500-start fit
            if getattr(free, "form_", None) is None or free.form_.name != full.name or free.delta != delta \
                    or free.reduction != "sum" or len(free.data_) != len(data):
                raise LmscaleError(f"free={free!r}; expected a ChinchillaLaw fitted to these {len(data)} points "
                                   f"with delta={delta} and reduction='sum'")
            theta_free, obj_free, conv_free = np.asarray(free.theta_, float), free.objective_, free.converged_
        else:
            obj = HuberLogObjective(full, X, data.loss, delta=delta)
            r = fit_multistart(obj, full.start_grid(X, obj.logL), do_polish=polish)
            theta_free, obj_free, conv_free = np.asarray(r.theta, float), r.objective, r.converged
        fp = {k: float(v) for k, v in full.params(theta_free).items()}
        free_res = {"objective": float(obj_free), "params": fp, "converged": bool(conv_free),
                    "fit_params": dict(zip(full.theta_names, map(float, theta_free)))}
        free_theta4 = theta_free[[0, 1, 3, 4]]
        if fp["E"] < E[0] or fp["E"] > E[-1]:
            notes.append(f"the free fit's E = {fmt(fp['E'])} lies outside the profiled range")

    k = len(E)
    objective = np.full(k, np.nan)
    theta = np.full((k, 4), np.nan)
    conv = np.zeros(k, bool)
    prev = None
    n_starts = 0
    residuals_best = None
    for i, e in enumerate(E):
        form = ChinchillaFixedEForm(e)
        obj = HuberLogObjective(form, X, data.loss, delta=delta)
        st = form.start_grid(X, obj.logL) if starts is None else np.atleast_2d(np.asarray(starts, float))
        if st.shape[1] != 4:
            raise LmscaleError(f"starts have {st.shape[1]} columns; expected 4 (a, b, alpha, beta)")
        extra = [t for t in (prev, free_theta4) if t is not None and np.isfinite(t).all()]
        if extra:
            st = np.vstack([st, *extra])
        n_starts = len(st)
        r = fit_multistart(obj, st, do_polish=polish)
        objective[i], theta[i], conv[i] = r.objective, r.theta, r.converged
        if np.isfinite(r.objective):
            prev = np.asarray(r.theta, float)
    if not np.isfinite(objective).any():
        raise LmscaleError(f"{data.source}: the fixed-E objective is not finite at any E; expected losses (nats/token) "
                           "and sizes in plausible ranges")
    params = {name: np.array([float(ChinchillaFixedEForm(e).params(t)[name]) for e, t in zip(E, theta)])
              for name in ("A", "B", "E", "alpha", "beta")}
    alloc = chinchilla_allocation({n: v[:, None] for n, v in params.items()}, C[None, :])
    a = params["beta"] / (params["alpha"] + params["beta"])

    # The LR scale comes from the residuals of the best fit seen (the free fit when it is the best).
    i_best = int(np.nanargmin(objective))
    th_full = ChinchillaFixedEForm(E[i_best]).full_theta(theta[i_best])
    if free_res is not None and free_res["objective"] <= objective[i_best]:
        th_full = np.array([free_res["fit_params"][n] for n in full.theta_names])
    residuals_best = full.log_predict(th_full, X)[0] - np.log(data.loss)
    kappa, method = lr_scale(residuals_best, delta, full.n_params)
    n_clusters = data.n_clusters
    factor = n_clusters / len(data) if cluster_correction else 1.0
    if factor < 1.0:
        notes.append(f"LR statistic scaled by n_runs/n = {n_clusters}/{len(data)} (rows of a run are correlated)")
    if (~conv).any():
        notes.append(f"{int((~conv).sum())} of {k} fixed-E fits did not pass the convergence test")
    return ProfileResult(E=E, objective=objective, theta=theta, params=params, converged=conv, a=a, compute=C,
                         N_opt=alloc["N_opt"], D_opt=alloc["D_opt"], tokens_per_param=alloc["tokens_per_param"],
                         delta=float(delta), n_points=len(data), n_clusters=n_clusters, loss_min=loss_min,
                         kappa=kappa * factor, kappa_method=method, cluster_factor=factor, free=free_res,
                         source=data.source, n_starts=n_starts, notes=notes)


@dataclass
class Identification:
    """Whether E is identified (see `identification`), with the LR interval and the reason."""

    identified: bool
    level: float
    threshold: float
    E_hat: float
    interval: tuple[float, float]
    lower_bounded: bool
    upper_bounded: bool
    interior_minimum: bool
    connected: bool
    message: str

    def __bool__(self) -> bool:
        return self.identified

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"identified": self.identified, "level": self.level, "threshold": self.threshold,
                         "E_hat": self.E_hat, "interval": list(self.interval), "lower_bounded": self.lower_bounded,
                         "upper_bounded": self.upper_bounded, "interior_minimum": self.interior_minimum,
                         "connected": self.connected, "message": self.message})


def _crossing(x0: float, x1: float, y0: float, y1: float, q: float) -> float:
    """Where Lambda crosses q between (x0, y0) and (x1, y1): linear in sqrt(Lambda), which is
    about linear in E near the minimum (Lambda itself is quadratic, and linear interpolation of it
    would put the crossing too close to the minimum)."""
    r0, r1, rq = math.sqrt(y0), math.sqrt(y1), math.sqrt(q)
    if r1 == r0:
        return 0.5 * (x0 + x1)
    return float(x0 + (rq - r0) * (x1 - x0) / (r1 - r0))


def identification(result: ProfileResult, level: float = 0.95) -> Identification:
    """Is E identified by the data? The rule, with its reasons.

    Lambda(E) = 2 kappa (objective(E) - min objective) is the robust likelihood-ratio statistic for
    "the irreducible loss is E" (`lr_scale`); under that hypothesis it is ~ chi2 with 1 degree of
    freedom, so {E : Lambda(E) <= chi2_1(level)} (3.84 at 95%) is a likelihood-ratio confidence
    interval for E. E counts as identified when
      (1) the profile minimum is at an interior grid value (not at the floor or the top of the range), and
      (2) that interval is bounded inside the plausible range: Lambda > threshold at both ends of the grid.
    A flat profile (the data-limited regime: the other parameters absorb any E) fails (2) at the
    floor end, which is when a free fit drifts to E ~ 0; the report then shows the profile instead of E.
    The chi2 calibration assumes independent residuals (see `profile_E`'s cluster_correction).
    """
    if not 0 < level < 1:
        raise LmscaleError(f"level={level!r}; expected a confidence level such as 0.95")
    q = float(chi2.ppf(level, 1))
    E, lam = result.E, result.lr_statistic()
    ok = np.isfinite(lam)
    if len(E) < 3 or ok.sum() < 3:
        return Identification(False, level, q, float("nan"), (float("nan"), float("nan")), False, False, False, False,
                              f"E not judged: {int(ok.sum())} finite profile value(s); expected a grid of 3 or more")
    lam = np.where(ok, lam, np.inf)
    i = int(np.argmin(lam))
    interior = 0 < i < len(E) - 1
    lower_b, upper_b = bool(lam[0] > q), bool(lam[-1] > q)
    E_hat = float(E[i])
    if interior:  # vertex of the parabola through the three grid values around the minimum
        x, y = E[i - 1:i + 2], result.objective[i - 1:i + 2]
        den = (x[0] - x[1]) * (x[0] - x[2]) * (x[1] - x[2])
        A2 = (x[2] * (y[1] - y[0]) + x[1] * (y[0] - y[2]) + x[0] * (y[2] - y[1])) / den
        B2 = (x[2] ** 2 * (y[0] - y[1]) + x[1] ** 2 * (y[2] - y[0]) + x[0] ** 2 * (y[1] - y[2])) / den
        if A2 > 0:
            E_hat = float(np.clip(-B2 / (2 * A2), x[0], x[2]))
    # The free fit is the exact profile value at its own E (Lambda = 0 there when it is the minimum):
    # it joins the grid for the interval, which may otherwise be narrower than the grid spacing,
    # and is the estimate of E when it lies between the grid neighbours of the profile minimum.
    Eg, lg = E, lam
    fr = result.free
    if fr is not None and E[0] < fr["params"]["E"] < E[-1] and np.isfinite(fr["objective"]):
        Ef = fr["params"]["E"]
        lf = max(2.0 * result.kappa * (fr["objective"] - result.reference_objective), 0.0)
        j = int(np.searchsorted(E, Ef))
        Eg, lg = np.insert(E, j, Ef), np.insert(lam, j, lf)
        if interior and E[i - 1] < Ef < E[i + 1] and lf <= lam[i]:
            E_hat = float(Ef)
    idx = np.flatnonzero(lg <= q)
    connected = bool(len(idx) and (np.diff(idx) == 1).all())
    if len(idx):
        lo = Eg[0] if not lower_b else _crossing(Eg[idx[0] - 1], Eg[idx[0]], lg[idx[0] - 1], lg[idx[0]], q)
        hi = Eg[-1] if not upper_b else _crossing(Eg[idx[-1]], Eg[idx[-1] + 1], lg[idx[-1]], lg[idx[-1] + 1], q)
    else:  # narrower than the grid spacing: bounded by the grid neighbours of the minimum
        lo, hi = E[max(i - 1, 0)], E[min(i + 1, len(E) - 1)]
    ident = bool(interior and lower_b and upper_b)
    pct = f"{level:.0%}"
    if ident:
        msg = (f"E is identified: profile minimum at E = {fmt(E_hat)}, {pct} likelihood-ratio interval "
               f"({fmt(lo)}, {fmt(hi)}) nats/token" + ("" if connected else " (hull of a disconnected set)"))
    else:
        why = []
        if not interior:
            why.append(f"the profile minimum is at the {'floor' if i == 0 else 'top'} of the range (E = {fmt(E[i])})")
        if not lower_b:
            why.append(f"the {pct} interval reaches the floor E = {fmt(E[0])}")
        if not upper_b:
            why.append(f"the {pct} interval reaches the top E = {fmt(E[-1])}")
        msg = (f"E is NOT identified by these data: {'; '.join(why)}; any E in ({fmt(lo)}, {fmt(hi)}) nats/token fits "
               "about as well, so report the profile (how a and tokens/param move with E), not a point estimate of E")
    return Identification(ident, level, q, E_hat, (float(lo), float(hi)), lower_b, upper_b, interior, connected, msg)


def identified(result: ProfileResult, level: float = 0.95) -> bool:
    """True when E is identified (`identification`): interior profile minimum and a bounded LR interval."""
    return identification(result, level).identified
