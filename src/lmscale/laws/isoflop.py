"""Chinchilla Approach 2: IsoFLOP profiles.

Final losses are grouped by compute budget (the `budget` column of an IsoFLOP sweep, else C values
within a relative tolerance, so that nearly equal FLOP counts of different shapes form one
budget). Per budget a parabola of loss against ln N is fitted; its vertex is N_opt and
D_opt = C/(6 N_opt). Power laws N_opt = k_N C^a and D_opt = k_D C^b are then fitted by OLS in
log space over the budgets.

Known biases (Open-Athena's analysis): the parabola is only an approximation of the iso-compute
loss curve, so the vertex is biased when alpha != beta or when the sampled sizes are off-centre or
span too wide a range. Every budget whose vertex lies outside its sampled N range, or whose
parabola opens downward (no minimum), gets a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lmscale.errors import LmscaleError
from lmscale.laws.bootstrap import BootstrapResult, cluster_weights
from lmscale.laws.data import ScalingData
from lmscale.laws.extrapolation import group_budgets
from lmscale.laws.tables import allocation_lines, fmt, format_table, jsonable


@dataclass
class BudgetFit:
    """One IsoFLOP profile: its budget C (FLOPs, geometric mean of the group), sampled N range, vertex."""

    C: float
    n_points: int
    N_min: float
    N_max: float
    curvature: float  # d2 loss / d (ln N)^2 / 2; must be > 0 for a minimum
    N_opt: float
    D_opt: float
    loss_opt: float
    used: bool
    warning: str | None = None


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


def _fit_budgets(N, C, loss, ids, weights, min_points, drop_outside, max_spread=None) -> list[BudgetFit]:
    out = []
    for g in np.unique(ids):
        m = (ids == g) & (weights > 0)
        if not m.any():
            continue
        Ng, Lg, wg = N[m], loss[m], weights[m]
        Cg = float(np.exp(np.average(np.log(C[ids == g]))))
        x = np.log(Ng)
        nd = len(np.unique(x))
        base = dict(C=Cg, n_points=int(m.sum()), N_min=float(Ng.min()), N_max=float(Ng.max()))
        spread = float(C[ids == g].max() / C[ids == g].min())
        if max_spread is not None and spread > max_spread:
            # Grouping by C chains values that are each within rtol of the next, so data with no
            # shared budgets (a random N x D scatter) form groups spanning a wide range of compute,
            # whose "parabolas" would give a meaningless exponent.
            out.append(BudgetFit(**base, curvature=float("nan"), N_opt=float("nan"), D_opt=float("nan"),
                                 loss_opt=float("nan"), used=False,
                                 warning=f"budget {fmt(Cg)} FLOPs: C ranges over {spread:.3g}x ({fmt(C[ids == g].min())} to "
                                         f"{fmt(C[ids == g].max())}); not one compute budget, skipped"))
            continue
        if nd < min_points:
            out.append(BudgetFit(**base, curvature=float("nan"), N_opt=float("nan"), D_opt=float("nan"),
                                 loss_opt=float("nan"), used=False,
                                 warning=f"budget {fmt(Cg)} FLOPs: {nd} distinct model size(s); a parabola needs {min_points}"))
            continue
        xm = np.average(x, weights=wg)
        c2, c1, c0 = np.polyfit(x - xm, Lg, 2, w=np.sqrt(wg))
        if not c2 > 0:
            out.append(BudgetFit(**base, curvature=float(c2), N_opt=float("nan"), D_opt=float("nan"),
                                 loss_opt=float("nan"), used=False,
                                 warning=f"budget {fmt(Cg)} FLOPs: the parabola opens downward (curvature {c2:.3g}); "
                                         "no minimum, budget skipped"))
            continue
        xv = xm - c1 / (2 * c2)
        Nopt = float(np.exp(xv))
        warn = None
        used = True
        if not (x.min() <= xv <= x.max()):
            warn = (f"budget {fmt(Cg)} FLOPs: vertex N_opt = {fmt(Nopt)} lies outside the sampled range "
                    f"[{fmt(Ng.min())}, {fmt(Ng.max())}]; extrapolated optimum"
                    + ("; budget skipped" if drop_outside else "; sample sizes around it"))
            used = not drop_outside
        out.append(BudgetFit(**base, curvature=float(c2), N_opt=Nopt, D_opt=Cg / (6 * Nopt),
                             loss_opt=float(c0 - c1 * c1 / (4 * c2)), used=used, warning=warn))
    return out


def _why_unused(budgets: list[BudgetFit], min_points: int) -> str:
    """What kept budgets out, counted: e.g. '30 with fewer than 3 model sizes, 2 spanning a range of C'."""
    counts = {"spanning a range of C": 0, f"with fewer than {min_points} model sizes": 0, "without a minimum": 0,
              "with the vertex outside the sizes": 0}
    for b in budgets:
        if b.used or not b.warning:
            continue
        key = ("spanning a range of C" if "not one compute budget" in b.warning else
               f"with fewer than {min_points} model sizes" if "distinct model size" in b.warning else
               "without a minimum" if "opens downward" in b.warning else "with the vertex outside the sizes")
        counts[key] += 1
    return ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "none found"


class IsoFLOPAllocation:
    """Approach 2 estimator. Fitted: a_, b_ (N_opt ~ C^a, D_opt ~ C^b), N_coef_, D_coef_, a_se_, b_se_,
    budgets_ (list of BudgetFit), warnings_ (list of str), n_budgets_used_.

    budget_rtol: C values within this relative distance form one budget (ignored with a budget column).
    min_points: distinct model sizes a budget needs (3 for a parabola).
    drop_outside: skip budgets whose vertex lies outside the sampled sizes (default: keep, warn).
    """

    def __init__(self, budget_rtol: float = 0.1, min_points: int = 3, drop_outside: bool = False,
                 target_compute: float | None = None):
        if min_points < 3:
            raise LmscaleError(f"min_points={min_points}; a parabola needs at least 3 model sizes per budget")
        self.budget_rtol, self.min_points, self.drop_outside = budget_rtol, min_points, drop_outside
        self.target_compute = target_compute

    def _max_spread(self, data: ScalingData) -> float | None:
        """Largest max/min ratio of C within a budget found by grouping C values (none with a budget column)."""
        if data.budget is not None and np.isfinite(data.budget).all():
            return None
        return (1 + self.budget_rtol) ** 2

    def _solve(self, data: ScalingData, ids: np.ndarray, weights: np.ndarray):
        budgets = _fit_budgets(data.N, data.C, data.loss, ids, weights, self.min_points, self.drop_outside,
                               self._max_spread(data))
        used = [b for b in budgets if b.used]
        C = np.array([b.C for b in used])
        a, kN, a_se = fit_power_law(C, np.array([b.N_opt for b in used])) if len(used) >= 2 else (np.nan,) * 3
        b, kD, b_se = fit_power_law(C, np.array([b.D_opt for b in used])) if len(used) >= 2 else (np.nan,) * 3
        return budgets, a, kN, a_se, b, kD, b_se

    def fit(self, data: ScalingData) -> "IsoFLOPAllocation":
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
        on_budgets = sum(x.n_points for x in used)
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
        self.target_compute_ = self.target_compute or float(10 * data.C.max())
        self.bootstrap_: BootstrapResult | None = None
        return self

    def predict(self, C) -> dict[str, np.ndarray]:
        """N_opt (params), D_opt (tokens) and tokens/param at compute C (FLOPs) from the fitted power laws."""
        C = np.asarray(C, float)
        N, D = self.N_coef_ * C ** self.a_, self.D_coef_ * C ** self.b_
        return {"N_opt": N, "D_opt": D, "tokens_per_param": D / N}

    def _quantities(self, a, kN, b, kD, C) -> dict[str, float]:
        N, D = kN * C ** a, kD * C ** b
        return {"a": a, "b": b, "N_opt": N, "D_opt": D, "tokens_per_param": D / N}

    def bootstrap(self, n_resamples: int = 1000, seed: int | None = 0, confidence: float = 0.95,
                  target_compute: float | None = None) -> BootstrapResult:
        """Cluster bootstrap over runs: refit every budget's parabola and the power laws per resample."""
        data = self.data_
        tc = target_compute or self.target_compute_
        W = cluster_weights(data.clusters(), n_resamples, np.random.default_rng(seed))
        keys = ("a", "b", "N_opt", "D_opt", "tokens_per_param")
        samples = {k: np.full(n_resamples, np.nan) for k in keys}
        for r in range(n_resamples):
            _, a, kN, _, b, kD, _ = self._solve(data, self.budget_ids_, W[r])
            for k, v in self._quantities(a, kN, b, kD, tc).items():
                samples[k][r] = v
        conv = np.isfinite(samples["a"]) & np.isfinite(samples["b"])
        point = self._quantities(self.a_, self.N_coef_, self.b_, self.D_coef_, tc)
        self.bootstrap_ = BootstrapResult(law="approach 2 (IsoFLOP)", n_resamples=n_resamples, n_converged=int(conv.sum()),
                                          confidence=confidence, seed=seed, n_clusters=data.n_clusters, point=point,
                                          samples=samples, converged=conv, target_compute=tc)
        return self.bootstrap_

    def to_dict(self) -> dict[str, Any]:
        return jsonable({
            "approach": 2, "method": "IsoFLOP parabolas of loss vs ln N per budget; OLS power laws over budgets",
            "data": {"source": self.data_.source, "n_points": len(self.data_)},
            "a": self.a_, "b": self.b_, "a_se": self.a_se_, "b_se": self.b_se_, "N_coef": self.N_coef_, "D_coef": self.D_coef_,
            "formula": "N_opt = N_coef * C^a, D_opt = D_coef * C^b (C in FLOPs)",
            "target_compute": self.target_compute_, "at_target": self.predict(self.target_compute_),
            "budgets": [vars(b) for b in self.budgets_], "warnings": self.warnings_,
            "bootstrap": self.bootstrap_.to_dict() if self.bootstrap_ is not None else None,
        })

    def summary(self) -> str:
        rows = [[fmt(b.C), b.n_points, f"[{fmt(b.N_min)}, {fmt(b.N_max)}]", fmt(b.N_opt), fmt(b.D_opt), fmt(b.loss_opt),
                 "yes" if b.used else "no"] for b in self.budgets_]
        t = format_table(["budget C (FLOPs)", "points", "N range", "N_opt", "D_opt", "loss at vertex", "used"], rows,
                         title=f"Approach 2 (IsoFLOP): {self.n_budgets_used_} of {len(self.budgets_)} budgets used")
        lines = [t, *allocation_lines(self, with_se=True)]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()
