"""Every human-readable summary and JSON dict of `lmscale.laws`, in one place.

    summary(est, bootstrap=None, extrapolation=None, *, compute=None) -> str
    to_dict(est, bootstrap=None, extrapolation=None, *, compute=None) -> dict (strict JSON types)

`est` is a fitted estimator (an Approach-3 law, `IsoFLOPAllocation`, `EnvelopeAllocation`) or a
result object (`BootstrapResult`, `ExtrapolationResult`, `FrontierResult`, `CompareResult`).
`bootstrap` is a `BootstrapResult` of `est` (from `lmscale.laws.bootstrap.bootstrap`);
`extrapolation` an `ExtrapolationResult` (from `lmscale.laws.extrapolation.extrapolation_check`)
or, when no check could be made, the reason as a string. Derived values (N_opt, D_opt, ...) are
reported at `compute` FLOPs: by default the bootstrap's compute, else 10x the largest compute in
the data. The plain-text table helpers (`fmt`, `format_table`, `jsonable`) live here too.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

UNITS = {"N": "parameters (total)", "D": "tokens", "C": "FLOPs", "loss": "nats/token", "U": "unique tokens"}
DERIVED_HELP = {
    "a": "N_opt ~ C^a", "b": "D_opt ~ C^b", "G": "N_opt = G (C/6)^a", "N_opt": "params at target C",
    "D_opt": "tokens at target C", "tokens_per_param": "D_opt/N_opt at target C", "loss_opt": "loss at the optimum",
    "loss_at": "predicted loss at the given point",
}


# -- plain-text tables and JSON-safe values ------------------------------------------------------
def fmt(x: Any, digits: int = 4) -> str:
    """A number in `digits` significant figures; scientific outside [1e-3, 1e5); '-' for None/NaN."""
    if x is None:
        return "-"
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(v):
        return "-" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}"


def fmt_interval(lo: Any, hi: Any) -> str:
    return f"({fmt(lo)}, {fmt(hi)})"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> str:
    cells = [[str(h) for h in headers]] + [[c if isinstance(c, str) else fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [title] if title else []
    out += [line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]]
    return "\n".join(out)


def jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays to Python; NaN and inf become None (strict JSON has neither)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


# -- dispatch ------------------------------------------------------------------------------------
def _kind(obj: Any) -> str:
    from lmscale.laws.bootstrap import BootstrapResult
    from lmscale.laws.compare import CompareResult
    from lmscale.laws.envelope import EnvelopeAllocation
    from lmscale.laws.estimators import ScalingLaw
    from lmscale.laws.extrapolation import ExtrapolationResult
    from lmscale.laws.frontier import FrontierResult
    from lmscale.laws.isoflop import IsoFLOPAllocation

    for cls, kind in ((ScalingLaw, "law"), (IsoFLOPAllocation, "isoflop"), (EnvelopeAllocation, "envelope"),
                      (BootstrapResult, "bootstrap"), (ExtrapolationResult, "extrapolation"),
                      (FrontierResult, "frontier"), (CompareResult, "compare")):
        if isinstance(obj, cls):
            return kind
    from lmscale.errors import LmscaleError

    raise LmscaleError(f"cannot summarise a {type(obj).__name__}; expected a fitted lmscale.laws estimator "
                       "(ChinchillaLaw, KaplanLaw, ..., IsoFLOPAllocation, EnvelopeAllocation) or one of its results")


def _dispatch(fits: dict, results: dict, est: Any, bootstrap, extrapolation, compute):
    kind = _kind(est)
    if kind == "law":
        return fits[kind](est, bootstrap, extrapolation, compute=compute)
    if kind in fits:
        return fits[kind](est, bootstrap, compute=compute)
    return results[kind](est)


def summary(est: Any, bootstrap=None, extrapolation=None, *, compute=None) -> str:
    """A readable multi-line report of a fitted estimator (with its bootstrap intervals and extrapolation
    check when given) or of a result object."""
    return _dispatch({"law": law_summary, "isoflop": isoflop_summary, "envelope": envelope_summary},
                     {"bootstrap": bootstrap_summary, "extrapolation": extrapolation_summary,
                      "frontier": frontier_summary, "compare": compare_summary}, est, bootstrap, extrapolation, compute)


def to_dict(est: Any, bootstrap=None, extrapolation=None, *, compute=None) -> dict[str, Any]:
    """Everything about a fitted estimator (or a result object) as plain JSON types (NaN/inf as null)."""
    return _dispatch({"law": law_to_dict, "isoflop": isoflop_to_dict, "envelope": envelope_to_dict},
                     {"bootstrap": bootstrap_to_dict, "extrapolation": extrapolation_to_dict,
                      "frontier": frontier_to_dict, "compare": compare_to_dict}, est, bootstrap, extrapolation, compute)


def _require_fitted(est: Any) -> None:
    from lmscale.errors import LmscaleError

    if not hasattr(est, "data_"):
        raise LmscaleError(f"{type(est).__name__} is not fitted yet; call .fit(data) first")


def _compute(est: Any, bootstrap, compute):
    """The compute (FLOPs; a float or an array) derived values are reported at."""
    from lmscale.laws.frontier import check_compute, default_compute

    if compute is not None:
        return check_compute(compute)
    if bootstrap is not None and bootstrap.compute is not None:
        return bootstrap.compute
    return default_compute(est.data_)


def _at(c) -> str:
    return f" at C={fmt(c)}"


def _value_rows(name: str, value, compute, label: str, boot) -> list[list[str]]:
    """One row for a scalar quantity; one row per compute value for an array (an allocation over several C)."""
    iv = boot.interval(name) if boot is not None and name in boot.samples else None
    if np.ndim(value) == 0:
        row = [label, fmt(float(value))]
        if boot is not None:
            row.append(fmt_interval(*iv) if iv is not None else "-")
        return [row]
    rows = []
    for i, c in enumerate(np.atleast_1d(compute)):
        row = [label + _at(c), fmt(float(np.asarray(value)[i]))]
        if boot is not None:
            row.append(fmt_interval(iv[0][i], iv[1][i]) if iv is not None else "-")
        rows.append(row)
    return rows


def _extrapolation_text(extrapolation) -> str | None:
    if extrapolation is None:
        return None
    if isinstance(extrapolation, str):
        return extrapolation
    return extrapolation_summary(extrapolation)


# -- Approach 3: parametric laws --------------------------------------------------------------------
def law_summary(law, bootstrap=None, extrapolation=None, *, compute=None) -> str:
    """Parameters (with bootstrap intervals when given), derived values, convergence, extrapolation check."""
    law._require_fitted()
    boot = bootstrap
    form = law.form_
    lines = [f"{form.name} law: {form.formula}",
             f"data: {law.data_.describe()}",
             f"objective: {law.reduction} of Huber(delta={float(law.delta):g}) on log-loss residuals = "
             f"{law.objective_:.6e}; {'converged' if law.converged_ else 'NOT converged'} "
             f"(max |gradient| {law.grad_max_:.1e})",
             f"starts: {law.n_starts_converged_} of {law.n_starts_} ({law.frac_starts_converged_:.1%}) reached "
             f"the optimum (objective within {law.reach_rtol:g} relative); {len(law.fit_result_.local_optima)}"
             f"{'+' if len(law.fit_result_.local_optima) >= 20 else ''} distinct end points"]
    head = ["parameter", "estimate"] + ([f"{boot.confidence:.0%} interval"] if boot else [])
    rows = []
    for k, v in law.params_.items():
        rows += _value_rows(k, v, None, k, boot)
    tc = _compute(law, boot, compute)
    if tc is not None and (law.has_allocation() or boot):
        der = law.derived(law.theta_, tc, boot.predict_at if boot else None)
        for k, v in der.items():
            rows += _value_rows(k, v, tc, f"{k} [{DERIVED_HELP.get(k, '')}]", boot)
    if tc is not None and law.has_allocation():
        at = fmt(tc) if np.ndim(tc) == 0 else ", ".join(fmt(c) for c in np.atleast_1d(tc))
        lines.append(f"derived values at target compute C = {at} FLOPs (C = 6ND):")
    lines.append(format_table(head, rows))
    if boot:
        lines.append(f"bootstrap: {boot.n_converged}/{boot.n_resamples} resamples converged, cluster bootstrap over "
                     f"{boot.n_clusters} runs")
    ex = _extrapolation_text(extrapolation)
    if ex:
        lines.append(ex)
    return "\n".join(lines)


def law_to_dict(law, bootstrap=None, extrapolation=None, *, compute=None) -> dict[str, Any]:
    law._require_fitted()
    d = law.data_
    form = law.form_
    tc = _compute(law, bootstrap, compute)
    derived = ({k: (float(v) if np.ndim(v) == 0 else np.asarray(v, float)) for k, v in law.derived(law.theta_, tc).items()}
               if tc is not None else {})
    ex = extrapolation if extrapolation is not None and not isinstance(extrapolation, str) else None
    out = {
        "law": form.name,
        "formula": form.formula,
        "units": {v: UNITS[v] for v in (*form.variables, "loss") if v in UNITS},
        "data": {"source": d.source, "n_points": len(d), "n_runs": d.n_clusters, "D_from_C": d.D_from_C,
                 "C_from_6ND": d.C_from_6ND},
        "objective": {"kind": "huber of log-loss residuals", "delta": float(law.delta), "reduction": law.reduction,
                      "value": law.objective_},
        "converged": law.converged_, "message": law.message_, "grad_max": law.grad_max_,
        "starts": {"n": law.n_starts_, "n_reached_optimum": law.n_starts_converged_,
                   "fraction_reached": law.frac_starts_converged_, "reach_rtol": law.reach_rtol,
                   "solver": law.solver, "stage1_status": law.fit_result_.status_counts},
        "params": law.params_,
        "fit_params": {n: float(v) for n, v in zip(form.theta_names, law.theta_)},
        "local_optima": law.local_optima_[:5],
        "target_compute": tc,
        "derived": derived,
        "extrapolation": extrapolation_to_dict(ex) if ex is not None else None,
        "extrapolation_note": extrapolation if isinstance(extrapolation, str) and extrapolation else None,
        "bootstrap": bootstrap_to_dict(bootstrap) if bootstrap is not None else None,
    }
    return jsonable(out)


# -- Approaches 1 and 2: power laws of the allocation ------------------------------------------------
def allocation_lines(est, bootstrap=None, compute=None, with_se: bool = False) -> list[str]:
    """The power laws N_opt ~ C^a, D_opt ~ C^b of an Approach-1/2 estimator and its allocation at
    `compute`, with bootstrap intervals when given; then its warnings."""
    boot = bootstrap
    tc = _compute(est, boot, compute)

    def iv(k: str, i=None) -> str:
        if boot is None or k not in boot.samples:
            return ""
        lo, hi = boot.interval(k)
        if i is not None:
            lo, hi = lo[i], hi[i]
        return f" {boot.confidence:.0%} CI ({fmt(lo)}, {fmt(hi)})"

    def se(k: str) -> str:
        return f" (SE {fmt(getattr(est, k + '_se_'))})" if with_se else ""

    at = est.optimal_allocation(tc)
    lines = [f"a = {fmt(est.a_)}{se('a')}{iv('a')}   N_opt = {fmt(est.N_coef_)} C^a",
             f"b = {fmt(est.b_)}{se('b')}{iv('b')}   D_opt = {fmt(est.D_coef_)} C^b"]
    for i, c in enumerate(np.atleast_1d(tc)):
        j = None if np.ndim(tc) == 0 else i
        pick = (lambda k: at[k]) if j is None else (lambda k: at[k][j])  # noqa: E731
        lines.append(f"at C = {fmt(c)} FLOPs: N_opt {fmt(pick('N_opt'))}{iv('N_opt', j)}, D_opt {fmt(pick('D_opt'))}"
                     f"{iv('D_opt', j)}, tokens/param {fmt(pick('tokens_per_param'))}{iv('tokens_per_param', j)}")
    return lines + [f"warning: {w}" for w in est.warnings_]


def _at_target(est, tc) -> dict[str, Any]:
    at = est.optimal_allocation(tc)
    return {k: at[k] for k in ("N_opt", "D_opt", "tokens_per_param")}


def _method_text(est) -> str:
    m = est.method
    return {"local": f"local parabola within +-{fmt(est.window)} in ln N of the lowest loss",
            "akima": "minimum of an Akima interpolant", "spline": "minimum of a smoothing spline",
            "parabola": "one parabola over the whole profile"}.get(m, str(m))


def vertex_intervals(est, bootstrap) -> list[dict[str, Any]] | None:
    """Per budget of an IsoFLOPAllocation: the bootstrap interval of its vertex N_opt and tokens/param at that budget
    (None where it was excluded), from the (R, n_budgets) samples of a stratified bootstrap; None without them."""
    if bootstrap is None or "vertex_N_opt" not in bootstrap.samples:
        return None
    out = []
    (nlo, nhi), (tlo, thi) = bootstrap.interval("vertex_N_opt"), bootstrap.interval("vertex_tokens_per_param")
    for j, b in enumerate(est.budgets_):
        ok = b.used and np.isfinite(nlo[j])
        out.append({"C": b.C, "N_opt_interval": [float(nlo[j]), float(nhi[j])] if ok else None,
                    "tokens_per_param": b.D_opt / b.N_opt if b.used else None,
                    "tokens_per_param_interval": [float(tlo[j]), float(thi[j])] if ok else None})
    return out


def isoflop_summary(est, bootstrap=None, *, compute=None) -> str:
    _require_fitted(est)
    iv = vertex_intervals(est, bootstrap)
    rows = []
    for j, b in enumerate(est.budgets_):
        row = [fmt(b.C), b.n_points, f"[{fmt(b.N_min)}, {fmt(b.N_max)}]", fmt(b.N_opt), fmt(b.D_opt), fmt(b.loss_opt),
               "yes" if b.edge else "no", "yes" if b.used else "no"]
        if iv is not None:
            v = iv[j]
            row[4:4] = [fmt_interval(*v["N_opt_interval"]) if v["N_opt_interval"] else "-",
                        fmt(b.D_opt / b.N_opt) if b.used else "-",
                        fmt_interval(*v["tokens_per_param_interval"]) if v["tokens_per_param_interval"] else "-"]
        rows.append(row)
    head = ["budget C (FLOPs)", "points", "N range", "N_opt", "D_opt", "loss at vertex", "edge", "used"]
    if iv is not None:
        q = f"{bootstrap.confidence:.0%}"
        head[4:4] = [f"N_opt {q} interval", "tokens/param", f"tokens/param {q} interval"]
    t = format_table(head, rows, title=f"Approach 2 (IsoFLOP; vertex: {_method_text(est)}): {est.n_budgets_used_} of "
                                       f"{len(est.budgets_)} budgets used; edge = lowest loss at the smallest or "
                                       "largest sampled size")
    return "\n".join([t, *allocation_lines(est, bootstrap, compute, with_se=True)])


def isoflop_to_dict(est, bootstrap=None, *, compute=None) -> dict[str, Any]:
    _require_fitted(est)
    tc = _compute(est, bootstrap, compute)
    return jsonable({
        "approach": 2, "method": f"IsoFLOP profiles, vertex per budget: {_method_text(est)}; OLS power laws over the "
                                 "budgets not excluded",
        "vertex_method": est.method, "window": est.window,
        "data": {"source": est.data_.source, "n_points": len(est.data_)},
        "a": est.a_, "b": est.b_, "a_se": est.a_se_, "b_se": est.b_se_, "N_coef": est.N_coef_, "D_coef": est.D_coef_,
        "formula": "N_opt = N_coef * C^a, D_opt = D_coef * C^b (C in FLOPs)",
        "target_compute": tc, "at_target": _at_target(est, tc),
        "budgets": [vars(b) for b in est.budgets_], "warnings": est.warnings_,
        "vertex_intervals": vertex_intervals(est, bootstrap),
        "bootstrap": bootstrap_to_dict(bootstrap) if bootstrap is not None else None,
    })


def envelope_summary(est, bootstrap=None, *, compute=None) -> str:
    _require_fitted(est)
    env = est.envelope_
    rows = []
    for n in np.unique(env["N"]):
        m = env["N"] == n
        rows.append([fmt(n), f"[{fmt(env['C'][m].min())}, {fmt(env['C'][m].max())}]", int(m.sum())])
    t = format_table(["winning N (params)", "C range won (FLOPs)", "grid points"], rows,
                     title=f"Approach 1 (envelope of {est.n_curves_} training curves, {len(env['C'])} grid points)")
    return "\n".join([t, *allocation_lines(est, bootstrap, compute)])


def envelope_to_dict(est, bootstrap=None, *, compute=None) -> dict[str, Any]:
    _require_fitted(est)
    tc = _compute(est, bootstrap, compute)
    return jsonable({
        "approach": 1, "method": "envelope of training curves (min loss over runs at log-spaced FLOPs); OLS power laws",
        "data": {"source": est.data_.source, "n_rows": len(est.data_), "n_curves": est.n_curves_},
        "n_grid": est.n_grid, "smooth": est.smooth, "n_envelope_points": len(est.envelope_["C"]),
        "a": est.a_, "b": est.b_, "a_se": est.a_se_, "b_se": est.b_se_, "N_coef": est.N_coef_,
        "D_coef": est.D_coef_, "formula": "N_opt = N_coef * C^a, D_opt = D_coef * C^b (C in FLOPs)",
        "target_compute": tc, "at_target": _at_target(est, tc),
        "envelope_sizes": sorted(float(n) for n in np.unique(est.envelope_["N"])), "warnings": est.warnings_,
        "bootstrap": bootstrap_to_dict(bootstrap) if bootstrap is not None else None,
    })


# -- result objects ---------------------------------------------------------------------------------
def bootstrap_summary(boot) -> str:
    rows = []
    for k, v in boot.samples.items():
        point = boot.point.get(k)
        if v.ndim == 1:
            lo, hi = boot.interval(k)
            rows.append([k, fmt(point), fmt_interval(lo, hi), fmt(boot.std(k))])
            continue
        (lo, hi), sd = boot.interval(k), boot.std(k)
        per_budget = k.startswith("vertex_") and "budgets" in boot.point  # Approach 2: one column per budget
        cols = boot.point["budgets"] if per_budget else np.atleast_1d(boot.compute)
        for i, c in enumerate(np.atleast_1d(cols)):
            label = f"{k} at budget C={fmt(c)}" if per_budget else k + _at(c)
            rows.append([label, fmt(None if point is None else np.asarray(point)[i]), fmt_interval(lo[i], hi[i]),
                         fmt(sd[i])])
    how = getattr(boot, "resampling", "cluster bootstrap (whole runs)").split(" (")[0]
    title = (f"{boot.law}: {how} over {boot.n_clusters} runs, {boot.n_converged}/{boot.n_resamples} "
             f"resamples converged; {boot.confidence:.0%} percentile intervals")
    if boot.target_compute:
        title += f"; target compute {fmt(boot.target_compute)} FLOPs"
    elif boot.compute is not None:
        title += f"; compute {', '.join(fmt(c) for c in np.atleast_1d(boot.compute))} FLOPs"
    text = format_table(["quantity", "estimate", f"{boot.confidence:.0%} interval", "bootstrap SE"], rows, title=title)
    return text + "".join(f"\nnote: {n}" for n in boot.notes)


def bootstrap_to_dict(boot, include_samples: bool = False) -> dict[str, Any]:
    d = {"law": boot.law, "n_resamples": boot.n_resamples, "n_converged": boot.n_converged,
         "confidence": boot.confidence, "seed": boot.seed, "n_clusters": boot.n_clusters,
         "resampling": getattr(boot, "resampling", "cluster bootstrap (whole runs)"), "target_compute": boot.target_compute,
         "compute": boot.compute, "predict_at": boot.predict_at, "point": boot.point,
         "intervals": {k: list(v) for k, v in boot.intervals.items()},
         "std": {k: boot.std(k) for k in boot.samples}, "notes": boot.notes}
    if include_samples:
        d["samples"] = {k: v.tolist() for k, v in boot.samples.items()}
    return jsonable(d)


def extrapolation_summary(ex) -> str:
    head = (f"extrapolation check (hold out {ex.description}; fit on {ex.n_train}): "
            f"mean ARE {ex.mean_are:.3%}, max {ex.max_are:.3%}")
    rows = [[fmt(r["N"]), fmt(r["D"]), fmt(r["C"]), fmt(r["loss"]), fmt(r["predicted"]), f"{r['are']:.3%}"]
            for r in ex.rows]
    return format_table(["N (params)", "D (tokens)", "C (FLOPs)", "loss", "predicted", "ARE"], rows, title=head)


def extrapolation_to_dict(ex) -> dict[str, Any]:
    return jsonable({"holdout": ex.holdout, "description": ex.description, "n_train": ex.n_train,
                     "n_test": ex.n_test, "mean_are": ex.mean_are, "max_are": ex.max_are,
                     "train_params": ex.train_params, "train_objective": ex.train_objective,
                     "points": ex.rows})


def frontier_summary(fr) -> str:
    headers = ["C (FLOPs)", "N_opt (params)", "D_opt (tokens)", "tokens/param", "loss (nats/token)"]
    rows = []
    for r in fr.rows():
        cells = [fmt(r["C"])]
        for q in fr.QUANTITIES:
            s = fmt(r[q])
            if f"{q}_low" in r:
                s += f" ({fmt(r[q + '_low'])}, {fmt(r[q + '_high'])})"
            cells.append(s)
        rows.append(cells)
    title = f"compute-optimal frontier ({fr.law})"
    if fr.confidence:
        title += f"; {fr.confidence:.0%} bootstrap intervals over {fr.n_resamples} resamples"
    return format_table(headers, rows, title=title)


def frontier_to_dict(fr) -> dict[str, Any]:
    return jsonable({"law": fr.law, "confidence": fr.confidence, "n_resamples": fr.n_resamples,
                     "units": {"C": "FLOPs (6ND)", "N_opt": "parameters", "D_opt": "tokens",
                               "loss_opt": "nats/token"}, "rows": fr.rows()})


def compare_summary(res) -> str:
    lines = [f"compute-optimal loss of {res.label_a} vs {res.label_b} ({res.law} law), "
             f"C in [{fmt(res.C_range[0])}, {fmt(res.C_range[1])}] FLOPs", res.message]
    if res.fraction_crossing is not None:
        lines.append(f"bootstrap: {res.fraction_crossing:.1%} of {res.n_pairs} resample pairs cross in range"
                     + (f"; {res.confidence:.0%} interval of the first crossing ({fmt(res.interval[0])}, "
                        f"{fmt(res.interval[1])}) FLOPs" if res.interval else ""))
    idx = np.unique(np.linspace(0, len(res.C) - 1, 7).astype(int))
    rows = [[fmt(res.C[i]), fmt(res.loss_a[i]), fmt(res.loss_b[i]), fmt(res.loss_a[i] - res.loss_b[i])] for i in idx]
    lines.append(format_table(["C (FLOPs)", f"L* {res.label_a}", f"L* {res.label_b}", "difference"], rows))
    return "\n".join(lines)


def compare_to_dict(res) -> dict[str, Any]:
    return jsonable({"law": res.law, "a": res.label_a, "b": res.label_b, "C_range": list(res.C_range),
                     "crossings": res.crossings, "crossing": res.crossing, "lower_at_start": res.lower_at_start,
                     "lower_at_end": res.lower_at_end, "message": res.message, "n_pairs": res.n_pairs,
                     "fraction_crossing": res.fraction_crossing,
                     "interval": list(res.interval) if res.interval else None, "confidence": res.confidence,
                     "units": {"C": "FLOPs (6ND)", "loss": "nats/token"},
                     "curve": {"C": res.C, "loss_a": res.loss_a, "loss_b": res.loss_b}})
