"""`lmscale sweep plan|run|status|export`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from lmscale.console import RichReporter, console, err_console
from lmscale.errors import LmscaleError

sweep_app = typer.Typer(help="Sweeps over model size N and data D: plan, run (resumable, many workers), status, export.\n\n"
                        "These are ladders of language models for scaling-law fits; `lmscale icl sweep` is different: "
                        "it trains the variants of one ICL config and compares each with the reference learners.\n\n"
                        "Example: lmscale sweep plan configs/emergence/ladder.yaml && lmscale sweep run configs/emergence/ladder.yaml",
                        no_args_is_help=True)


def _fmt(x: float | None, spec: str = ".3g") -> str:
    return "-" if x is None else format(x, spec)


def _duration(s: float) -> str:
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.1f}min" if s < 7200 else f"{s / 3600:.1f}h"


@sweep_app.command("plan")
def plan(
    spec: Path = typer.Argument(..., help="A sweep spec YAML (configs/emergence/ladder.yaml)."),
    calibrate: bool = typer.Option(True, "--calibrate/--no-calibrate", help="Time a matmul to estimate run times."),
):
    """Print the runs a spec expands to (N, D, C, tokens/param, estimated time); trains nothing.

    Example: lmscale sweep plan configs/emergence/ladder.yaml
    """
    from lmscale.sweep.estimate import estimate_seconds, flops_rate
    from lmscale.sweep.runner import plan_sweep

    sp, _, runs, warns = plan_sweep(spec, log=RichReporter(False).log)
    rate = flops_rate() if calibrate else None
    t = Table(title=f"sweep {sp.name}: {len(runs)} runs (N total params, D tokens, C = exact training FLOPs)")
    for col in ("run", "N", "N non-emb", "D", "D/N", "C", "steps", "branch of", "est."):
        t.add_column(col, justify="left" if col in ("run", "branch of") else "right")
    total = 0.0
    for r in runs:
        est = estimate_seconds(r, rate) if rate else None
        total += est or 0.0
        t.add_row(r.run_id, f"{r.n_params:,}", f"{r.n_nonembed:,}", f"{r.tokens:.3g}", f"{r.tokens / r.n_params:.1f}",
                  f"{r.flops:.3g}", str(r.steps), f"{r.trunk} @{r.fork_step}" if r.fork_step is not None else "-",
                  _duration(est) if est is not None else "-")
    console.print(t)
    c_total = sum(r.flops for r in runs if r.fork_step is None) + sum(
        r.flops * (r.steps - r.fork_step) / r.steps for r in runs if r.fork_step is not None)
    line = f"total compute {c_total:.3g} FLOPs (branches count only their cooldown)"
    if rate:
        line += f"; estimated {_duration(total)} at {rate / 1e9:.0f} GFLOP/s effective (a rough figure: measured matmul rate x utilisation)"
    console.print(line)
    for w in warns:
        err_console.print(f"[yellow]warning:[/yellow] {w}", highlight=False)


@sweep_app.command("run")
def run(
    spec_or_dir: Path = typer.Argument(..., help="A sweep spec YAML, or a sweep directory to resume."),
    dir_: Optional[Path] = typer.Option(None, "--dir", help="Sweep directory (default: sweeps/<name>)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Put failed and diverged runs back in the queue."),
    max_jobs: Optional[int] = typer.Option(None, "--max-jobs", min=1, help="Stop after this many jobs."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a live progress bar per run."),
    stale_after: float = typer.Option(
        120.0, "--stale-after", min=1.0,
        help="Seconds without a heartbeat after which a worker on another host loses its job (a live worker on "
             "this host never does). Hosts' clocks must agree to well within this."),
):
    """Train the pending runs of a sweep. Kill it at any time and run it again: it resumes.

    Start several workers on one sweep directory (other terminals or hosts sharing the disk) and
    they split the jobs between them. A job is taken over only when its worker is gone: on the
    same host when its process has ended, on another host after --stale-after seconds without a
    heartbeat (a worker that stalls that long and comes back stops, it never trains a job twice).

    Example: lmscale sweep run configs/emergence/ladder.yaml
    """
    from lmscale.sweep.registry import Registry
    from lmscale.sweep.results import write_results
    from lmscale.sweep.runner import open_sweep, run_sweep

    rep = RichReporter(progress)
    sweep = open_sweep(spec_or_dir, dir_, log=rep.log)
    for w in sweep.warnings:
        rep.warn(w)
    if retry_failed:
        reg = Registry(sweep.registry_path)
        try:
            n = reg.retry_failed()
        finally:
            reg.close()
        rep.log(f"{n} failed or diverged run(s) queued again")
    console.print(f"sweep {sweep.spec.name}: {len(sweep.runs)} runs in {sweep.dir}/")
    try:
        counts = run_sweep(sweep, rep, max_jobs=max_jobs, stale_after=stale_after)
    except KeyboardInterrupt:
        err_console.print(f"interrupted; resume with: lmscale sweep run {sweep.dir}", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    paths = write_results(sweep.dir)
    console.print(_counts_line(counts))
    console.print(f"results: {paths['results_csv']} (also results.json, curves.csv)")
    if counts.get("failed") or counts.get("diverged"):
        raise typer.Exit(1)


def _counts_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "no runs"


@sweep_app.command("status")
def status(sweep_dir: Path = typer.Argument(..., help="A sweep directory.")):
    """Progress of a sweep: run states, final losses and the time left.

    Example: lmscale sweep status sweeps/demo
    """
    from lmscale.sweep.estimate import remaining_seconds
    from lmscale.sweep.registry import REGISTRY, Registry
    from lmscale.sweep.runner import check_registry

    if not (sweep_dir / REGISTRY).is_file():
        raise LmscaleError(f"{str(sweep_dir)!r} has no {REGISTRY}; expected a sweep directory made by `lmscale sweep run`")
    check_registry(sweep_dir)  # its record and run ids, read-only: status never writes
    reg = Registry(sweep_dir / REGISTRY, readonly=True)
    try:
        runs, jobs, counts = reg.runs(), reg.jobs(), reg.counts()
    finally:
        reg.close()
    t = Table(title=f"{sweep_dir}: {len(runs)} runs, {len(jobs)} jobs")
    for col in ("run", "status", "N", "D", "C", "val loss (nats/token)", "best", "error"):
        t.add_column(col, justify="left" if col in ("run", "status", "error") else "right")
    colours = {"done": "green", "failed": "red", "diverged": "red", "running": "cyan", "paused": "cyan"}
    for r in runs:
        p, st = r["plan"], r["status"]
        loss = f"{r['final_loss']:.4f} ± {r['final_loss_se']:.4f}" if r["final_loss"] is not None else "-"
        t.add_row(r["run_id"], f"[{colours.get(st, 'white')}]{st}[/]", f"{p['N']:,}", f"{p['D']:.3g}", f"{p['C']:.3g}",
                  loss, _fmt(r["best_loss"], ".4f"), (r["error"] or "")[:60])
    console.print(t)
    from lmscale.sweep.registry import worker_alive

    workers = sorted({j["worker"] + (" (gone: its job will be taken over)" if worker_alive(j["worker"]) is False else "")
                      for j in jobs if j["status"] == "running" and j["worker"]})
    left = remaining_seconds(runs)
    console.print(_counts_line(counts) + (f"; workers: {', '.join(workers)}" if workers else "")
                  + (f"; about {_duration(left)} of training left at the measured rate" if left else ""))


@sweep_app.command("export")
def export(
    sweep_dir: Path = typer.Argument(..., help="A sweep directory."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory (default: the sweep directory)."),
):
    """Write the results table (results.csv, results.json) and training curves (curves.csv).

    Example: lmscale sweep export sweeps/demo
    """
    from lmscale.sweep.results import write_results

    paths = write_results(sweep_dir, out)
    for p in paths.values():
        console.print(f"wrote {p}")
