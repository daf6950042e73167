"""Sweep directories and the local runner.

A sweep directory holds ``sweep.yaml`` (the spec with its base config inlined, so the directory
is self-contained), ``registry.sqlite`` (run states and figures) and ``runs/<run_id>/`` (ordinary
run directories). `open_sweep` creates or reopens one; `run_sweep` claims jobs until none is left.

A job is trained in order of its token budgets. For a WSD job the trunk (the longest budget) is
paused at each shorter budget's cooldown start, the branch is forked from the trunk's checkpoint
at that step (copied atomically into its own run directory), trained to the end of its cooldown,
and the trunk continues. Every step is idempotent, so a worker killed anywhere resumes the job
without retraining anything that finished.

A worker holds its job through the registry's claim and the job's lease file (`lease.Hold`) and
checks that it still does before each stage (trunk to a fork, a fork, a group of runs), before
recording each result, and at every training step (through its reporter), so a worker that lost
its job (stalled on another host past the lease) stops instead of training it again. Run ids
read from the registry must be run names that resolve to a directory inside ``runs/``.
"""

from __future__ import annotations

import copy
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lmscale.config import config_diff, safe_load_unique
from lmscale.data.prepare import prepare_data
from lmscale.errors import DivergedError, LmscaleError
from lmscale.fileio import atomic_write_yaml
from lmscale.sweep.lease import LEASES, ClaimLost, Hold, Lease, acquire
from lmscale.sweep.registry import REGISTRY, Registry, run_dir_of, worker_id
from lmscale.sweep.spec import (
    PlannedRun,
    SweepSpec,
    check_isoflop_coverage,
    expand,
    load_spec,
    set_dotted,
    spec_from_dir_record,
    spec_text_for_dir,
)
from lmscale.train import checkpoint
from lmscale.train.config import validate_config
from lmscale.train.core import CHECKPOINTS, CONFIG, METRICS, Reporter, is_run_dir
from lmscale.train.lm import train_ensemble
from lmscale.train.metrics import read_metrics
from lmscale.train.run import resolve_paths

SWEEP_FILE = "sweep.yaml"


@dataclass
class Sweep:
    dir: Path
    spec: SweepSpec
    runs: list[PlannedRun]
    warnings: list[str]

    @property
    def registry_path(self) -> Path:
        return self.dir / REGISTRY

    def run_dir(self, run_id: str) -> Path:
        return run_dir_of(self.dir, run_id)


def is_sweep_dir(path: Path) -> bool:
    return (Path(path) / SWEEP_FILE).is_file()


def plan_sweep(spec_path: str | Path, log=None) -> tuple[SweepSpec, dict[str, Any], list[PlannedRun], list[str]]:
    """Validate and expand a spec file (preparing its data once, to know the vocabulary)."""
    spec, base = load_spec(spec_path)
    return _plan(spec, base, log)


def _plan(spec: SweepSpec, base: dict[str, Any], log=None):
    probe = copy.deepcopy(base)
    for k, v in spec.set.items():
        set_dotted(probe, k, v, "set")
    probe.setdefault("name", spec.name)
    cfg = resolve_paths(validate_config(probe, source="(sweep base config with its 'set' overrides)"))
    data = prepare_data(cfg.data, log=log)
    base = copy.deepcopy(base)
    base["data"] = cfg.data.model_dump(mode="json")  # absolute paths: the sweep dir works from anywhere
    runs = expand(spec, base, data.vocab_size)
    return spec, base, runs, check_isoflop_coverage(spec, runs)


def open_sweep(spec_or_dir: str | Path, sweep_dir: str | Path | None = None, log=None) -> Sweep:
    """Create a sweep directory from a spec, or reopen one (a spec file or the directory itself).

    Reopening with a spec checks that it is the same spec: a directory never mixes two sweeps.
    """
    path = Path(spec_or_dir)
    if path.is_dir():
        if not is_sweep_dir(path):
            raise LmscaleError(f"{str(path)!r} is not a sweep directory; expected a sweep spec YAML or a directory with {SWEEP_FILE}")
        record = _read_record(path / SWEEP_FILE)
        spec, base = spec_from_dir_record(record)
        spec, base, runs, warns = _plan(spec, base, log)
        out = Path(path)
    else:
        if not path.is_file():
            raise LmscaleError(f"sweep spec {str(path)!r} not found; expected a YAML file such as configs/sweeps/demo.yaml or a sweep directory")
        spec, base = load_spec(path)
        out = Path(sweep_dir) if sweep_dir is not None else Path("sweeps") / spec.name
        if out.exists() and not out.is_dir():  # refused before the data is prepared
            raise LmscaleError(f"sweep directory {str(out)!r} is a file; expected a new, empty or sweep directory")
        spec, base, runs, warns = _plan(spec, base, log)
        record = spec_text_for_dir(spec, base)
        if is_sweep_dir(out):
            old = _read_record(out / SWEEP_FILE)
            diff = config_diff(old, record)
            if diff:
                shown = ", ".join(diff[:3]) + (f" and {len(diff) - 3} more" if len(diff) > 3 else "")
                raise LmscaleError(
                    f"sweep directory {str(out)!r} holds another spec ({shown}); "
                    "expected the same spec to resume it, or a new --dir"
                )
        elif out.exists() and any(out.iterdir()):
            raise LmscaleError(f"{str(out)!r} exists and is not a sweep directory; expected a new or empty directory")
        else:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_yaml(out / SWEEP_FILE, record)
    if (out / REGISTRY).is_file():
        check_registry(out)  # a tampered registry is refused before anything is written to it
    reg = Registry(out / REGISTRY)
    try:
        reg.add_runs(runs)
    finally:
        reg.close()
    return Sweep(out, spec, runs, warns)


def check_registry(sweep_dir: Path) -> None:
    """Read-only checks of an existing sweep directory: its record and every run id in its
    registry (each must name a directory inside the sweep). One-line `LmscaleError` otherwise."""
    _read_record(sweep_dir / SWEEP_FILE)
    reg = Registry(sweep_dir / REGISTRY, readonly=True)
    try:
        for r in reg.runs():
            run_dir_of(sweep_dir, r["run_id"])
    finally:
        reg.close()


def _read_record(path: Path) -> dict[str, Any]:
    try:
        rec = safe_load_unique(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:  # UnicodeDecodeError: a binary file
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise LmscaleError(f"{str(path)!r} is unreadable ({why}); expected the sweep record written by lmscale") from None
    if not isinstance(rec, dict) or "spec" not in rec:
        raise LmscaleError(f"{str(path)!r} is not a sweep record; expected a mapping with a 'spec' key")
    return rec


# ----------------------------------------------------------------------------------------------
# Running


def run_sweep(
    sweep: Sweep, reporter: Reporter | None = None, max_jobs: int | None = None, stale_after: float = 120.0,
    heartbeat_every: float | None = None,
) -> dict[str, int]:
    """Claim and train jobs until none is left (or `max_jobs` were done); returns the run counts.

    `stale_after` (seconds) is how long a worker on another host may go without a heartbeat
    before its job is taken over (a live worker on this host keeps its job); heartbeats come
    every `heartbeat_every` seconds (default: a quarter of that, at most 15 s).
    """
    if not stale_after > 0:
        raise LmscaleError(f"stale_after={stale_after}; expected a positive number of seconds")
    every = heartbeat_every if heartbeat_every is not None else min(15.0, stale_after / 4)
    rep = reporter or Reporter()
    me = worker_id()
    reg = Registry(sweep.registry_path)
    done_jobs = 0
    try:
        while max_jobs is None or done_jobs < max_jobs:
            won: list[Lease] = []

            def take(job: str) -> bool:  # inside the registry's claim: the lease file decides
                lease = acquire(sweep.dir / LEASES, job, me, stale_after)
                won[:] = [lease] if lease is not None else []
                return lease is not None

            job = reg.claim(me, stale_after=stale_after, take=take)
            if job is None:
                break
            with Hold(reg, won[0], every=every) as hold:
                try:
                    status, error = _run_job(sweep, reg, hold, rep)
                except ClaimLost as err:  # the job is another worker's now: leave its records to it
                    rep.warn(f"{err}; leaving it to that worker")
                    # If the registry still names this worker (its lease file was superseded or
                    # removed, but no one recorded a claim), queue the job again, or it would wait
                    # for this live worker to exit.
                    reg.hand_back(job, me)
                    continue
                except BaseException:
                    # Interrupted (Ctrl-C), or a refused registry: hand the job back (if still ours);
                    # its runs resume from their checkpoints.
                    try:
                        if reg.hand_back(job, me):
                            hold.lease.release()
                    except (OSError, LmscaleError):
                        pass  # the error being raised says more; the job is taken over once this worker is gone
                    raise
            if reg.finish_job(job, status, error, worker=me):
                hold.lease.release()
            done_jobs += 1
        return reg.counts()
    finally:
        reg.close()


class _Guarded(Reporter):
    """The reporter the training core sees: passes everything on, and stops training (raises
    `ClaimLost`) at the first step after the job became another worker's."""

    def __init__(self, rep: Reporter, hold: Hold):
        self.rep, self.hold = rep, hold

    def log(self, msg: str) -> None:
        self.rep.log(msg)

    def warn(self, msg: str) -> None:
        self.rep.warn(msg)

    def start(self, total_steps: int, done: int) -> None:
        self.hold.check("training")
        self.rep.start(total_steps, done)

    def update(self, step: int, record: dict[str, Any]) -> None:
        self.hold.check(f"step {step + 1}")
        self.rep.update(step, record)

    def stop(self) -> None:
        self.rep.stop()

    def check(self, before: str) -> None:  # the core asks before each write to the run directories
        self.hold.check(before, now=True)


def run_spec(spec: dict[str, Any], spec_path: Path, sweep_dir: Path, rep: Reporter, what: str,
             then: str) -> tuple[Sweep, dict[str, int]]:
    """Write a packaged spec, open (or resume) its sweep, run every job and write the results tables;
    returns the sweep and the run counts by status.

    The demos' whole training phase: failed or diverged runs are reported, not fatal, and the
    caller goes on with the rest (`then` says with what, e.g. "fitting").
    """
    from lmscale.sweep.results import write_results

    atomic_write_yaml(spec_path, spec)
    sweep = open_sweep(spec_path, sweep_dir, log=rep.log)
    rep.log(f"{what}: {len(sweep.runs)} runs in {sweep.dir}")
    counts = run_sweep(sweep, rep)
    if counts.get("failed") or counts.get("diverged"):
        rep.warn(f"{counts.get('failed', 0)} failed and {counts.get('diverged', 0)} diverged run(s); {then} the rest "
                 f"(see `lmscale sweep status {sweep.dir}`)")
    write_results(sweep.dir)
    return sweep, counts


def _run_job(sweep: Sweep, reg: Registry, hold: Hold, rep: Reporter) -> tuple[str, str | None]:
    job, me = hold.job, hold.lease.worker
    runs = reg.job_runs(job)
    for r in runs:  # every path first: a tampered registry is refused before anything is written
        sweep.run_dir(r["run_id"])
    levels = sorted({r["plan"]["steps"] for r in runs})
    guarded = _Guarded(rep, hold)

    def record(run_id: str, status: str, **fields: Any) -> None:
        hold.check(f"recording run {run_id} as {status}", now=True)
        if not reg.set_run(run_id, status, worker=me, **fields) and reg.owner(job) != me:
            raise ClaimLost(f"job {job!r} is no longer this worker's; stopped before recording run {run_id} as {status}")

    failed: str | None = None
    for level in levels:
        hold.check(f"the runs of {level} steps", now=True)
        runs = reg.job_runs(job)  # fresh states: never retrain what is done
        by_id = {r["run_id"]: r for r in runs}
        todo = [r for r in runs if r["plan"]["steps"] == level and r["status"] != "done"]
        if failed:
            for r in todo:
                record(r["run_id"], "failed", error=f"not trained: {failed}")
            continue
        if not todo:
            continue
        try:
            _fork_branches(sweep, record, hold, [r for r in todo if r["plan"]["fork_step"] is not None], by_id, guarded)
            for r in todo:
                record(r["run_id"], "running", error=None)
            t0 = time.perf_counter()
            summaries = _train_group(sweep, todo, guarded)
            wall = time.perf_counter() - t0
            for r, s in zip(todo, summaries):
                record(
                    r["run_id"], "done", final_loss=s["final_val_loss"], final_loss_se=s["final_val_loss_se"],
                    best_loss=s["best_val_loss"], tokens_per_s=s.get("tokens_per_s"), train_s=wall,
                )
        except ClaimLost:
            raise
        except DivergedError as err:
            failed = f"diverged: {err}"
            for r in todo:
                record(r["run_id"], "diverged", error=str(err))
        except Exception as err:  # a failed run must not stop the sweep: record it and go on
            rep.warn("".join(traceback.format_exception_only(type(err), err)).strip())
            failed = f"{type(err).__name__}: {err}"
            for r in todo:
                record(r["run_id"], "failed", error=failed)
    return ("failed", failed) if failed else ("done", None)


def _train_group(sweep: Sweep, runs: list[dict[str, Any]], rep: Reporter, stop_at: int | None = None) -> list[dict]:
    cfgs = [validate_config(r["config"], source=r["run_id"]) for r in runs]
    dirs = [sweep.run_dir(r["run_id"]) for r in runs]
    return train_ensemble(cfgs, dirs, rep, stop_at=stop_at)  # one run is an ensemble of one


def _fork_branches(sweep: Sweep, record, hold: Hold, branches: list[dict[str, Any]], by_id, rep: Reporter) -> None:
    """Pause each branch's trunk at the fork step and copy that state into the branch's run dir."""
    need = [b for b in branches if not is_run_dir(sweep.run_dir(b["run_id"]))]
    if not need:
        return
    forks = {b["plan"]["fork_step"] for b in need}
    if len(forks) != 1:  # same steps => same fork step; the planner guarantees it
        raise RuntimeError(f"branches {[b['run_id'] for b in need]} fork at different steps {sorted(forks)}")
    fork = forks.pop()
    trunks = [by_id[b["plan"]["trunk"]] for b in need]
    for t in trunks:
        record(t["run_id"], "running")
    rep.log(f"trunk{'s' if len(trunks) > 1 else ''} {', '.join(t['run_id'] for t in trunks)}: to step {fork} for a cooldown branch")
    _train_group(sweep, trunks, rep, stop_at=fork)
    for t in trunks:
        record(t["run_id"], "paused")
    for b, t in zip(need, trunks):
        hold.check(f"forking {b['run_id']}", now=True)
        fork_branch(sweep.run_dir(t["run_id"]), sweep.run_dir(b["run_id"]), b["config"], fork)


def fork_branch(trunk_dir: Path, branch_dir: Path, branch_config: dict[str, Any], step: int) -> None:
    """Make `branch_dir` a run directory paused at `step` with the trunk's state there.

    Built in a temporary directory and renamed into place, so a kill leaves either nothing or a
    complete branch. The branch's config is the trunk's resolved config with the branch's name
    and steps, which is what `train()` will resolve the branch config to.
    """
    import json

    trunk_dir, branch_dir = Path(trunk_dir), Path(branch_dir)
    if step not in checkpoint.list_steps(trunk_dir / CHECKPOINTS):
        raise LmscaleError(
            f"trunk {str(trunk_dir)!r} has no checkpoint at step {step} to branch from; "
            f"expected the trunk paused there (delete {str(branch_dir)!r}'s trunk to retrain it)"
        )
    tmp = branch_dir.with_name(branch_dir.name + ".forking")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / CHECKPOINTS).mkdir(parents=True)
    cfg = safe_load_unique((trunk_dir / CONFIG).read_text(encoding="utf-8"))
    cfg["name"] = branch_config["name"]
    cfg["train"]["steps"] = branch_config["train"]["steps"]
    atomic_write_yaml(tmp / CONFIG, cfg)
    for name in ("tokenizer.json", "data.json"):
        if (trunk_dir / name).exists():
            shutil.copy2(trunk_dir / name, tmp / name)
    checkpoint.copy(trunk_dir / CHECKPOINTS, step, tmp / CHECKPOINTS)
    if (trunk_dir / METRICS).exists():
        lines = [json.dumps(r) for r in read_metrics(trunk_dir / METRICS) if r.get("step", 0) <= step]
        (tmp / METRICS).write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    tmp.rename(branch_dir)
