"""`lmscale eval RUN_OR_SWEEP --tasks ...`: evaluate a run or every finished run of a sweep.

Register on the main app with ``app.command("eval")(eval_command)``; `eval_app` is the same
command as a stand-alone Typer app (tests run it through `lmscale.console.run_app`, the CLI's one
error handler). JAX is imported only when the command runs.
Writes eval.csv + eval.json (`lmscale.emergence.results`) into the run or sweep directory (or
--out), and for a sweep also the registry's `evals` table, beside the losses.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from lmscale.console import console, err_console
from lmscale.errors import LmscaleError


# Stated limits of `lmscale eval`: far beyond the emergence lab's use (200 examples, batches of
# 64, a few shots, 1,000 resamples, PassUntil budgets of 10,000), well short of exhausting memory.
MAX_EXAMPLES = 100_000
MAX_BATCH = 4_096
MAX_K_SHOT = 1_000
MAX_BOOTSTRAP = 100_000
MAX_PASS_BUDGET = 1_000_000


def _log(msg: str) -> None:
    err_console.print(f"[dim]{msg}[/dim]", highlight=False, soft_wrap=True)


def _sweep_models(sweep_dir: Path) -> list[tuple[Path, str, dict]]:
    """(run dir, run id, plan info) of every finished run of a sweep."""
    from lmscale.sweep.registry import REGISTRY, Registry

    reg = Registry(sweep_dir / REGISTRY)
    try:
        runs = reg.runs()
    finally:
        reg.close()
    out = []
    for r in runs:
        if r["status"] != "done":
            continue
        p = r["plan"]
        info = {k: p[k] for k in ("N", "N_nonembed", "D", "C", "family", "seed") if p.get(k) is not None}
        if r.get("final_loss") is not None:
            info["val_loss"] = float(r["final_loss"])
        out.append((sweep_dir / "runs" / r["run_id"], r["run_id"], info))
    return out


def run_eval(target: Path, tasks: str, k_shot: int = 0, n: int = 200, metrics: str | None = None,
             out: Path | None = None, seed: int = 0, batch_size: int = 64, pass_r: int = 4,
             pass_budget: int = 10_000, n_boot: int = 1000, log=None) -> tuple[list, Path, Path]:
    """What `lmscale eval` does, as a function: (rows, csv path, json path)."""
    from lmscale.emergence.harness import check_metrics, evaluate, model_from_run
    from lmscale.emergence.results import write_eval_table
    from lmscale.data.tasks import parse_tasks
    from lmscale.sweep.registry import REGISTRY, Registry
    from lmscale.train.run import is_run_dir

    task_list = parse_tasks(tasks)  # bad names fail before any model is loaded
    metric_list = check_metrics(metrics)
    # Sizes before anything is generated or allocated (--n 1e9 generated examples for minutes,
    # --batch-size 1e9 and --bootstrap 1e9 asked numpy for ~60 GiB, --k-shot 1e6 never finished).
    for flag, value, lo, hi, what in (("--n", n, 1, MAX_EXAMPLES, "test examples per task"),
                                      ("--batch-size", batch_size, 1, MAX_BATCH, "sequences per forward pass"),
                                      ("--k-shot", k_shot, 0, MAX_K_SHOT, "in-context examples"),
                                      ("--bootstrap", n_boot, 0, MAX_BOOTSTRAP, "bootstrap resamples"),
                                      ("--pass-r", pass_r, 1, MAX_PASS_BUDGET, "passes per instance"),
                                      ("--pass-budget", pass_budget, max(1, pass_r), MAX_PASS_BUDGET,
                                       "samples per instance (at least --pass-r)"),
                                      ("--seed", seed, 0, 2**63 - 1, "a seed")):
        if not lo <= value <= hi:
            raise LmscaleError(f"{flag} {value}; expected {lo:,} to {hi:,} {what}")
    target = Path(target)
    if is_run_dir(target):
        models = [(target, target.name, {})]
        registry = None
    elif (target / REGISTRY).is_file():
        models = _sweep_models(target)
        registry = target / REGISTRY
        if not models:
            raise LmscaleError(f"sweep {str(target)!r} has no finished runs; expected `lmscale sweep run` to finish some first")
    else:
        raise LmscaleError(f"{str(target)!r} is neither a run directory (config.yaml) nor a sweep directory ({REGISTRY})")
    dest = out if out is not None else target
    earlier = _earlier_rows(dest)  # an unreadable table there fails now, before any work
    rows = []
    for run_dir, run_id, info in models:
        model = model_from_run(run_dir, run_id, info)
        rows += evaluate(model, task_list, k_shot, n, seed, metric_list, batch_size, pass_r, pass_budget, n_boot,
                         log=log)
    if not rows:
        raise LmscaleError(f"no evaluation results for {str(target)!r}; expected at least one model and task")
    key = lambda r: (r.run_id, r.task, r.metric, r.k_shot, r.step)  # noqa: E731
    new = {key(r) for r in rows}
    csv_path, json_path = write_eval_table(dest, [r for r in earlier if key(r) not in new] + rows)
    if registry is not None:
        reg = Registry(registry)
        try:
            reg.put_evals([{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                            for k, v in r.to_dict().items()} for r in rows])
        finally:
            reg.close()
    return rows, csv_path, json_path


def _earlier_rows(dest: Path) -> list:
    """Rows of an evaluation table already at `dest` (kept unless re-evaluated); none if there is none."""
    from lmscale.emergence.results import EVAL_CSV, EVAL_JSON, read_eval_table

    dest = Path(dest)
    files = [dest.with_suffix(".csv"), dest.with_suffix(".json")] if dest.suffix.lower() in (".csv", ".json") else [
        dest / EVAL_CSV, dest / EVAL_JSON]
    existing = next((f for f in files if f.is_file()), None)
    return read_eval_table(existing).rows if existing is not None else []


def _print_table(rows: list) -> None:
    from rich.table import Table

    from lmscale.laws.tables import fmt

    metrics = [m for m in ("exact_match", "token_accuracy", "edit_distance", "logprob", "token_prob", "mc_accuracy",
                           "brier", "pass_until") if any(r.metric == m for r in rows)]
    t = Table(title="evaluation: mean over test examples ± half the 95% bootstrap interval")
    for col in ("run", "N (params)", "task", "k", *metrics):
        t.add_column(col, justify="left" if col in ("run", "task") else "right")
    cells: dict = {}
    for r in rows:
        cells.setdefault((r.run_id, r.N, r.task, r.k_shot), {})[r.metric] = r
    for (run, N, task, k), by in cells.items():
        t.add_row(run, fmt(N), task, str(k), *[
            _cell(by[m]) if m in by else "-" for m in metrics])
    console.print(t)


def _cell(r) -> str:
    from lmscale.laws.tables import fmt

    half = (r.ci_high - r.ci_low) / 2
    return fmt(r.value, 3) + (f" ±{fmt(half, 2)}" if math.isfinite(half) else "")


def eval_command(
    run_or_sweep: Path = typer.Argument(..., metavar="RUN_OR_SWEEP", help="A run directory or a sweep directory."),
    tasks: str = typer.Option(..., "--tasks", help="Comma-separated task names: add1..add9 (addN r: reversed answer), mul1..mul3, mod<P>, parity, recall, repeat, unscramble."),
    k_shot: int = typer.Option(0, "--k-shot", help="In-context examples before each question."),
    n: int = typer.Option(200, "--n", help="Test examples per task."),
    metrics: Optional[str] = typer.Option(None, "--metrics", help="Comma-separated subset of exact_match, token_accuracy, edit_distance, logprob, token_prob, mc_accuracy, brier, pass_until (default: all)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Directory (or .csv path) for eval.csv/eval.json (default: RUN_OR_SWEEP)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the examples, demonstrations, PassUntil sampling and bootstrap."),
    batch_size: int = typer.Option(64, "--batch-size", help="Sequences per forward pass."),
    pass_r: int = typer.Option(4, "--pass-r", help="PassUntil: passes to wait for per instance."),
    pass_budget: int = typer.Option(10_000, "--pass-budget", help="PassUntil: most samples per instance."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the intervals."),
):
    """Evaluate a run, or every finished run of a sweep, on synthetic skill tasks under several metrics.

    The emergence lab's harness for language models trained with `lmscale train` or `lmscale sweep run`;
    `lmscale icl eval` is different: it scores an in-context-regression run against reference learners.

    Example: lmscale eval sweeps/skills --tasks add2,add3r,parity,recall --k-shot 0 --n 300
    """
    rows, csv_path, json_path = run_eval(run_or_sweep, tasks, k_shot, n, metrics, out, seed, batch_size, pass_r,
                                         pass_budget, bootstrap, log=_log)
    _print_table(rows)
    console.print(f"results: {csv_path} (also {json_path.name})", highlight=False, soft_wrap=True)


eval_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
eval_app.command("eval")(eval_command)
