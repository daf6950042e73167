"""`lmscale fit`: fit scaling laws to a sweep or a CSV and print/write the results.

Register in lmscale/cli.py with

    from lmscale.laws.cli import fit_app
    app.add_typer(fit_app, name="fit")

which gives `lmscale fit SWEEP_OR_CSV [options]` (the default command, also reachable as
`lmscale fit run ...`) and `lmscale fit compare ...`. Bad input raises `LmscaleError`, which
`lmscale.console.run_app` prints as one line `error: <message>` (exit status 2).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import click
import typer
from rich.table import Table
from typer.core import TyperGroup

from lmscale.console import console, err_console, sub_app
from lmscale.errors import LmscaleError


DEFAULT_COMMAND = "run"
# Parametric fits cost time in proportion to the points (measured on the 2-core VM with the
# Chinchilla law's 4,500-start grid: 4,000 points in 22 s; a bootstrap resample ~1e-5 s per point).
# A 500,000-row CSV ran for minutes without output; above MAX_LAW_POINTS the fit is refused, and
# a fit or bootstrap expected to take over ETA_S says so first.
MAX_LAW_POINTS = 20_000
FIT_S_PER_POINT = 5.5e-3
BOOT_S_PER_POINT = 1e-5
MAX_BOOTSTRAP = 100_000
ETA_S = 10.0


class _DefaultCommandGroup(TyperGroup):
    """A group whose first argument, unless it names a subcommand, goes to the default command.

    Click groups cannot take a positional argument and subcommands at once (`fit compare X`
    would bind "compare" to the argument), so `lmscale fit data.csv --law chinchilla` is parsed
    as `lmscale fit run data.csv --law chinchilla`.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


fit_app = sub_app(
    "Fit scaling laws (Chinchilla Approaches 1-3, Kaplan, data-constrained) to a sweep or a CSV.\n\n"
    "Usage: lmscale fit SWEEP_OR_CSV [OPTIONS] (options: lmscale fit run --help), or lmscale fit compare ...\n\n"
    "Example: lmscale fit sweeps/demo --law chinchilla --bootstrap 1000 --out fit.json",
    cls=_DefaultCommandGroup,
)



def _log(msg: str) -> None:
    err_console.print(f"[dim]{msg}[/dim]", highlight=False, soft_wrap=True)


def _warn(msg: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {msg}", highlight=False, soft_wrap=True)


def _fmt(x: Any) -> str:
    from lmscale.laws.summary import fmt

    return fmt(x)


def _interval(boot, name: str) -> str:
    if boot is None or name not in boot.samples:
        return ""
    lo, hi = boot.interval(name)
    return f"({_fmt(lo)}, {_fmt(hi)})"


def _extrapolation(law, data, holdout: str):
    """(ExtrapolationResult or None, note): the free extrapolation check, or why it was not made."""
    from lmscale.laws.extrapolation import extrapolation_check

    if holdout == "none":
        return None, "extrapolation check: not requested (holdout='none')"
    try:
        return extrapolation_check(law, data, holdout), ""
    except LmscaleError as err:  # too few points left: the fit stands, the check is reported as not made
        return None, str(err)


def _parse_point(text: str | None, names: tuple[str, ...]) -> dict[str, float] | None:
    if text is None:
        return None
    try:
        vals = [float(v) for v in text.replace(":", ",").split(",") if v.strip()]
    except ValueError:
        vals = []
    if len(vals) != len(names) or min(vals, default=0) <= 0:
        raise LmscaleError(f"--predict {text!r}; expected {len(names)} positive number(s) {','.join(names)}, "
                           f"e.g. 7e10,1.4e12")
    return dict(zip(names, vals))


def _check_out(out: Optional[Path], flag: str = "--out", what: str = "a JSON file path") -> None:
    """Output paths are checked before any work, so a bad one fails in one line, not after the fit."""
    if out is not None and out.is_dir():
        raise LmscaleError(f"{flag} {str(out)!r} is a directory; expected {what}")
    if out is not None and out.parent.exists() and not out.parent.is_dir():
        raise LmscaleError(f"{flag} {str(out)!r}: {str(out.parent)!r} is a file; expected {what} in a directory")


def _write_json(out: Optional[Path], payload: dict) -> None:
    if out is None:
        return
    from lmscale.fileio import atomic_write_json

    _check_out(out)
    atomic_write_json(out, payload)
    console.print(f"results written to {out}", highlight=False, soft_wrap=True)


def _law_table(law, boot, tc) -> Table:
    t = Table(title=f"{law.form_.name} law: {law.form_.formula}")
    t.add_column("quantity", style="bold")
    t.add_column("estimate", justify="right")
    if boot is not None:
        t.add_column(f"{boot.confidence:.0%} interval", justify="right")
    for k, v in law.params_.items():
        t.add_row(k, _fmt(v), *([_interval(boot, k)] if boot is not None else []))
    if tc and law.has_allocation():
        from lmscale.laws.summary import DERIVED_HELP

        t.add_section()
        for k, v in law.derived(law.theta_, tc, boot.predict_at if boot is not None else None).items():
            label = f"{k} ({DERIVED_HELP.get(k, '')})"
            t.add_row(label, _fmt(float(v)), *([_interval(boot, k)] if boot is not None else []))
    return t


def _print_law(law, boot, ex, note: str, tc) -> None:
    console.print(_law_table(law, boot, tc))
    lines = [f"data: {law.data_.describe()}",
             f"objective: {law.reduction} of Huber(delta={law.delta:g}) on log-loss residuals = {law.objective_:.6e}; "
             f"{'converged' if law.converged_ else 'NOT converged'} (max |gradient| {law.grad_max_:.1e})",
             f"starts: {law.n_starts_converged_} of {law.n_starts_} ({law.frac_starts_converged_:.1%}) reached the "
             f"optimum (objective within {law.reach_rtol:g} relative)"]
    if tc and law.has_allocation():
        lines.append(f"derived values at target compute C = {_fmt(tc)} FLOPs (C = 6ND)")
    if boot is not None:
        lines.append(f"bootstrap: {boot.n_converged}/{boot.n_resamples} resamples converged (cluster bootstrap over "
                     f"{boot.n_clusters} runs)")
    for ln in lines:
        console.print(ln, highlight=False, soft_wrap=True)
    for n in (boot.notes if boot is not None else []):
        console.print(f"note: {n}", highlight=False, soft_wrap=True)
    if ex is None:
        console.print(note, highlight=False, soft_wrap=True)
        return
    t = Table(title=f"extrapolation: hold out {ex.description}; fit on {ex.n_train}; mean ARE {ex.mean_are:.3%}")
    for col in ("N (params)", "D (tokens)", "C (FLOPs)", "loss", "predicted", "ARE"):
        t.add_column(col, justify="right")
    for r in ex.rows[:20]:
        t.add_row(_fmt(r["N"]), _fmt(r["D"]), _fmt(r["C"]), _fmt(r["loss"]), _fmt(r["predicted"]), f"{r['are']:.3%}")
    console.print(t)
    if len(ex.rows) > 20:
        console.print(f"({len(ex.rows) - 20} more held-out points in the JSON)")


def _print_allocation(est, name: str, boot, tc: float) -> None:
    t = Table(title=name)
    t.add_column("quantity", style="bold")
    t.add_column("estimate", justify="right")
    if boot is not None:
        t.add_column(f"{boot.confidence:.0%} interval", justify="right")
    at = est.optimal_allocation(tc)
    rows = [("a (N_opt ~ C^a)", est.a_, "a"), ("b (D_opt ~ C^b)", est.b_, "b"),
            (f"N_opt at C = {_fmt(tc)}", at["N_opt"], "N_opt"),
            (f"D_opt at C = {_fmt(tc)}", at["D_opt"], "D_opt"),
            ("tokens/param there", at["tokens_per_param"], "tokens_per_param")]
    for label, v, key in rows:
        t.add_row(label, _fmt(float(v)), *([_interval(boot, key)] if boot is not None else []))
    console.print(t)
    console.print(f"N_opt = {_fmt(est.N_coef_)} C^{_fmt(est.a_)}, D_opt = {_fmt(est.D_coef_)} C^{_fmt(est.b_)} (C in FLOPs)",
                  highlight=False)
    if boot is not None:
        console.print(f"bootstrap: {boot.n_converged}/{boot.n_resamples} resamples usable (cluster bootstrap over "
                      f"{boot.n_clusters} runs)", highlight=False)


def _is_planned_csv(text: str | None) -> bool:
    """--predict names a CSV of planned runs (a path ending in .csv, or an existing file) rather than N,D."""
    return text is not None and (text.strip().lower().endswith(".csv") or Path(text).is_file())


def _print_ranking(ranking) -> None:
    head, rows = ranking.table()
    t = Table(title=ranking.title())
    for h in head:
        t.add_column(h, justify="left" if h in ("law", "note") else "right")
    for r in rows:
        t.add_row(*r)
    console.print(t)
    console.print(f"chosen law: {ranking.best.name} (lowest held-out error; its usual output follows)", highlight=False)
    for n in ranking.notes:
        console.print(f"note: {n}", highlight=False, soft_wrap=True)


def _print_predictions(pred, csv_path: Path, json_path: Path) -> None:
    t = Table(title=f"predicted loss of {len(pred.loss)} planned run(s) ({pred.law} law, nats/token)"
              + (f"; {pred.confidence:.0%} bootstrap intervals over {pred.n_converged}/{pred.n_resamples} resamples"
                 if pred.low is not None else ""))
    for col in ("N (params)", "D (tokens)", "predicted loss") + (("interval",) if pred.low is not None else ()):
        t.add_column(col, justify="right")
    for i in range(min(len(pred.loss), 20)):
        cells = [_fmt(pred.planned.N[i]), _fmt(pred.planned.D[i]), _fmt(pred.loss[i])]
        if pred.low is not None:
            cells.append(f"({_fmt(pred.low[i])}, {_fmt(pred.high[i])})")
        t.add_row(*cells)
    console.print(t)
    if len(pred.loss) > 20:
        console.print(f"({len(pred.loss) - 20} more rows in the CSV)", highlight=False)
    for n in pred.notes:
        console.print(f"note: {n}", highlight=False, soft_wrap=True)
    console.print(f"predictions written to {csv_path} and {json_path}", highlight=False, soft_wrap=True)


def _profile_if_E_at_bound(law, data):
    """A Chinchilla fit whose E fell below the profiled floor is not an estimate of E: profile E instead."""
    from lmscale.laws.profile import FLOOR_FRACTION, profile_E

    if law.form_.name not in ("chinchilla", "chinchilla-shared") or not law.params_["E"] < FLOOR_FRACTION * data.loss.min():
        return None
    _warn(f"the fitted E = {_fmt(law.params_['E'])} is at its bound, not an estimate; profiling E over its plausible range")
    res = profile_E(data)
    console.print(res.summary(), highlight=False, soft_wrap=True)
    return res


@fit_app.command(DEFAULT_COMMAND)
def fit_command(
    path: Path = typer.Argument(..., metavar="SWEEP_OR_CSV", help="A sweep directory (results.csv/curves.csv) or a CSV with N, D, loss."),
    law: str = typer.Option("chinchilla", "--law", help="chinchilla | chinchilla-shared | kaplan-n | kaplan-d | kaplan-c | kaplan-joint | data-constrained (Approach 3), or auto: rank the joint laws by held-out extrapolation error and use the best."),
    approach: int = typer.Option(3, "--approach", help="1 = envelope of training curves, 2 = IsoFLOP parabolas, 3 = parametric law."),
    isoflop_method: Optional[str] = typer.Option(None, "--isoflop-method", help="Approach 2 vertex per budget: local (default: a parabola within +-1.5 in ln N of the lowest loss) | akima | spline (Porian et al. 2024) | parabola (one over the whole profile)."),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Cluster-bootstrap resamples for intervals (0 = none; 1000 recommended)."),
    holdout: str = typer.Option("largest", "--holdout", help="Extrapolation check: largest | largest-compute | none."),
    target_compute: Optional[float] = typer.Option(None, "--target-compute", help="FLOPs at which to report N_opt, D_opt, tokens/param (default 10x the largest C)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the results as JSON here."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    family: Optional[str] = typer.Option(None, "--family", help="Use only rows of this model family."),
    confidence: float = typer.Option(0.95, "--confidence", help="Interval coverage."),
    predict: Optional[str] = typer.Option(None, "--predict", help="Also predict the loss at N,D (e.g. 7e10,1.4e12), with an interval; or at every planned run of a CSV (header N,D; bootstrap intervals, 200 resamples unless --bootstrap)."),
    predict_out: Optional[Path] = typer.Option(None, "--predict-out", help="With --predict PLANNED.csv: write the predictions here (.csv, and .json beside it; default PLANNED.predicted.csv/.json)."),
    drop_highest: int = typer.Option(0, "--drop-highest", help="Drop the K highest losses first (Epoch's outlier policy used K=5)."),
    frontier_csv: Optional[Path] = typer.Option(None, "--frontier-csv", help="Write the compute-optimal frontier (with bootstrap band) as CSV."),
):
    """Fit a scaling law (default command: `lmscale fit SWEEP_OR_CSV`).

    Fits to finished runs and trains nothing; `lmscale sweep run` is the command that trains a sweep.

    Example: lmscale fit sweeps/demo --law chinchilla --bootstrap 1000 --target-compute 1e21 --out fit.json
    """
    _fit(path, law, approach, bootstrap, holdout, target_compute, out, seed, family, confidence, predict,
         drop_highest, frontier_csv, predict_out, isoflop_method=isoflop_method)


def check_law_size(data, n_boot: int, law_name: str) -> None:
    """Refuse a parametric fit above MAX_LAW_POINTS; announce one expected to take long (see above)."""
    n = len(data)
    if n > MAX_LAW_POINTS:
        raise LmscaleError(f"{data.source}: {n:,} points for a {law_name} law fit; expected at most {MAX_LAW_POINTS:,} "
                           f"(~{FIT_S_PER_POINT * 1e3:.1f} ms per point: {n:,} would take ~{n * FIT_S_PER_POINT / 60:.0f} "
                           "min); fit one point per run (final losses), or --approach 1 for training curves")
    eta = n * FIT_S_PER_POINT
    if eta > ETA_S:
        _log(f"fitting {n:,} points: about {eta:.0f} s on a 2-core VM")
    if n_boot and n * n_boot * BOOT_S_PER_POINT > ETA_S:
        _log(f"the bootstrap ({n_boot:,} resamples of {n:,} points) will take about {n * n_boot * BOOT_S_PER_POINT:.0f} s more")


def _check_common(bootstrap: int, confidence: float, target_compute: Optional[float], drop_highest: int) -> None:
    if bootstrap < 0 or bootstrap == 1 or bootstrap > MAX_BOOTSTRAP:
        raise LmscaleError(f"--bootstrap {bootstrap}; expected 0 (none) or 2 to {MAX_BOOTSTRAP:,} resamples")
    if not 0 < confidence < 1:
        raise LmscaleError(f"--confidence {confidence}; expected a fraction such as 0.95")
    if target_compute is not None and not target_compute > 0:
        raise LmscaleError(f"--target-compute {target_compute}; expected a positive number of FLOPs such as 1e21")
    if drop_highest < 0:
        raise LmscaleError(f"--drop-highest {drop_highest}; expected 0 or a positive count")


def _fit(path, law_name, approach, n_boot, holdout, target_compute, out, seed, family, confidence, predict,
         drop_highest, frontier_csv, predict_out=None, isoflop_method=None) -> None:
    from lmscale.laws.bootstrap import bootstrap
    from lmscale.laws.data import load_curves, load_scaling_data
    from lmscale.laws.estimators import LAWS, make_law
    from lmscale.laws.extrapolation import HOLDOUTS
    from lmscale.laws.frontier import default_compute
    from lmscale.laws.summary import jsonable, to_dict

    _check_common(n_boot, confidence, target_compute, drop_highest)
    if approach not in (1, 2, 3):
        raise LmscaleError(f"--approach {approach}; expected 1 (envelope), 2 (IsoFLOP) or 3 (parametric law)")
    if isoflop_method is not None:
        from lmscale.laws.vertex import METHODS

        if isoflop_method not in METHODS:
            raise LmscaleError(f"--isoflop-method {isoflop_method!r}; expected one of {', '.join(METHODS)}")
        if approach != 2:
            raise LmscaleError(f"--isoflop-method {isoflop_method} applies to Approach 2; expected --approach 2")
    auto = law_name == "auto"
    if law_name not in LAWS and not auto:
        raise LmscaleError(f"--law {law_name!r}; expected one of {', '.join(LAWS)}, or auto")
    if holdout not in (*HOLDOUTS, "none"):
        raise LmscaleError(f"--holdout {holdout!r}; expected one of {', '.join((*HOLDOUTS, 'none'))}")
    if auto and approach == 3 and holdout == "none":
        raise LmscaleError("--law auto ranks laws by extrapolation; expected --holdout largest or largest-compute, not none")
    _check_out(out)
    _check_out(frontier_csv, "--frontier-csv", "a CSV file path")
    planned = planned_paths = None
    if _is_planned_csv(predict):
        from lmscale.laws.planned import default_outputs, load_planned

        if approach != 3:
            raise LmscaleError(f"--predict {predict!r} (planned runs) needs a parametric law, --approach 3")
        planned_paths = default_outputs(predict, predict_out)
        _check_out(planned_paths[0], "--predict-out", "a CSV file path")
        _check_out(planned_paths[1], "--predict-out", "a CSV file path (its .json beside it)")
        planned = load_planned(predict)  # bad CSVs fail here: before any fit, nothing written
        predict = None
    elif predict_out is not None:
        raise LmscaleError(f"--predict-out {str(predict_out)!r} needs --predict PLANNED.csv (a CSV of planned runs)")
    if frontier_csv is not None and approach == 3 and not auto and not make_law(law_name).has_allocation():
        raise LmscaleError(f"--frontier-csv needs a joint law of N and D; the {law_name} law has no frontier")
    # Progress lines on stderr come after each fit succeeds: an error is then the only line there.
    command = {"path": str(path), "law": law_name, "approach": approach, "bootstrap": n_boot, "holdout": holdout,
               "target_compute": target_compute, "seed": seed, "family": family, "confidence": confidence,
               "drop_highest": drop_highest, **({"isoflop_method": isoflop_method or "local"} if approach == 2 else {})}
    t0 = time.perf_counter()
    if approach == 1:
        from lmscale.laws.envelope import EnvelopeAllocation

        data = load_curves(path, family)
        est = EnvelopeAllocation().fit(data)
        tc = target_compute or default_compute(data)
        _log(f"Approach 1: envelope of training curves, {data.describe()}")
        boot = bootstrap(est, n_boot, seed=seed, confidence=confidence, compute=tc) if n_boot else None
        _print_allocation(est, f"Approach 1 (envelope of {est.n_curves_} training curves)", boot, tc)
        for w in est.warnings_:
            _warn(w)
        _write_json(out, {"command": command, **to_dict(est, boot, compute=tc)})
        return
    data = load_scaling_data(path, family)
    if drop_highest:
        import numpy as np

        if drop_highest >= len(data):
            raise LmscaleError(f"--drop-highest {drop_highest} would drop all {len(data)} points")
        data = data.subset(data.loss < np.sort(data.loss)[-drop_highest])
    if approach == 2:
        from lmscale.laws.isoflop import IsoFLOPAllocation

        from lmscale.laws.summary import vertex_intervals

        est = IsoFLOPAllocation(method=isoflop_method or "local").fit(data)
        tc = target_compute or default_compute(data)
        _log(f"Approach 2: IsoFLOP profiles ({est.method} vertices), {data.describe()}")
        boot = bootstrap(est, n_boot, seed=seed, confidence=confidence, compute=tc) if n_boot else None
        iv = vertex_intervals(est, boot)
        t = Table(title=f"IsoFLOP budgets ({est.n_budgets_used_} of {len(est.budgets_)} used; vertex method {est.method})")
        cols = ["budget C (FLOPs)", "points", "N range", "N_opt", "D_opt", "loss at vertex", "edge", "used"]
        if iv is not None:
            cols[4:4] = [f"N_opt {confidence:.0%} CI", "tokens/param", f"tokens/param {confidence:.0%} CI"]
        for col in cols:
            t.add_column(col, justify="right")
        ci = lambda v: f"({_fmt(v[0])}, {_fmt(v[1])})" if v else "-"  # noqa: E731
        for j, b in enumerate(est.budgets_):
            cells = [_fmt(b.C), str(b.n_points), f"[{_fmt(b.N_min)}, {_fmt(b.N_max)}]", _fmt(b.N_opt), _fmt(b.D_opt),
                     _fmt(b.loss_opt), "yes" if b.edge else "no", "yes" if b.used else "no"]
            if iv is not None:
                cells[4:4] = [ci(iv[j]["N_opt_interval"]), _fmt(b.D_opt / b.N_opt) if b.used else "-",
                              ci(iv[j]["tokens_per_param_interval"])]
            t.add_row(*cells)
        console.print(t)
        _print_allocation(est, f"Approach 2 (IsoFLOP, {est.method} vertices)", boot, tc)
        for w in est.warnings_:
            _warn(w)
        _write_json(out, {"command": command, **to_dict(est, boot, compute=tc)})
        return
    point = _parse_point(predict, ("N", "D") if auto else make_law(law_name)._make_form().variables) if predict else None
    if planned is not None and n_boot == 0:
        n_boot = 200
        command["bootstrap"] = n_boot
        _log("--predict with planned runs and no --bootstrap: using 200 bootstrap resamples for the intervals")
    check_law_size(data, n_boot, law_name)
    ranking = None
    if auto:
        from lmscale.laws.select import rank_laws

        ranking = rank_laws(data, holdout=holdout)
        best = ranking.best
        law, law_name, ex, note = best.law, best.name, best.extrapolation, ""
        _log(f"ranked {len(ranking.entries)} laws by held-out extrapolation error on {data.describe()} in "
             f"{time.perf_counter() - t0:.1f} s; chosen: {law_name}")
        _print_ranking(ranking)
    else:
        law = make_law(law_name)
        law.fit(data)
        _log(f"fitted the {law_name} law to {data.describe()}, from {law.n_starts_} starts in {time.perf_counter() - t0:.1f} s")
        ex, note = _extrapolation(law, data, holdout)
    tc = target_compute or default_compute(data)
    boot = None
    if n_boot:
        t1 = time.perf_counter()
        boot = bootstrap(law, n_boot, seed=seed, confidence=confidence, compute=tc, predict_at=point)
        _log(f"bootstrap: {n_boot} resamples in {time.perf_counter() - t1:.1f} s")
    _print_law(law, boot, ex, note, tc)
    if point is not None and boot is None:
        console.print(f"predicted loss at {point}: {_fmt(float(law.derived(law.theta_, None, point)['loss_at']))} nats/token",
                      highlight=False)
    if not law.converged_:
        _warn("the best fit did not pass the convergence test; see 'message' in the JSON")
    profile = _profile_if_E_at_bound(law, data)
    payload = {"command": command, **to_dict(law, boot, ex if ex is not None else note, compute=tc)}
    if ranking is not None:
        payload["ranking"] = ranking.to_dict()
    if profile is not None:
        payload["E_profile"] = profile.to_dict()
    if planned is not None:
        from lmscale.laws.planned import predict_planned

        pred = predict_planned(law, planned, boot)
        pred.write(*planned_paths)
        _print_predictions(pred, *planned_paths)
        payload["predictions"] = {"planned": planned.source, "csv": str(planned_paths[0]), "json": str(planned_paths[1]),
                                  "n": len(planned)}
    if point is not None:
        payload["predict_at"] = jsonable({**point, "loss": float(law.derived(law.theta_, None, point)["loss_at"]),
                                          "interval": list(boot.interval("loss_at")) if boot is not None else None})
    if frontier_csv is not None:
        if not law.has_allocation():
            raise LmscaleError(f"--frontier-csv needs a joint law of N and D; the {law_name} law has no frontier")
        fr = law.frontier(C_max=tc, bootstrap=boot)
        fr.to_csv(frontier_csv)
        console.print(f"frontier written to {frontier_csv}", highlight=False, soft_wrap=True)
    _write_json(out, payload)


@fit_app.command("compare")
def compare_command(
    paths: list[Path] = typer.Argument(..., metavar="SWEEP_OR_CSV [SWEEP_OR_CSV_B]", help="One data set with two families, or two data sets."),
    family_a: Optional[str] = typer.Option(None, "--family-a", help="Family A (required with one data set)."),
    family_b: Optional[str] = typer.Option(None, "--family-b", help="Family B (required with one data set)."),
    law: str = typer.Option("chinchilla", "--law", help="A joint law: chinchilla | kaplan-joint | data-constrained."),
    bootstrap: int = typer.Option(200, "--bootstrap", help="Bootstrap resamples per family for the crossing interval (0 = none)."),
    c_min: Optional[float] = typer.Option(None, "--c-min", help="Smallest compute (FLOPs) to search (default: smallest in the data)."),
    c_max: Optional[float] = typer.Option(None, "--c-max", help="Largest compute (FLOPs) to search (default: 1000x the largest in the data)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the comparison as JSON here."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    confidence: float = typer.Option(0.95, "--confidence", help="Interval coverage."),
):
    """Where do two families' compute-optimal loss curves cross?

    Compares the fitted scaling laws of two model families; `lmscale icl compare` is different: it
    measures how close one ICL model's predictions are to each reference learner's.

    Example: lmscale fit compare sweeps/ab --family-a baseline --family-b mup --bootstrap 200
    """
    _compare(paths, family_a, family_b, law, bootstrap, c_min, c_max, out, seed, confidence)


def _compare(paths, family_a, family_b, law_name, n_boot, c_min, c_max, out, seed, confidence) -> None:
    from lmscale.laws.compare import compare
    from lmscale.laws.data import load_scaling_data
    from lmscale.laws.estimators import LAWS, make_law
    from lmscale.laws.frontier import default_compute
    from lmscale.laws.summary import to_dict

    _check_common(n_boot, confidence, None, 0)
    if law_name not in LAWS:
        raise LmscaleError(f"--law {law_name!r}; expected one of {', '.join(LAWS)}")
    if len(paths) == 1:
        if not family_a or not family_b:
            raise LmscaleError("one data set given; expected --family-a and --family-b naming two families in it")
        data = load_scaling_data(paths[0])
        da, db = data.select_family(family_a), data.select_family(family_b)
        labels = (family_a, family_b)
    elif len(paths) == 2:
        da, db = load_scaling_data(paths[0], family_a), load_scaling_data(paths[1], family_b)
        labels = (family_a or paths[0].stem, family_b or paths[1].stem)
        if labels[0] == labels[1]:
            labels = (labels[0] + " (A)", labels[1] + " (B)")
    else:
        raise LmscaleError(f"{len(paths)} paths given; expected one data set (with --family-a/--family-b) or two")
    rng = None
    if c_min is not None or c_max is not None:
        lo = c_min if c_min is not None else float(min(da.C.min(), db.C.min()))
        hi = c_max if c_max is not None else float(1e3 * max(da.C.max(), db.C.max()))
        rng = (lo, hi)
    fits = []
    _check_out(out)
    for label, d in zip(labels, (da, db)):
        check_law_size(d, n_boot, law_name)
        fits.append(make_law(law_name).fit(d))
        _log(f"fitted the {law_name} law to {label}: {d.describe()}")
    res = compare(fits[0], fits[1], labels=labels, C_range=rng, n_resamples=n_boot, seed=seed, confidence=confidence)
    t = Table(title=f"{labels[0]} vs {labels[1]}: compute-optimal loss ({law_name} law)")
    t.add_column("quantity", style="bold")
    for lab in labels:
        t.add_column(lab, justify="right")
    for k in fits[0].params_:
        t.add_row(k, _fmt(fits[0].params_[k]), _fmt(fits[1].params_[k]))
    for k in ("a", "b", "tokens_per_param"):
        va = fits[0].derived(fits[0].theta_, default_compute(fits[0].data_)).get(k)
        vb = fits[1].derived(fits[1].theta_, default_compute(fits[1].data_)).get(k)
        if va is not None:
            t.add_row(k, _fmt(float(va)), _fmt(float(vb)))
    console.print(t)
    console.print(res.message, highlight=False, soft_wrap=True)
    if res.fraction_crossing is not None:
        line = f"bootstrap: {res.fraction_crossing:.1%} of {res.n_pairs} resample pairs cross in range"
        if res.interval:
            line += f"; {confidence:.0%} interval of the crossing ({_fmt(res.interval[0])}, {_fmt(res.interval[1])}) FLOPs"
        console.print(line, highlight=False, soft_wrap=True)
    payload = {"command": {"paths": [str(p) for p in paths], "family_a": family_a, "family_b": family_b, "law": law_name,
                           "bootstrap": n_boot, "seed": seed},
               "fits": {labels[0]: to_dict(fits[0]), labels[1]: to_dict(fits[1])}, "comparison": to_dict(res)}
    _write_json(out, payload)
