"""The theory's predictions beside a user's fitted scaling law and measured per-task curves.

`theory_overlay(fit_or_law, out_dir)` takes a fitted joint law (a `ChinchillaLaw` object), a
fit.json written by `lmscale fit --out` or `lmscale demo`, a sweep directory or a CSV (fitted
here with the Chinchilla law), and puts the Nayak–Varshney compute-optimal allocation beside the
law's compute-optimal frontier over the user's compute range.

The free constants are fitted to the user's law. With rho = params_per_concept / tokens_per_text
(varsigma/tau) and P = varsigma tau, the theory gives

    N*(C) = sqrt(rho) r(C_m) sqrt(C/6),  C_m = C / (6 P) (model units),  r = R*/sqrt(C_m),
    D*(C) = C / (6 N*),  tokens/param = kappa(C_m) / rho,  kappa = T*/R*.

So rho sets the level of N*(C) and is identified (closed-form least squares in log N for each P);
P only moves the user's budgets along the slowly varying r(C_m), so it is chosen by a profile over
log P, kept where both constants are >= 1 (parameters per concept, tokens per text), and is weakly
identified whenever r is nearly constant there (reported). The bootstrap
interval of the law's N_opt at its target compute, when the fit has one, gives an interval for rho
(N* scales as sqrt(rho); P held at its estimate) and hence for varsigma and tau.

Per-task accuracy curves (a CSV with columns N, task, accuracy, or `lmscale eval`'s eval.csv) are overlaid with the theory's
emergence shape: accuracy = low + (high - low) gamma(c)^n with the skill graph's mean degree
c = exp((ln N - loc)/scale), gamma the Erdős–Rényi giant fraction and n in 2..7 skills per task
(loc: ln N at which c = 1, where the giant component appears).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lmscale.errors import LmscaleError

THEORY_C_MODEL = np.logspace(3.5, 20.0, 120)
TASK_COLUMNS = {"N": ("N", "params", "n_params", "parameters", "model_size"), "task": ("task", "name", "subtask"),
                "accuracy": ("accuracy", "acc", "score", "value")}


@dataclass
class LawFrontier:
    """A fitted law's compute-optimal allocation, as the overlay needs it."""

    name: str
    source: str
    allocation: Callable[[np.ndarray], dict[str, np.ndarray]]  # C (FLOPs) -> N_opt, D_opt
    C_range: tuple[float, float]
    target_compute: float | None = None
    N_opt_interval: tuple[float, float] | None = None  # at target_compute
    confidence: float | None = None
    a: float | None = None
    a_interval: tuple[float, float] | None = None
    band: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray] | None] | None = None  # C -> (N low, N high)
    notes: list[str] = field(default_factory=list)


@dataclass
class TaskFit:
    """The theory's emergence shape fitted to one task's accuracy curve."""

    task: str
    n_points: int
    n_skills: int
    loc: float
    scale: float
    low: float
    high: float
    N_onset: float  # parameters where the skill graph's giant component appears (c = 1)
    N_half: float  # parameters at half the rise
    rms: float
    N: np.ndarray = field(repr=False)
    accuracy: np.ndarray = field(repr=False)

    def predict(self, N) -> np.ndarray:
        return emergence_shape(N, self.loc, self.scale, self.low, self.high, self.n_skills)

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "n_points": self.n_points, "n_skills": self.n_skills, "loc_lnN": self.loc,
                "scale_lnN": self.scale, "low": self.low, "high": self.high, "N_onset_parameters": self.N_onset,
                "N_half_parameters": self.N_half, "rms_residual": self.rms}


@dataclass
class OverlayResult:
    """Fitted constants, the curves compared, and the files written."""

    source: str
    law: str
    C_range: tuple[float, float]
    params_per_concept: float
    tokens_per_text: float
    ratio: float  # params_per_concept / tokens_per_text
    product: float  # params_per_concept * tokens_per_text
    product_identified: bool
    rms_log_N: float  # rms of ln(theory N*) - ln(law N_opt) over the compute range
    law_a: float
    theory_a: float
    tokens_per_param_law: float
    tokens_per_param_theory: float
    C_reference: float  # FLOPs at which tokens/param are compared (largest compute in the data)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    confidence: float | None = None
    notes: list[str] = field(default_factory=list)
    tasks: list[TaskFit] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from lmscale.laws.tables import jsonable

        return jsonable({
            "source": self.source, "law": self.law, "compute_range_flops": list(self.C_range),
            "fitted": {"params_per_concept": self.params_per_concept, "tokens_per_text": self.tokens_per_text,
                       "ratio_params_per_concept_over_tokens_per_text": self.ratio,
                       "product_params_per_concept_times_tokens_per_text": self.product,
                       "product_identified": self.product_identified},
            "intervals": {k: list(v) for k, v in self.intervals.items()}, "confidence": self.confidence,
            "rms_log_N": self.rms_log_N, "law_exponent_a": self.law_a, "theory_exponent_a": self.theory_a,
            "C_reference_flops": self.C_reference, "tokens_per_param_law": self.tokens_per_param_law,
            "tokens_per_param_theory": self.tokens_per_param_theory, "notes": self.notes,
            "tasks": [t.to_dict() for t in self.tasks], "files": [str(f) for f in self.files],
        })

    def rows(self) -> list[tuple[str, str, str]]:
        """(quantity, value, interval) rows for a table."""
        from lmscale.laws.tables import fmt, fmt_interval

        def iv(k):
            return fmt_interval(*self.intervals[k]) if k in self.intervals else ""

        return [
            ("params per concept ς (fitted)", fmt(self.params_per_concept), iv("params_per_concept")),
            ("tokens per text τ (fitted)", fmt(self.tokens_per_text), iv("tokens_per_text")),
            ("ς/τ", fmt(self.ratio), iv("ratio")),
            ("ς·τ" + ("" if self.product_identified else " (weakly identified)"), fmt(self.product), ""),
            ("N_opt ~ C^a: law", fmt(self.law_a), iv("law_a")),
            ("N* ~ C^a: theory (fitted constants)", fmt(self.theory_a), ""),
            (f"tokens/param at C = {fmt(self.C_reference)}: law", fmt(self.tokens_per_param_law), ""),
            (f"tokens/param at C = {fmt(self.C_reference)}: theory", fmt(self.tokens_per_param_theory),
             iv("tokens_per_param_theory")),
            ("rms of ln N*_theory − ln N_opt,law", fmt(self.rms_log_N), ""),
        ]

    def markdown(self) -> str:
        """A short REPORT.md section: the theory's prediction beside the fitted law."""
        from lmscale.laws.tables import fmt

        lines = ["## The information-theoretic prediction beside the fitted law", "",
                 f"Nayak & Varshney's concept–text model (lmscale.theory) predicts N* ∝ D* ∝ C^0.5 with a "
                 f"tokens-per-parameter ratio set by its two free constants. Fitted to the {self.law} law's "
                 f"compute-optimal frontier over {fmt(self.C_range[0])}–{fmt(self.C_range[1])} FLOPs "
                 f"(least squares in ln N):", "",
                 "| quantity | value | interval |", "|---|---|---|"]
        lines += [f"| {q} | {v} | {i} |" for q, v, i in self.rows()]
        lines.append("")
        if self.confidence is not None and self.intervals:
            lines.append(f"Intervals: {self.confidence:.0%}, from the law's bootstrap interval of N_opt at its "
                         f"target compute (ς·τ held at its estimate).")
        lines += [f"- {n}" for n in self.notes]
        for t in self.tasks:
            lines.append(f"- task `{t.task}`: theory emergence shape γ^{t.n_skills} fits with rms {t.rms:.3f}; "
                         f"onset at N = {fmt(t.N_onset)}, half-way at N = {fmt(t.N_half)} parameters")
        figs = [f for f in self.files if f.suffix == ".png"]
        if figs:
            lines += ["", "Figures: " + ", ".join(f"`{f.name}`" for f in figs) + " (CSV beside each)."]
        return "\n".join(lines) + "\n"


# -- reading the user's law ------------------------------------------------------------------------
def _range_from_source(source: str | None, json_path: Path | None = None) -> tuple[float, float] | None:
    """The compute range of the data a fit names (a relative name is also tried beside the JSON and above it)."""
    if not source:
        return None
    bases = [Path.cwd()] + ([json_path.parent, *json_path.parent.parents] if json_path is not None else [])
    path = next((b / source for b in bases if (b / source).exists()), None)
    if path is None:
        return None
    from lmscale.laws.data import load_scaling_data

    try:
        C = load_scaling_data(path).C
    except LmscaleError:
        return None
    C = C[np.isfinite(C) & (C > 0)]
    return (float(C.min()), float(C.max())) if len(C) else None


def frontier_from_law(law, bootstrap=None) -> LawFrontier:
    """A fitted joint law object (ChinchillaLaw, KaplanJointLaw, DataConstrainedLaw), with the intervals of
    `bootstrap` (a `BootstrapResult` of it, from `lmscale.laws.bootstrap.bootstrap`) when given."""
    from lmscale.laws.frontier import default_compute

    if not hasattr(law, "theta_"):
        raise LmscaleError(f"{type(law).__name__} is not fitted; expected a fitted law (call .fit(data))")
    if not law.has_allocation():
        raise LmscaleError(f"the {law.form_.name} law has no compute-optimal frontier; expected a joint law of N and D")
    C = law.data_.C[np.isfinite(law.data_.C)]
    boot = bootstrap
    fr = LawFrontier(name=law.form_.name, source=law.data_.source,
                     allocation=lambda c: law.optimal_allocation(np.asarray(c, float)),
                     C_range=(float(C.min()), float(C.max())), target_compute=default_compute(law.data_),
                     a=float(getattr(law, "a_", np.nan)))
    if boot is not None:
        fr.confidence = boot.confidence
        fr.target_compute = boot.target_compute or default_compute(law.data_)
        if "N_opt" in boot.samples:
            fr.N_opt_interval = boot.interval("N_opt")
        if "a" in boot.samples:
            fr.a_interval = boot.interval("a")
        if boot.theta is not None and boot.converged.any():
            def band(c):
                with np.errstate(all="ignore"):
                    f = law.frontier(np.asarray(c, float), bootstrap=boot)
                return (f.bands["N_opt"][0], f.bands["N_opt"][2]) if "N_opt" in f.bands else None
            fr.band = band
    return fr


def frontier_from_json(path: Path) -> LawFrontier:
    """fit.json from `lmscale fit --out` (any approach; Approach 3 with the chinchilla law) or `lmscale demo`."""
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise LmscaleError(f"{str(path)!r} is not readable JSON ({err}); expected a fit.json from `lmscale fit --out`") from None
    if isinstance(d, dict) and isinstance(d.get("fit"), dict):
        d = d["fit"]  # `lmscale demo` wraps the fit
    if not isinstance(d, dict):
        raise LmscaleError(f"{str(path)!r} holds no fit; expected a fit.json from `lmscale fit --out` or `lmscale demo`")
    src = (d.get("data") or {}).get("source")
    boot = d.get("bootstrap") or {}
    ivs = boot.get("intervals") or {}
    if d.get("law") == "chinchilla" and isinstance(d.get("params"), dict):
        from lmscale.laws.frontier import chinchilla_allocation, chinchilla_exponents

        p = {k: float(d["params"][k]) for k in ("A", "B", "E", "alpha", "beta")}
        alloc = lambda c: chinchilla_allocation(p, np.asarray(c, float))  # noqa: E731
        a = float(chinchilla_exponents(p)["a"])
        name = "chinchilla"
    elif d.get("approach") in (1, 2) and d.get("N_coef") is not None:
        kN, a, kD, b = (float(d[k]) for k in ("N_coef", "a", "D_coef", "b"))
        alloc = lambda c: {"N_opt": kN * np.asarray(c, float) ** a, "D_opt": kD * np.asarray(c, float) ** b}  # noqa: E731
        name = f"Approach {d['approach']}"
    elif d.get("law"):
        raise LmscaleError(f"{str(path)!r} holds a {d['law']!r} fit; the overlay reads chinchilla fits and Approach 1/2 "
                           f"allocations from JSON (pass the sweep directory to refit, or a fitted law object)")
    else:
        raise LmscaleError(f"{str(path)!r} has no law parameters; expected a fit.json from `lmscale fit --out` or `lmscale demo`")
    target = d.get("target_compute") or boot.get("target_compute")
    notes: list[str] = []
    rng = _range_from_source(src, path.resolve())
    if rng is None and d.get("budgets"):
        Cb = [float(b["C"]) for b in d["budgets"] if b.get("C")]
        rng = (min(Cb), max(Cb)) if Cb else None
    if rng is None:
        if not target:
            raise LmscaleError(f"{str(path)!r}: the data file {src!r} is gone and no target compute is recorded; "
                               f"expected the data beside the fit, or pass C_range")
        rng = (float(target) / 1e3, float(target))
        notes.append(f"data file {src!r} not found: compared over 1e-3x to 1x the target compute instead")
    fr = LawFrontier(name=name, source=str(path), allocation=alloc, C_range=rng,
                     target_compute=float(target) if target else None, a=a, notes=notes)
    if "N_opt" in ivs and None not in ivs["N_opt"]:
        fr.N_opt_interval = (float(ivs["N_opt"][0]), float(ivs["N_opt"][1]))
        fr.confidence = boot.get("confidence")
    if "a" in ivs and None not in ivs["a"]:
        fr.a_interval = (float(ivs["a"][0]), float(ivs["a"][1]))
        fr.confidence = boot.get("confidence")
    return fr


def load_frontier(fit_or_law, bootstrap=None) -> LawFrontier:
    """A law object (with `bootstrap`, a `BootstrapResult` of it, for intervals), a fit.json, a sweep
    directory or a CSV of (N, D, loss) (fitted with the Chinchilla law)."""
    if hasattr(fit_or_law, "get_params") and hasattr(fit_or_law, "optimal_allocation"):
        return frontier_from_law(fit_or_law, bootstrap)
    path = Path(fit_or_law)
    if path.is_file() and path.suffix.lower() == ".json":
        return frontier_from_json(path)
    if path.is_dir() or (path.is_file() and path.suffix.lower() == ".csv"):
        from lmscale.laws.data import load_scaling_data
        from lmscale.laws.estimators import ChinchillaLaw

        with np.errstate(all="ignore"):
            return frontier_from_law(ChinchillaLaw().fit(load_scaling_data(path)))
    raise LmscaleError(f"{str(path)!r} not found or not understood; expected a sweep directory, a CSV of N, D, loss, "
                       f"or a fit.json from `lmscale fit --out`/`lmscale demo`")


# -- the theory's side -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _TheoryTable:
    """ln r and ln kappa of the compute-optimal allocation on a grid of ln C_m (model units)."""

    lnC: np.ndarray
    ln_r: np.ndarray
    ln_kappa: np.ndarray

    def at(self, lnCm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.interp(lnCm, self.lnC, self.ln_r), np.interp(lnCm, self.lnC, self.ln_kappa)


def _theory_table(params) -> _TheoryTable:
    from lmscale.theory.optimum import compute_optimal

    sw = compute_optimal(THEORY_C_MODEL, params)
    keep = ~sw.at_edge
    return _TheoryTable(np.log(sw.C[keep]), np.log(sw.ratio[keep]), np.log(sw.T_star[keep] / sw.R_star[keep]))


def _theory_N(C, ratio, product, table: _TheoryTable) -> np.ndarray:
    ln_r, _ = table.at(np.log(C / (6 * product)))
    return np.sqrt(ratio) * np.exp(ln_r) * np.sqrt(C / 6)


def _product_bounds(C, table: _TheoryTable) -> tuple[float, float]:
    """The admissible ln P: every budget's C/(6P) inside the theory's table."""
    lnC = np.log(C)
    lo = lnC.max() - np.log(6) - table.lnC.max()  # ln P so the largest budget sits at the table's top
    hi = lnC.min() - np.log(6) - table.lnC.min()  # ... and the smallest at its bottom
    if hi < lo:
        raise LmscaleError(f"the compute range {C.min():.3g}-{C.max():.3g} FLOPs spans more than the theory's "
                           f"{np.exp(table.lnC.min()):.3g}-{np.exp(table.lnC.max()):.3g} model units; expected a narrower range")
    return float(lo), float(hi)


def _profile(C, N_law, table: _TheoryTable, lnP: float) -> tuple[float, float]:
    """(mean squared ln N residual, ln ratio) with the ratio solved in closed form at product e^lnP."""
    lnC = np.log(C)
    ln_r, _ = table.at(lnC - np.log(6) - lnP)
    ln_ratio = 2 * np.mean(np.log(N_law) - ln_r - 0.5 * (lnC - np.log(6)))
    res = 0.5 * ln_ratio + ln_r + 0.5 * (lnC - np.log(6)) - np.log(N_law)
    return float(np.mean(res**2)), float(ln_ratio)


def _fit_constants(C, N_law, table: _TheoryTable) -> tuple[float, float, float, bool, bool]:
    """(ratio, product, rms of ln N residuals, product identified?, physical constraint met?).

    The product is searched where both constants are at least 1 (a concept takes at least one
    parameter, a text at least one token): ln P >= |ln ratio|. Without that, least squares runs to
    the top of the theory's table (where R*/sqrt(C) is flattest) and returns fractions of a parameter.
    """
    from scipy.optimize import minimize_scalar

    lo, hi = _product_bounds(C, table)

    def cost(lnP):
        # A steep linear penalty outside the region (not inf, which upsets the bounded search).
        mse, ln_ratio = _profile(C, N_law, table, lnP)
        return mse + 1e3 * max(abs(ln_ratio) - lnP, 0.0)

    grid = np.linspace(lo, hi, 61)
    prof = [_profile(C, N_law, table, g) for g in grid]
    sse = np.array([m for m, _ in prof])
    feasible = grid >= np.abs([r for _, r in prof])
    physical = bool(feasible.any())
    f = cost if physical else (lambda g: _profile(C, N_law, table, g)[0])
    vals = np.where(feasible, sse, np.inf) if physical else sse
    i = int(np.argmin(vals))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    best = minimize_scalar(f, bounds=(a, b), method="bounded", options={"xatol": 1e-6}) if b > a else None
    lnP = float(best.x) if best is not None and best.fun <= vals[i] else float(grid[i])
    mse, ln_ratio = _profile(C, N_law, table, lnP)
    # Identified when moving P across its admissible range changes the fit by more than 10% of the
    # residual and by more than (1%)^2 in ln N.
    ok = sse[feasible] if physical else sse
    identified = float(ok.max() - ok.min()) > max(0.1 * mse, 1e-4)
    return float(np.exp(ln_ratio)), float(np.exp(lnP)), float(np.sqrt(mse)), identified, physical


# -- tasks -----------------------------------------------------------------------------------------
def emergence_shape(N, loc: float, scale: float, low: float, high: float, n_skills: int) -> np.ndarray:
    """low + (high - low) gamma(c)^n, c = exp((ln N - loc)/scale): the skill-graph emergence curve in ln N."""
    from lmscale.theory.random_graphs import giant_fraction

    c = np.exp(np.clip((np.log(np.asarray(N, float)) - loc) / scale, -700, 700))
    return low + (high - low) * giant_fraction(c) ** n_skills


def load_task_curves(path: str | Path, metric: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """task -> (N parameters, accuracy, averaged over repeats at one N).

    Either a CSV with columns N, task, accuracy (aliases accepted), or the long evaluation table
    `lmscale eval` writes (eval.csv: run_id, N, task, k_shot, metric, value, step, ...): there the
    `metric` rows are used (default exact_match, else the first metric), each run at its last step,
    one curve per task (per task and k-shot when a task has several).
    """
    path = Path(path)
    if not path.is_file():
        raise LmscaleError(f"task curves {str(path)!r} not found; expected a CSV with columns N, task, accuracy")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    header = [h.strip() for h in (rows[0] if rows else [])]
    if {"metric", "value", "task", "N"} <= set(header):
        points = _eval_table_points(path, rows, metric)
    else:
        points = _simple_points(path, rows, header)
    out: dict[str, dict[float, list[float]]] = {}
    for task, n, acc in points:
        out.setdefault(task, {}).setdefault(n, []).append(acc)
    curves = {}
    for task, by_n in out.items():
        Ns = np.array(sorted(by_n))
        curves[task] = (Ns, np.array([np.mean(by_n[n]) for n in Ns]))
    return curves


def _number(path: Path, line: int, name: str, text) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise LmscaleError(f"{str(path)!r} line {line}: {name}={text!r}; expected a number") from None
    if not np.isfinite(v) or (name == "N" and v <= 0):
        raise LmscaleError(f"{str(path)!r} line {line}: {name}={v!r}; expected a finite number" + (" > 0" if name == "N" else ""))
    return v


def _simple_points(path: Path, rows, header) -> list[tuple[str, float, float]]:
    cols = {}
    for key, names in TASK_COLUMNS.items():
        hit = next((h for h in header for n in names if h.lower() == n.lower()), None)
        if hit is None:
            raise LmscaleError(f"{str(path)!r} has no {key!r} column (tried {', '.join(names)}); expected columns N, "
                               f"task, accuracy (or an eval.csv from `lmscale eval`)")
        cols[key] = hit
    return [(r[cols["task"]], _number(path, i, "N", r[cols["N"]]), _number(path, i, "accuracy", r[cols["accuracy"]]))
            for i, r in enumerate(rows, start=2)]


def _eval_table_points(path: Path, rows, metric: str | None) -> list[tuple[str, float, float]]:
    metrics = sorted({r["metric"] for r in rows})
    m = metric or ("exact_match" if "exact_match" in metrics else metrics[0])
    if m not in metrics:
        raise LmscaleError(f"metric {m!r} not in {str(path)!r}; expected one of {', '.join(metrics)}")
    sel = [(i, r) for i, r in enumerate(rows, start=2) if r["metric"] == m and (r.get("value") or "").strip()]

    def step(r) -> float:
        s = (r.get("step") or "").strip()
        return float(s) if s else float("inf")  # a blank step is the final checkpoint

    def key(r):
        return r.get("run_id", ""), r["task"], r.get("k_shot", "")

    last: dict = {}
    for _, r in sel:
        last[key(r)] = max(last.get(key(r), -np.inf), step(r))
    sel = [(i, r) for i, r in sel if step(r) == last[key(r)]]
    shots: dict[str, set] = {}
    for _, r in sel:
        shots.setdefault(r["task"], set()).add(r.get("k_shot", ""))
    return [(r["task"] if len(shots[r["task"]]) == 1 else f"{r['task']} ({r.get('k_shot', '')}-shot)",
             _number(path, i, "N", r["N"]), _number(path, i, "value", r["value"])) for i, r in sel]


def fit_task(task: str, N, acc, n_skills=range(2, 8)) -> TaskFit:
    """Least-squares fit of `emergence_shape` (loc, scale, low, high) for each n; the best n is kept."""
    from scipy.optimize import least_squares

    N, acc = np.asarray(N, float), np.asarray(acc, float)
    if len(N) < 4 or len(np.unique(N)) < 3:
        raise LmscaleError(f"task {task!r} has {len(N)} points at {len(np.unique(N))} sizes; expected at least 4 points at 3 sizes")
    lnN = np.log(N)
    span = max(lnN.max() - lnN.min(), 1e-3)
    lo0, hi0 = float(acc.min()), float(max(acc.max(), acc.min() + 1e-3))
    mid = lo0 + 0.5 * (hi0 - lo0)
    above = np.flatnonzero(acc >= mid)
    x_mid = lnN[above[0]] if len(above) else lnN.mean()
    best = None
    for n in n_skills:
        def resid(th):
            return emergence_shape(N, th[0], th[1], th[2], th[3], n) - acc

        for s0 in (span / 8, span / 3):
            x0 = [x_mid - s0, s0, lo0, hi0]
            try:
                r = least_squares(resid, x0, bounds=([lnN.min() - 2 * span, 1e-3 * span, -0.5, 0.0],
                                                     [lnN.max() + 2 * span, 10 * span, 1.0, 1.5]))
            except ValueError:
                continue
            if best is None or r.cost < best[0].cost:
                best = (r, n)
    if best is None:
        raise LmscaleError(f"task {task!r}: the emergence shape could not be fitted")
    r, n = best
    loc, scale, low, high = (float(v) for v in r.x)
    grid = np.exp(np.linspace(lnN.min() - span, lnN.max() + span, 2000))
    from lmscale.theory.skills import crossing

    n_half = crossing(grid, emergence_shape(grid, loc, scale, 0.0, 1.0, n), 0.5)
    return TaskFit(task=task, n_points=len(N), n_skills=n, loc=loc, scale=scale, low=low, high=high,
                   N_onset=float(np.exp(loc)), N_half=n_half, rms=float(np.sqrt(np.mean(r.fun**2))), N=N, accuracy=acc)


# -- the overlay -----------------------------------------------------------------------------------
def theory_overlay(fit_or_law, out_dir: str | Path, *, params=None, tasks: str | Path | None = None,
                   metric: str | None = None, C_range: tuple[float, float] | None = None,
                   n: int = 60, bootstrap=None) -> OverlayResult:
    """Fit the theory's free constants to a fitted law's frontier; write theory_overlay.png/.csv/.json.

    fit_or_law: a fitted joint law object, a fit.json, a sweep directory or a CSV of N, D, loss.
    bootstrap: a `BootstrapResult` of a law object (`lmscale.laws.bootstrap.bootstrap(law, ...)`) for intervals.
    params: `NVParams` for d_t, epsilon and the alpha variant (its params_per_concept and
    tokens_per_text are replaced by the fitted ones; they only give the "paper constants" curve).
    tasks: optional CSV of per-task accuracy (columns N, task, accuracy, or an eval.csv from
    `lmscale eval`; a sweep directory's eval.csv is used when none is given) -> theory_tasks.png/.csv.
    metric: which metric of an eval.csv (default exact_match).
    """
    from lmscale.fileio import atomic_write_json
    from lmscale.theory.ensemble import NVParams

    p = params or NVParams()
    fr = load_frontier(fit_or_law, bootstrap)
    lo, hi = C_range or fr.C_range
    if not (0 < lo < hi and np.isfinite(hi)):
        if lo == hi and lo > 0:
            lo, hi = lo / 3, hi * 3
        else:
            raise LmscaleError(f"compute range ({lo!r}, {hi!r}); expected 0 < low < high FLOPs")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LmscaleError(f"output directory {str(out)!r} is a file; expected a directory")
    C = np.geomspace(lo, hi, n)
    with np.errstate(all="ignore"):
        alloc = fr.allocation(C)
    N_law, D_law = np.asarray(alloc["N_opt"], float), np.asarray(alloc["D_opt"], float)
    if not np.all(np.isfinite(N_law) & (N_law > 0)):
        raise LmscaleError(f"the {fr.name} law's frontier is not finite over {lo:.3g}-{hi:.3g} FLOPs; expected a converged fit")
    table = _theory_table(p)
    ratio, product, rms, identified, physical = _fit_constants(C, N_law, table)
    sig, tau = float(np.sqrt(ratio * product)), float(np.sqrt(product / ratio))
    N_th = _theory_N(C, ratio, product, table)
    _, ln_k = table.at(np.log(C / (6 * product)))
    tpp_th = np.exp(ln_k) / ratio
    theory_a = float(np.polyfit(np.log(C), np.log(N_th), 1)[0])
    law_a = float(np.polyfit(np.log(C), np.log(N_law), 1)[0])
    notes = list(fr.notes)
    if not physical:
        notes.append("no ς·τ keeps both constants >= 1 over this compute range; the unconstrained fit is reported")
    if not identified:
        notes.append("ς·τ is weakly identified: over this compute range R*/√C is nearly constant, so only ς/τ "
                     "(the level of N*) is pinned down by the law")
    lnP_paper = float(np.log(p.params_per_concept * p.tokens_per_text))
    lo_p, hi_p = _product_bounds(C, table)
    if lo_p <= lnP_paper <= hi_p:
        rms_paper = float(np.sqrt(_profile(C, N_law, table, lnP_paper)[0]))
        notes.append(f"with the paper's ς·τ = {np.exp(lnP_paper):.3g} (ς/τ refitted) the rms ln-residual would be "
                     f"{rms_paper:.3f} (fitted ς·τ: {rms:.3f})")
    if abs(law_a - 0.5) > 0.1:
        notes.append(f"the law's N_opt exponent a = {law_a:.3f} is far from the theory's ~0.5; the constants "
                     f"match the level, not the slope (rms ln-residual {rms:.3f})")
    res = OverlayResult(source=fr.source, law=fr.name, C_range=(float(lo), float(hi)), params_per_concept=sig,
                        tokens_per_text=tau, ratio=ratio, product=product, product_identified=identified,
                        rms_log_N=rms, law_a=law_a, theory_a=theory_a,
                        tokens_per_param_law=float(D_law[-1] / N_law[-1]), tokens_per_param_theory=float(tpp_th[-1]),
                        C_reference=float(C[-1]), notes=notes, confidence=fr.confidence)
    if fr.a_interval is not None:
        res.intervals["law_a"] = fr.a_interval
    if fr.N_opt_interval is not None and fr.target_compute:
        n_hat = float(np.asarray(fr.allocation(np.array([fr.target_compute]))["N_opt"])[0])
        lo_r, hi_r = (ratio * (v / n_hat) ** 2 for v in fr.N_opt_interval)
        if np.isfinite(lo_r) and np.isfinite(hi_r) and lo_r > 0:
            res.intervals["ratio"] = (lo_r, hi_r)
            res.intervals["params_per_concept"] = (float(np.sqrt(lo_r * product)), float(np.sqrt(hi_r * product)))
            res.intervals["tokens_per_text"] = (float(np.sqrt(product / hi_r)), float(np.sqrt(product / lo_r)))
            res.intervals["tokens_per_param_theory"] = (float(tpp_th[-1] * ratio / hi_r), float(tpp_th[-1] * ratio / lo_r))
    # The paper's constants where the user's budgets fall inside the theory's table.
    Cm_paper = C / p.flops_per_model_unit
    paper_ok = (np.log(Cm_paper) >= table.lnC.min()) & (np.log(Cm_paper) <= table.lnC.max())
    N_paper = np.where(paper_ok, _theory_N(C, p.params_per_concept / p.tokens_per_text,
                                           p.params_per_concept * p.tokens_per_text, table), np.nan)
    if not paper_ok.any():
        res.notes.append(f"with the paper's constants ({p.params_per_concept:.3g} parameters/concept, "
                         f"{p.tokens_per_text:.3g} tokens/text) these budgets are below the theory's range "
                         f"(C < {np.exp(table.lnC.min()) * p.flops_per_model_unit:.3g} FLOPs); curve omitted")
    band = fr.band(C) if fr.band is not None else None
    if tasks is None and isinstance(fit_or_law, (str, Path)) and Path(fit_or_law).is_dir() \
            and (Path(fit_or_law) / "eval.csv").is_file():
        tasks = Path(fit_or_law) / "eval.csv"
        res.notes.append(f"per-task curves from {tasks}")
    # Read the task curves before writing anything: a bad --tasks file leaves no half-written output.
    curves = load_task_curves(tasks, metric) if tasks is not None else None
    res.files += _overlay_figure(out, res, C, N_law, D_law, N_th, tpp_th, N_paper, band, fr)
    if curves is not None:
        for t, v in curves.items():
            try:
                res.tasks.append(fit_task(t, *v))
            except LmscaleError as err:
                res.notes.append(f"task {t!r} not fitted: {err}")
        if res.tasks:
            res.files += _tasks_figure(out, res.tasks)
    js = out / "theory_overlay.json"
    res.files.append(js)
    atomic_write_json(js, res.to_dict())
    return res


def _overlay_figure(out: Path, res: OverlayResult, C, N_law, D_law, N_th, tpp_th, N_paper, band, fr) -> list[Path]:
    from lmscale.laws.tables import fmt
    from lmscale.report.common import finish_axes, new_figure, resolve_out, save_figure

    png = resolve_out(out, "theory_overlay")
    D_th = C / (6 * N_th)
    caption = (f"theory fitted to the {res.law} law ({fr.source}): ς = {fmt(res.params_per_concept)} parameters/concept, "
               f"τ = {fmt(res.tokens_per_text)} tokens/text (ς/τ = {fmt(res.ratio)}); rms ln-residual "
               f"{res.rms_log_N:.3f}; law a = {res.law_a:.3f}, theory a = {res.theory_a:.3f}")
    fig, (ax, bx), _ = new_figure(2, width=5.2, height=4.3, caption=caption)
    ax.plot(C, N_law, "-", color="tab:blue", lw=1.8, label=f"N_opt, {res.law} law (parameters)")
    ax.plot(C, D_law, "-", color="tab:green", lw=1.8, label="D_opt, law (tokens)")
    if band is not None:
        ax.fill_between(C, band[0], band[1], color="tab:blue", alpha=0.15, lw=0,
                        label=f"{fr.confidence:.0%} bootstrap band of N_opt")
    ax.plot(C, N_th, "--", color="tab:red", lw=1.6, label="N*, theory (fitted ς, τ)")
    ax.plot(C, D_th, "--", color="tab:orange", lw=1.6, label="D*, theory (fitted ς, τ)")
    if np.isfinite(N_paper).any():
        ax.plot(C, N_paper, ":", color="tab:red", lw=1.2, label="N*, theory (paper's ς, τ)")
    finish_axes(ax, "C (training FLOPs, 6ND)", "N (parameters) / D (tokens)", logy=True,
                title="compute-optimal allocation: law vs theory")
    bx.plot(C, D_law / N_law, "-", color="tab:purple", lw=1.8, label="law D_opt/N_opt")
    bx.plot(C, tpp_th, "--", color="tab:red", lw=1.6, label="theory D*/N* (fitted ς, τ)")
    finish_axes(bx, "C (training FLOPs, 6ND)", "tokens per parameter", logy=True, title="tokens per parameter")
    for a in (ax, bx):
        a.legend(fontsize=7, loc="best")
    lo_b, hi_b = band if band is not None else (np.full(len(C), np.nan), np.full(len(C), np.nan))
    rows = [[c, nl, dl, dl / nl, bl, bh, nt, c / (6 * nt), tp, npap] for c, nl, dl, bl, bh, nt, tp, npap in
            zip(C, N_law, D_law, lo_b, hi_b, N_th, tpp_th, N_paper)]
    files = save_figure(fig, png, ["C_flops", "law_N_opt_parameters", "law_D_opt_tokens", "law_tokens_per_param",
                                   "law_N_opt_low", "law_N_opt_high", "theory_N_star_parameters", "theory_D_star_tokens",
                                   "theory_tokens_per_param", "theory_paper_constants_N_star_parameters"], rows)
    return [files.png, files.csv]


def _tasks_figure(out: Path, fits: list[TaskFit]) -> list[Path]:
    from lmscale.report.common import finish_axes, new_figure, resolve_out, save_figure

    png = resolve_out(out, "theory_tasks")
    fig, (ax,), _ = new_figure(1, width=6.4, height=4.6)
    rows = []
    for t in fits:
        grid = np.geomspace(t.N.min() / 2, t.N.max() * 2, 200)
        pred = t.predict(grid)
        line, = ax.plot(grid, pred, "-", lw=1.4, label=f"{t.task}: γ^{t.n_skills} fit (rms {t.rms:.3f})")
        ax.plot(t.N, t.accuracy, "o", color=line.get_color(), ms=4)
        rows += [[t.task, "measured", x, y] for x, y in zip(t.N, t.accuracy)]
        rows += [[t.task, "theory_shape", x, y] for x, y in zip(grid, pred)]
    finish_axes(ax, "N (parameters)", "accuracy", title="per-task accuracy vs the skill-graph emergence shape")
    ax.legend(fontsize=7, loc="best")
    files = save_figure(fig, png, ["task", "series", "N_parameters", "accuracy"], rows)
    return [files.png, files.csv]


__all__ = ["LawFrontier", "TaskFit", "OverlayResult", "load_frontier", "frontier_from_law", "frontier_from_json",
           "emergence_shape", "load_task_curves", "fit_task", "theory_overlay"]
