"""`lmscale emergence analyze|synthetic|training-time` and `lmscale emergence ledger add|show`.

Register in lmscale/cli.py with

    from lmscale.emergence.cli import emergence_app
    app.add_typer(emergence_app, name="emergence")

(`ledger_app` is already a sub-group of `emergence_app`; lmscale/cli.py also keeps it as the hidden
alias `lmscale ledger`). Bad input raises `LmscaleError`, which `lmscale.console.run_app` prints
as one line `error: <message>` (exit status 2).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from lmscale.console import console, err_console, sub_app
from lmscale.errors import LmscaleError

emergence_app = sub_app(
    "Emergence detection on an evaluation table: per-task verdicts with evidence, mirage figures, forecasts; "
    "training-time emergence; the ability ledger.\n\n"
    "Evaluate models first with `lmscale eval`; `lmscale demo emergence` runs the whole lab end to end.\n\n"
    "Example: lmscale emergence synthetic --out /tmp/syn && lmscale emergence analyze /tmp/syn",
)
ledger_app = sub_app(
    "The ability ledger: which tasks pass at which scale, across sweeps.\n\n"
    "Example: lmscale emergence ledger add sweeps/demo && lmscale emergence ledger show",
)
emergence_app.add_typer(ledger_app, name="ledger")



def _fmt(x) -> str:
    from lmscale.laws.tables import fmt

    return fmt(x, 3)


def _default_out(path: Path) -> Path:
    return (path if path.is_dir() else path.parent) / "emergence"


def verdicts_csv(rows: list[dict]) -> str:
    """The verdict summary rows as CSV text (empty cells for missing values), as `analyze` writes it."""
    from lmscale.fileio import csv_cell

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: csv_cell(v) for k, v in r.items()})
    return buf.getvalue()


@emergence_app.command("analyze")
def analyze(
    path: Path = typer.Argument(..., metavar="EVAL_CSV_OR_DIR", help="An evaluation table (eval.csv/.json) or a directory holding one."),
    x: str = typer.Option("N", "--x", help="Scale axis: N | C | val_loss | step."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory (default: emergence/ beside the table)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the B, L and B/L intervals."),
    ratio_min: float = typer.Option(1.5, "--ratio-min", help="B/L at or above which a curve counts as sharp (linear = 1)."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    family: Optional[str] = typer.Option(None, "--family", help="Use only rows of this model family."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write the mirage and loss figures."),
):
    """Per-task verdicts (smooth, emergent, emergent-under-this-metric-only, not-yet) with the evidence,
    figures and forecasts checked on the held-out largest model.

    Example: lmscale emergence analyze sweeps/demo/eval.csv --x N --out results/emergence
    """
    _analyze(path, x, out, bootstrap, ratio_min, seed, family, figures)


def _analyze(path, x, out, n_boot, ratio_min, seed, family, figures) -> None:
    from lmscale.emergence.detect import analyze_table
    from lmscale.emergence.forecast import forecast_task
    from lmscale.emergence.results import X_AXES, read_eval_table
    from lmscale.fileio import atomic_write_json, atomic_write_text

    if x not in X_AXES:
        raise LmscaleError(f"--x {x!r}; expected one of {', '.join(X_AXES)}")
    if n_boot < 0 or n_boot == 1:
        raise LmscaleError(f"--bootstrap {n_boot}; expected 0 (none) or at least 2 resamples")
    if not ratio_min >= 1:
        raise LmscaleError(f"--ratio-min {ratio_min}; expected a number >= 1 (a linear curve has B/L = 1)")
    table = read_eval_table(path)
    if family is not None:
        table = table.filter(family=family)
    too_few: list[str] = []
    verdicts = analyze_table(table, x=x, n_boot=n_boot, seed=seed, ratio_min=ratio_min, skipped=too_few)
    for note in too_few:
        err_console.print(f"[yellow]warning:[/yellow] skipped: {note}", highlight=False, soft_wrap=True)
    out = out if out is not None else _default_out(Path(path))
    if out.exists() and not out.is_dir():
        raise LmscaleError(f"--out {str(out)!r} is a file; expected a directory")

    t = Table(title=f"emergence along {x}: {len(verdicts)} task(s) from {table.source}")
    for col in ("task", "k", "verdict", "metric", "B", "L", "B/L (95% CI)", "ΔAIC", "onset", "first > chance",
                "per-token R²"):
        t.add_column(col, justify="left" if col in ("task", "verdict", "metric") else "right")
    summary = [v.summary_row() for v in verdicts]
    for s in summary:
        t.add_row(s["task"], str(s["k_shot"]), s["verdict"], s["metric"], _fmt(s["B"]), _fmt(s["L"]),
                  _fmt(s["B_over_L"]) + (f" ({_fmt(s['B_over_L_low'])}, {_fmt(s['B_over_L_high'])})"
                                         if s["B_over_L_low"] is not None else " (no CI)"),
                  _fmt(s["delta_aic"]), _fmt(s["onset"]), _fmt(s["first_above_chance"]),
                  _fmt(s["per_token_power_law_r2"]))
    console.print(t)
    for v in verdicts:
        console.print(f"{v.task}: {v.verdict}: {v.explanation}", highlight=False, soft_wrap=True)

    forecasts, skipped = [], []
    if x != "step":
        for task in table.tasks():
            for k in table.k_shots(task):
                fs, sk = forecast_task(table, task, x="N" if x == "val_loss" else x, k_shot=k)
                forecasts += fs
                skipped += [f"{task}: {s}" for s in sk]
    if forecasts:
        ft = Table(title="forecasts of the held-out largest model (fit on the smaller ones)")
        for col in ("task", "route", "metric", "held-out x", "predicted", "measured", "|error|"):
            ft.add_column(col, justify="left" if col in ("task", "route", "metric") else "right")
        for f in forecasts:
            ft.add_row(f.task, f.route, f.metric, _fmt(f.held_out_x), _fmt(f.predicted), _fmt(f.actual),
                       _fmt(f.abs_error))
        console.print(ft)

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "verdicts.json", {"source": table.source, "x": x, "bootstrap": n_boot,
                                              "ratio_min": ratio_min, "skipped": too_few,
                                              "verdicts": [v.to_dict() for v in verdicts]})
    atomic_write_text(out / "verdicts.csv", verdicts_csv(summary))
    atomic_write_json(out / "forecasts.json", {"forecasts": [f.to_dict() for f in forecasts], "skipped": skipped})
    written = ["verdicts.json", "verdicts.csv", "forecasts.json"]
    if figures:
        written += _figures(table, verdicts, x, out)
    console.print(f"written to {out}: {', '.join(written)}", highlight=False, soft_wrap=True)


def _figures(table, verdicts, x, out: Path) -> list[str]:
    from lmscale.emergence import figures as F

    names = []
    for v in verdicts:
        f = F.mirage_figure(table, v.task, out, x=x, k_shot=v.k_shot, metrics=list(v.curves))
        names.append(f.png.name)
    has_loss = any(math.isfinite(r.val_loss) for r in table.rows)
    if has_loss and x in ("N", "C", "D"):
        names.append(F.loss_and_transitions_figure(table, out, x=x).png.name)
    if has_loss and x != "step":
        th = {v.task: v.curves[v.primary_metric].loss_threshold for v in verdicts}
        names.append(F.metric_vs_loss_figure(table, out, {k: t for k, t in th.items() if t is not None}).png.name)
    return names


@emergence_app.command("synthetic")
def synthetic(
    out: Path = typer.Option(..., "--out", help="Directory for eval.csv and eval.json."),
    examples: int = typer.Option(500, "--examples", help="Examples per task and scale (binomial noise); 0 = exact expectations."),
    scales: int = typer.Option(13, "--scales", help="Model sizes, log-spaced over 1e4..1e10 parameters."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
):
    """Write a synthetic evaluation table with the mirage arithmetic (known truth), to try `analyze` without training.

    Example: lmscale emergence synthetic --out /tmp/syn && lmscale emergence analyze /tmp/syn
    """
    from lmscale.emergence.results import write_eval_table
    from lmscale.emergence.synthetic import DEFAULT_TASKS, ladder, mirage_rows

    # Stated limits: binomial counts of examples x answer tokens stay far inside int64, and the table
    # (scales x tasks x metrics rows) stays a few MB.
    if not 0 <= examples <= 10**9:
        raise LmscaleError(f"--examples {examples}; expected 0 (exact expectations) to 1,000,000,000")
    if not 2 <= scales <= 10_000:
        raise LmscaleError(f"--scales {scales}; expected 2 to 10,000 model sizes (detection needs 4)")
    if not 0 <= seed < 2**63:
        raise LmscaleError(f"--seed {seed}; expected a non-negative integer below 2^63")
    paths = write_eval_table(out, mirage_rows(ladder(scales), n_examples=examples, seed=seed))
    truth = ", ".join(f"{t.name} ({'per-token power law' if t.kind == 'power' else 'per-token jump'}, L={t.L})"
                      for t in DEFAULT_TASKS)
    console.print(f"tasks: {truth}", highlight=False, soft_wrap=True)
    console.print(f"written to {paths[0]} and {paths[1]}", highlight=False, soft_wrap=True)


def _parse_thresholds(items: list[str]) -> dict[str, float]:
    out = {}
    for it in items:
        name, _, val = it.partition("=")
        try:
            out[name.strip()] = float(val)
        except ValueError:
            raise LmscaleError(f"--threshold {it!r}; expected METRIC=VALUE, e.g. exact_match=0.5") from None
    return out


@ledger_app.command("add")
def ledger_add(
    path: Path = typer.Argument(..., metavar="EVAL_CSV_OR_DIR", help="An evaluation table or a directory holding one."),
    ledger: Optional[Path] = typer.Option(None, "--ledger", help="Ledger file (default: ledger.sqlite in the lmscale cache)."),
    source: Optional[str] = typer.Option(None, "--source", help="Name of this sweep in the ledger (default: the table's path)."),
    threshold: list[str] = typer.Option([], "--threshold", help="Pass threshold METRIC=VALUE (repeatable; default half-way from chance to perfect)."),
):
    """Record an evaluation table in the ledger (re-adding the same source updates, never duplicates).

    Example: lmscale emergence ledger add sweeps/demo --threshold exact_match=0.8
    """
    from lmscale.emergence.ledger import Ledger
    from lmscale.emergence.results import read_eval_table

    thresholds = _parse_thresholds(threshold)  # the arguments first, then the files
    table = read_eval_table(path)
    src = source or str(Path(table.source).resolve())
    with Ledger(ledger) as led:
        n = led.add(table, source=src, thresholds=thresholds)
        console.print(f"{n} rows from {src} recorded in {led.path} ({led.count()} in all)", highlight=False,
                      soft_wrap=True)


@ledger_app.command("show")
def ledger_show(
    task: Optional[str] = typer.Option(None, "--task", help="Only this task."),
    metric: Optional[str] = typer.Option("exact_match", "--metric", help="Only this metric ('all' for every one)."),
    ledger: Optional[Path] = typer.Option(None, "--ledger", help="Ledger file (default: ledger.sqlite in the lmscale cache)."),
    grid: Optional[Path] = typer.Option(None, "--grid", help="Also draw the ledger grid (PNG + CSV) here."),
):
    """Which tasks flipped from fail to pass at which scale, and which are not yet.

    Example: lmscale emergence ledger show --metric exact_match --grid ledger.png
    """
    from lmscale.emergence.ledger import Ledger
    from lmscale.emergence.results import METRICS

    m = None if metric in (None, "all") else metric
    if m is not None and m not in METRICS:
        raise LmscaleError(f"--metric {metric!r}; expected one of {', '.join(METRICS)} or all")
    with Ledger(ledger) as led:
        stats = led.status(task, m)
        path = led.path
    if not stats:
        raise LmscaleError(f"the ledger {str(path)!r} has no {m or ''} entries; run `lmscale emergence ledger add` first")
    t = Table(title=f"ability ledger {path}")
    for col in ("task", "metric", "k", "family", "state", "flipped at N", "flipped at C (FLOPs)", "scales",
                "pass/fail by scale", "best", "threshold", "sources"):
        t.add_column(col, justify="left" if col in ("task", "metric", "family", "state", "pass/fail by scale") else "right")
    for s in stats:
        marks = "".join("?" if p is None else ("+" if p else "-") for p in s.passed)
        t.add_row(s.task, s.metric, str(s.k_shot), s.family, s.state, _fmt(s.flip_N), _fmt(s.flip_C),
                  str(len(s.scales)), marks, _fmt(s.best_value), _fmt(s.threshold), str(s.sources))
    console.print(t)
    if grid is not None:
        from lmscale.emergence.figures import ledger_grid_figure

        f = ledger_grid_figure(stats, grid)
        console.print(f"grid written to {f.png} and {f.csv}", highlight=False, soft_wrap=True)


@emergence_app.command("training-time")
def training_time(
    experiment: str = typer.Argument(..., metavar="EXPERIMENT", help="induction (2-layer vs 1-layer phase change) | grokking (modular addition)."),
    out: Path = typer.Option(..., "--out", help="Output directory: curves CSV/PNG, eval.csv along step, summary JSON."),
    set_: list[str] = typer.Option([], "--set", help="Override a setting, e.g. --set steps=400 (repeatable; see the module lmscale.emergence.training_time)."),
):
    """Emergence along training steps of one model: the induction-head phase change or grokking (CPU, minutes).

    Example: lmscale emergence training-time induction --out runs/induction --set steps=800
    """
    from lmscale.config import apply_overrides
    from lmscale.console import RichReporter
    from lmscale.emergence.training_time import run_experiment

    overrides = apply_overrides({}, set_)
    rep = RichReporter(show_progress=False)
    res = run_experiment(experiment, out, overrides, progress=rep.log)
    t = Table(title=f"{experiment}: emergence along training steps")
    for col in ("model", "verdict", "judged", "B/L", "transition step", "10-90% width (steps)", "final accuracy",
                "detail"):
        t.add_column(col, justify="left" if col in ("model", "verdict", "judged", "detail") else "right")
    for name, r in res["summary"].items():
        detail = (f"loss on repeated half {r['loss_repeated_start']:.3g} -> {r['loss_repeated_end']:.3g} nats/token"
                  if experiment == "induction" else
                  f"train acc 99% at step {r['train_acc_99_step']}, test acc 95% at step {r['test_acc_95_step']}")
        t.add_row(name, r["verdict"], r["judged"], _fmt(r["B_over_L"]),
                  _fmt(r["transition_step"]), _fmt(r["width_10_90_steps"]), _fmt(r["final"]), detail)
    console.print(t)
    console.print(f"written to {res['out']} (figure {res['figure']})", highlight=False, soft_wrap=True)


__all__ = ["emergence_app", "ledger_app"]
