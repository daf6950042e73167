"""Emergence detection: per-curve evidence and a per-task verdict.

For one metric of one task along x (N, C, val_loss or step), `analyze_curve` computes
- BIG-bench breakthroughness B = I(y) / sqrt(median (Δy)^2) and linearity L = I(y) / sqrt(mean (Δy)^2),
  with I(y) = sign(argmax - argmin) (max - min) on the metric oriented so that higher is better
  (both are invariant to affine rescaling, so normalising to chance = 0, perfect = 1 changes nothing).
  A curve linear in log x has B = L (all steps equal); a jump concentrated in few of the steps has
  B >> L. A parametric bootstrap (each point redrawn from its interval, or binomially from
  n_examples) gives intervals for B, L and B/L;
- a 4-parameter logistic in log10 x against the best 2-parameter smooth fit (linear in log10 x, or a
  power law y = a x^b), by ΔAIC = AIC(smooth) - AIC(logistic) (weighted least squares when intervals exist);
- the first scale significantly above chance (interval, or Wilson interval from n_examples, clears chance);
- the onset: the fraction of the total change reached a quarter of the way along log x (a flat start
  is ~0; a linear curve 0.25; diminishing returns more);
- the Schaeffer check for probability-like metrics: -log p against x in log-log (a power law is a
  straight line; R^2), with p = acc^(1/L) for exact match;
- PassUntil's curvature: the quadratic coefficient of log(-log y) in log10 x (negative = accelerating,
  faster than a power law);
- the Du et al. view when validation losses exist: the loss threshold below which the metric is above chance.

A curve is *sharp* when B >= ratio_min L, the bootstrap lower bound of B/L exceeds 1 (smooth, linear
behaviour is excluded), it starts flat (onset <= onset_max, or the smallest scale is at chance; along
training steps, where every model starts at chance, only the onset counts) and ends above chance.
Scale axes are taken in log10 x, training steps linearly.
`verdict` combines the curves of a task: not-yet (the primary, all-or-nothing metric never clears
chance), emergent (sharp under the primary metric and under the continuous ones, or none measured),
emergent-under-this-metric-only (sharp under the primary metric while every continuous metric is
smooth: not sharp, or a clean power law in -log p), or smooth.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from lmscale.emergence.results import DISCONTINUOUS, METRICS, Curve, EvalTable
from lmscale.errors import LmscaleError

MIN_POINTS = 4  # B and L need at least 3 steps to tell a jump from a trend
MIN_POINTS_LOGISTIC = 5  # 4 parameters + at least 1 degree of freedom
Z95 = 1.959963984540054
PRIMARY_ORDER = ("exact_match", "mc_accuracy", "pass_until", "token_accuracy", "brier", "edit_distance", "token_prob",
                 "logprob")
CONTINUOUS = ("token_prob", "logprob", "edit_distance", "brier", "token_accuracy")
# Metrics bounded in [0, 1] whose best value is 1 (higher is better) or 0 (lower is better).
BOUNDED = ("exact_match", "token_accuracy", "edit_distance", "token_prob", "mc_accuracy", "brier", "pass_until")
VERDICTS = ("smooth", "emergent", "emergent-under-this-metric-only", "not-yet")


def oriented(y: np.ndarray, higher_is_better: bool) -> np.ndarray:
    return np.asarray(y, float) if higher_is_better else -np.asarray(y, float)


def breakthroughness_linearity(y: Sequence[float]) -> tuple[float, float]:
    """(B, L) of BIG-bench (Srivastava et al. 2022, App. B) for values sorted by scale, higher = better."""
    y = np.asarray(y, float)
    if len(y) < 2:
        return math.nan, math.nan
    i_y = math.copysign(1.0, int(np.argmax(y)) - int(np.argmin(y))) * float(y.max() - y.min())
    d2 = np.diff(y) ** 2
    med, mean = float(np.median(d2)), float(np.mean(d2))
    # A flat stretch makes the median step exactly 0: breakthroughness is then unbounded.
    b = i_y / math.sqrt(med) if med > 0 else (math.copysign(math.inf, i_y) if i_y else math.nan)
    lin = i_y / math.sqrt(mean) if mean > 0 else math.nan
    return b, lin


def _sd(curve: Curve) -> np.ndarray:
    """Standard error of each point: from its interval, else binomial from n_examples, else 0."""
    sd = (curve.high - curve.low) / (2 * Z95)
    sd = np.where(np.isfinite(sd), sd, 0.0)
    if curve.metric in BOUNDED:
        n = curve.n.astype(float)
        binom = np.sqrt(np.clip(curve.y * (1 - curve.y), 0, None) / np.where(n > 0, n, np.inf))
        sd = np.where((sd == 0) & (n > 0), binom, sd)
    return sd


def _redraw(curve: Curve, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """(n_boot, points) resampled metric values: binomial where the point is a proportion with
    n_examples and no interval, else normal with the interval's standard error."""
    y = np.broadcast_to(curve.y, (n_boot, len(curve.y))).copy()
    has_ci = np.isfinite(curve.high - curve.low) & (curve.high > curve.low)
    sd = _sd(curve)
    binom = (~has_ci) & (curve.n > 0) & (curve.metric in BOUNDED)
    for j in np.flatnonzero(binom):
        p = float(np.clip(curve.y[j], 0, 1))
        y[:, j] = rng.binomial(int(curve.n[j]), p, size=n_boot) / curve.n[j]
    normal = ~binom & (sd > 0)
    y[:, normal] += rng.standard_normal((n_boot, int(normal.sum()))) * sd[normal]
    return y


def above_chance(curve: Curve, tol: float = 0.01) -> np.ndarray:
    """Per point: significantly better than chance. With an interval (or n_examples, Wilson) its
    bound must clear chance; without either, the value must beat chance by `tol` of the chance-to-
    perfect range (bounded metrics) or at all (others). Unknown chance: treated as 0 for bounded
    higher-is-better metrics, else every point counts as above."""
    chance = curve.chance
    hib = curve.higher_is_better
    if not math.isfinite(chance):
        if curve.metric in BOUNDED and hib:
            chance = 0.0
        else:
            return np.ones(len(curve.y), bool)
    low, high = curve.low.copy(), curve.high.copy()
    need = ~(np.isfinite(low) & np.isfinite(high)) & (curve.n > 0) & (curve.metric in BOUNDED)
    if need.any():
        from lmscale.emergence.synthetic import wilson_interval

        k = np.clip(curve.y[need], 0, 1) * curve.n[need]
        low[need], high[need] = wilson_interval(k, curve.n[need])
    bound = low if hib else high
    has = np.isfinite(bound)
    best = 1.0 if hib else 0.0
    margin = tol * abs(best - chance) if curve.metric in BOUNDED else 0.0
    point = curve.y > chance + margin if hib else curve.y < chance - margin
    sig = bound > chance if hib else bound < chance
    return np.where(has, sig, point)


def _aic(rss: float, n: int, k: int) -> float:
    # Gaussian least-squares AIC; the floor keeps an exact fit from giving -inf.
    return n * math.log(max(rss / n, 1e-300)) + 2 * k


def _logistic(p: np.ndarray, lx: np.ndarray) -> np.ndarray:
    lo, hi, x0, log_w = p
    return lo + (hi - lo) / (1 + np.exp(-(lx - x0) / np.exp(log_w)))


def fit_logistic(lx: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """Weighted least-squares 4-parameter logistic in log10 x: (lo, hi, x0, log width); returns (params, rss).
    Fitted on y rescaled to [0, 1] with an analytic Jacobian, from several starting midpoints (the
    objective has local minima at the ends of the range)."""
    from scipy.optimize import least_squares

    y0, scale = float(y.min()), float(np.ptp(y)) or 1.0
    yn = (y - y0) / scale

    def res(p):
        return w * (_logistic(p, lx) - yn)

    def jac(p):
        lo, hi, x0, log_w = p
        wd = math.exp(log_w)
        s = 1 / (1 + np.exp(-(lx - x0) / wd))
        ds = s * (1 - s) / wd
        return w[:, None] * np.stack([1 - s, s, -(hi - lo) * ds, -(hi - lo) * ds * (lx - x0)], 1)

    best = None
    span = max(float(lx.max() - lx.min()), 1e-9)
    for x0 in np.linspace(lx.min(), lx.max(), 4)[1:-1].tolist() + [float(lx[np.argmax(np.diff(yn))])]:
        for wd in (span / 20, span / 5):
            p0 = np.array([0.0, 1.0, x0, math.log(wd)])
            with np.errstate(over="ignore"):
                try:
                    r = least_squares(res, p0, jac=jac, method="lm", max_nfev=400)
                except (ValueError, np.linalg.LinAlgError):
                    continue
            rss = float(np.sum(r.fun ** 2))
            if np.all(np.isfinite(r.x)) and (best is None or rss < best[1]):
                best = (r.x, rss)
    if best is None:
        return np.full(4, math.nan), math.inf
    p = best[0].copy()
    p[0], p[1] = y0 + scale * p[0], y0 + scale * p[1]
    return p, best[1] * scale * scale


def fit_smooth(lx: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[str, np.ndarray, float]:
    """Best 2-parameter smooth alternative: linear in log10 x, or y = a x^b (positive y); (name, params, rss)."""
    A = np.stack([np.ones_like(lx), lx], 1)
    coef, *_ = np.linalg.lstsq(A * w[:, None], y * w, rcond=None)
    out = [("linear", coef, float(np.sum((w * (A @ coef - y)) ** 2)))]
    if np.all(y > 0):
        from scipy.optimize import least_squares

        c0, *_ = np.linalg.lstsq(A, np.log10(y), rcond=None)
        r = least_squares(lambda p: w * (10 ** (p[0] + p[1] * lx) - y), c0, method="lm", max_nfev=2000)
        if np.all(np.isfinite(r.x)):
            out.append(("power", r.x, float(np.sum(r.fun ** 2))))
    return min(out, key=lambda t: t[2])


def _onset(lx: np.ndarray, y: np.ndarray) -> float:
    """Fraction of the total change (first to last point) reached a quarter of the way along log x."""
    total = y[-1] - y[0]
    if not total:
        return math.nan
    xq = lx[0] + 0.25 * (lx[-1] - lx[0])
    return float((np.interp(xq, lx, y) - y[0]) / total)


def _loglog_fit(lx: np.ndarray, v: np.ndarray) -> tuple[float, float, float]:
    """Least squares of log10 v on lx: (slope, intercept, R^2) over points with finite positive v."""
    ok = np.isfinite(v) & (v > 0)
    if ok.sum() < 3:
        return math.nan, math.nan, math.nan
    a, b = lx[ok], np.log10(v[ok])
    slope, icpt = np.polyfit(a, b, 1)
    ss = float(np.sum((b - b.mean()) ** 2))
    r2 = 1 - float(np.sum((b - (slope * a + icpt)) ** 2)) / ss if ss > 0 else math.nan
    return float(slope), float(icpt), r2


def per_token_probability(curve: Curve) -> np.ndarray:
    """p per point for the Schaeffer check: acc^(1/L) for exact match / pass_until, the value for
    token_prob and token_accuracy, exp(logprob / L) for logprob, 1 - d for edit distance; NaN otherwise."""
    y, L = curve.y, curve.answer_tokens
    with np.errstate(invalid="ignore", divide="ignore"):
        if curve.metric in ("exact_match", "pass_until"):
            return np.where(y > 0, y ** (1 / L), math.nan) if L > 0 else np.full(len(y), math.nan)
        if curve.metric in ("token_prob", "token_accuracy"):
            return y.astype(float)
        if curve.metric == "logprob":
            return np.exp(y / L) if L > 0 else np.full(len(y), math.nan)
        if curve.metric == "edit_distance":
            return 1 - y
    return np.full(len(y), math.nan)


@dataclass
class CurveResult:
    """The evidence for one metric of one task along one axis."""

    task: str
    metric: str
    x_name: str
    n_points: int
    x: list[float]
    y: list[float]
    chance: float
    breakthroughness: float = math.nan
    linearity: float = math.nan
    ratio: float = math.nan  # B / L
    breakthroughness_ci: tuple[float, float] = (math.nan, math.nan)
    linearity_ci: tuple[float, float] = (math.nan, math.nan)
    ratio_ci: tuple[float, float] = (math.nan, math.nan)
    interval: str = "none"  # how the bootstrap redrew points: 'none' (no noise known), 'intervals'
    delta_aic: float = math.nan  # AIC(best smooth) - AIC(logistic); > 0 favours the logistic
    smooth_form: str = ""
    logistic: dict[str, float] = field(default_factory=dict)
    onset: float = math.nan
    first_above_chance: float | None = None
    above_chance_start: bool = False
    above_chance_end: bool = False
    power_law_alpha: float = math.nan  # slope of log10(-log p) in log10 x
    power_law_r2: float = math.nan
    curvature: float = math.nan  # quadratic coefficient of log10(-log y) in log10 x
    loss_threshold: float | None = None  # Du et al.: largest val_loss at which the metric is above chance
    sharp: bool = False
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        from lmscale.laws.tables import jsonable

        return jsonable(asdict(self))


def analyze_curve(curve: Curve, n_boot: int = 1000, seed: int = 0, ratio_min: float = 1.5, onset_max: float = 0.1,
                  confidence: float = 0.95, loss_curve: Curve | None = None) -> CurveResult:
    """All evidence for one curve (see the module docstring). `loss_curve`: the same metric along
    val_loss (for the loss threshold), if losses exist."""
    n = len(curve.x)
    if n < MIN_POINTS:
        raise LmscaleError(f"task {curve.task!r} metric {curve.metric!r} has {n} scale(s); emergence detection "
                           f"needs at least {MIN_POINTS}")
    # val_loss falls as models grow: order from worst to best model so "later" means "bigger".
    order = np.argsort(-curve.x) if curve.x_name == "val_loss" else np.arange(n)
    x, y = curve.x[order], curve.y[order]
    curve = Curve(x=x, y=y, low=curve.low[order], high=curve.high[order], n=curve.n[order], chance=curve.chance,
                  task=curve.task, metric=curve.metric, x_name=curve.x_name, k_shot=curve.k_shot,
                  answer_tokens=curve.answer_tokens, higher_is_better=curve.higher_is_better)
    # Scale axes are compared in log10 x; training steps linearly (phase changes are abrupt in
    # steps); loss is already a log-scale quantity, sign-flipped so that larger = better model.
    lx = np.log10(x) if np.all(x > 0) and curve.x_name != "step" else x.astype(float)
    if curve.x_name == "val_loss":
        lx = -x
    yo = oriented(y, curve.higher_is_better)
    res = CurveResult(task=curve.task, metric=curve.metric, x_name=curve.x_name, n_points=n, x=list(map(float, x)),
                      y=list(map(float, y)), chance=float(curve.chance))
    b, lin = breakthroughness_linearity(yo)
    res.breakthroughness, res.linearity = b, lin
    res.ratio = b / lin if lin and math.isfinite(lin) and lin != 0 else math.nan

    # Bootstrap: redraw every point from its own uncertainty.
    sd = _sd(curve)
    alpha = (1 - confidence) / 2
    if np.any(sd > 0) and n_boot > 1:
        rng = np.random.default_rng(seed)
        ys = oriented(_redraw(curve, rng, n_boot), curve.higher_is_better)
        bl = np.array([breakthroughness_linearity(r) for r in ys])
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios = bl[:, 0] / bl[:, 1]

        def q(v: np.ndarray) -> tuple[float, float]:
            v = np.sort(v[~np.isnan(v)])  # +inf (a flat curve with one jump) sorts last, as it should
            if not len(v):
                return (math.nan, math.nan)
            lo, hi = (v[min(len(v) - 1, int(math.floor(f * (len(v) - 1) + 0.5)))] for f in (alpha, 1 - alpha))
            return float(lo), float(hi)

        res.breakthroughness_ci, res.linearity_ci, res.ratio_ci = q(bl[:, 0]), q(bl[:, 1]), q(ratios)
        res.interval = "intervals"
    else:
        res.breakthroughness_ci, res.linearity_ci, res.ratio_ci = (b, b), (lin, lin), (res.ratio, res.ratio)

    # Logistic vs smooth fits, weighted by 1/sd where known (floored so no point dominates).
    pos = sd[sd > 0]
    w = 1 / np.maximum(sd, (np.median(pos) if len(pos) else 1.0) * 0.1) if len(pos) else np.ones(n)
    if n >= MIN_POINTS_LOGISTIC:
        p_log, rss_log = fit_logistic(lx, yo, w)
        name, _, rss_s = fit_smooth(lx, yo, w)
        res.delta_aic = _aic(rss_s, n, 2) - _aic(rss_log, n, 4)
        res.smooth_form = name
        lo_, hi_, x0, log_w = p_log
        sgn = -1 if curve.x_name == "val_loss" else 1
        res.logistic = {"low": float(lo_) if curve.higher_is_better else -float(lo_),
                        "high": float(hi_) if curve.higher_is_better else -float(hi_),
                        "midpoint": float(10 ** x0) if curve.x_name not in ("val_loss", "step") else float(sgn * x0),
                        # 10%-90% rise in units of lx: decades of x, steps, or nats/token
                        "width_10_90": float(2 * math.log(9) * math.exp(log_w)) if np.isfinite(log_w) else math.nan}
    res.onset = _onset(lx, yo)
    above = above_chance(curve)
    res.above_chance_start, res.above_chance_end = bool(above[0]), bool(above[-1])
    hits = np.flatnonzero(above)
    res.first_above_chance = float(x[hits[0]]) if len(hits) else None

    # Schaeffer: -log p against x should be a straight line in log-log if the per-token scaling is smooth.
    p = per_token_probability(curve)
    with np.errstate(invalid="ignore", divide="ignore"):
        res.power_law_alpha, _, res.power_law_r2 = _loglog_fit(lx, -np.log(p))
        # PassUntil: F = log(-log y) for proportions strictly inside (0, 1).
        if curve.metric in BOUNDED and curve.higher_is_better:
            ok = (y > 0) & (y < 1)
            if ok.sum() >= 3:
                res.curvature = float(np.polyfit(lx[ok], np.log10(-np.log(y[ok])), 2)[0])
    if loss_curve is not None and len(loss_curve.x):
        ab = above_chance(loss_curve)
        res.loss_threshold = float(loss_curve.x[ab].max()) if ab.any() else None

    # Along training steps every model starts at chance, so only the onset can show a plateau.
    at_chance_start = not res.above_chance_start and curve.x_name != "step"
    flat_start = at_chance_start or (math.isfinite(res.onset) and res.onset <= onset_max)
    big = bool(res.ratio >= ratio_min)  # NaN compares False; inf (a flat curve with one jump) True
    excl = res.ratio_ci[0] > 1 if math.isfinite(res.ratio_ci[0]) else big
    res.sharp = bool(big and excl and flat_start and res.above_chance_end)
    why = [f"B/L = {res.ratio:.2f}" + (f" ({confidence:.0%} CI {res.ratio_ci[0]:.2f}-{res.ratio_ci[1]:.2f})"
                                        if res.interval != "none" else ""),
           f"onset {res.onset:.2f}", "flat start" if flat_start else "no flat start",
           "above chance at the largest scale" if res.above_chance_end else "never above chance"]
    res.reason = ", ".join(why)
    return res


@dataclass
class TaskVerdict:
    """The verdict for one task (at one k_shot) with the per-metric evidence behind it."""

    task: str
    k_shot: int
    x_name: str
    verdict: str
    primary_metric: str
    explanation: str
    curves: dict[str, CurveResult]

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "k_shot": self.k_shot, "x_name": self.x_name, "verdict": self.verdict,
                "primary_metric": self.primary_metric, "explanation": self.explanation,
                "curves": {k: v.to_dict() for k, v in self.curves.items()}}

    def summary_row(self) -> dict[str, Any]:
        """Flat numbers of the primary curve, for the verdicts CSV and table."""
        c = self.curves[self.primary_metric]
        cont = [m for m in CONTINUOUS if m in self.curves and m != self.primary_metric]
        r2 = max((self.curves[m].power_law_r2 for m in cont if math.isfinite(self.curves[m].power_law_r2)),
                 default=math.nan)
        return {"task": self.task, "k_shot": self.k_shot, "x": self.x_name, "verdict": self.verdict,
                "metric": self.primary_metric, "B": c.breakthroughness, "L": c.linearity, "B_over_L": c.ratio,
                "B_over_L_low": c.ratio_ci[0] if c.interval != "none" else None,
                "B_over_L_high": c.ratio_ci[1] if c.interval != "none" else None, "delta_aic": c.delta_aic,
                "onset": c.onset, "first_above_chance": c.first_above_chance,
                "per_token_power_law_r2": r2, "curvature": c.curvature, "loss_threshold": c.loss_threshold,
                "continuous_sharp": ",".join(m for m in cont if self.curves[m].sharp)}


def _continuous_smooth(r: CurveResult, r2_min: float) -> bool:
    return (not r.sharp) or (math.isfinite(r.power_law_r2) and r.power_law_r2 >= r2_min)


def verdict(results: dict[str, CurveResult], k_shot: int = 0, r2_min: float = 0.98) -> TaskVerdict:
    """Combine the per-metric evidence of one task into a verdict (see the module docstring)."""
    if not results:
        raise LmscaleError("no metric curves to judge; expected at least one")
    any_r = next(iter(results.values()))
    primary = next((m for m in PRIMARY_ORDER if m in results), next(iter(results)))
    pr = results[primary]
    cont = [m for m in CONTINUOUS if m in results and m != primary]
    if not pr.above_chance_end:
        v, why = "not-yet", f"{primary} is not above chance ({fmt_num(pr.chance)}) at the largest scale"
    elif not pr.sharp:
        v, why = "smooth", f"{primary} is not sharp: {pr.reason}"
    elif cont and all(_continuous_smooth(results[m], r2_min) for m in cont):
        smooth_desc = "; ".join(f"{m}: " + ("not sharp" if not results[m].sharp else
                                           f"-log p power law R^2 {results[m].power_law_r2:.3f}") for m in cont)
        v, why = "emergent-under-this-metric-only", f"{primary} is sharp ({pr.reason}) but {smooth_desc}"
    else:
        sharp_c = [m for m in cont if not _continuous_smooth(results[m], r2_min)]
        v = "emergent"
        why = f"{primary} is sharp ({pr.reason})" + (f" and so are {', '.join(sharp_c)}" if sharp_c else
                                                      "; no continuous metric measured")
    return TaskVerdict(task=any_r.task, k_shot=k_shot, x_name=any_r.x_name, verdict=v, primary_metric=primary,
                       explanation=why, curves=results)


def fmt_num(x: float) -> str:
    from lmscale.laws.tables import fmt

    return fmt(x, 3)


def analyze_table(table: EvalTable, x: str = "N", n_boot: int = 1000, seed: int = 0, ratio_min: float = 1.5,
                  onset_max: float = 0.1, r2_min: float = 0.98, family: str | None = None,
                  skipped: list[str] | None = None) -> list[TaskVerdict]:
    """A verdict per (task, k_shot) of the table along `x`. Metrics and tasks with too few scales are
    skipped (a note is appended to `skipped` when given); if no task has enough, LmscaleError says
    how many are needed."""
    out: list[TaskVerdict] = []
    notes: list[str] = []
    has_loss = np.isfinite(table.column("val_loss")).any() and x != "val_loss"
    for task in table.tasks():
        for k in table.k_shots(task):
            results: dict[str, CurveResult] = {}
            sizes = []
            for m in table.metrics(task):
                try:
                    c = table.curve(task, m, x=x, k_shot=k, family=family)
                except LmscaleError:
                    continue
                sizes.append(len(c))
                if len(c) < MIN_POINTS:
                    continue
                lc = None
                if has_loss:
                    try:
                        lc = table.curve(task, m, x="val_loss", k_shot=k, family=family)
                    except LmscaleError:
                        lc = None
                results[m] = analyze_curve(c, n_boot=n_boot, seed=seed, ratio_min=ratio_min, onset_max=onset_max,
                                           loss_curve=lc)
            if not results:
                notes.append(f"task {task!r} (k_shot={k}) has {max(sizes, default=0)} scale(s) along {x}; "
                             f"emergence detection needs at least {MIN_POINTS}")
                continue
            out.append(verdict(results, k_shot=k, r2_min=r2_min))
    if not out:
        raise LmscaleError(notes[0] if len(notes) == 1 else f"{notes[0]} (and {len(notes) - 1} more task(s) like it)")
    if skipped is not None:
        skipped.extend(notes)
    return out


__all__ = ["breakthroughness_linearity", "above_chance", "analyze_curve", "analyze_table", "verdict", "CurveResult",
           "TaskVerdict", "fit_logistic", "fit_smooth", "per_token_probability", "MIN_POINTS", "MIN_POINTS_LOGISTIC",
           "VERDICTS", "METRICS", "DISCONTINUOUS"]
