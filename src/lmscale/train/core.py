"""The training core: the one loop every run goes through, with hooks.

`fit(trainer, members, steps, hooks)` trains k seed-ensemble members (a single run is an ensemble
of one) of one model, loss and optimizer (a `lmscale.train.step.Trainer`) on batches that are a
pure function of the step, `Member.batches(step)`. What happens around the steps is hooks, run
every N steps (Levanter's ``trainer.add_hook(fn, every=N)``): metrics records, evaluation,
checkpoints, the progress bar, the divergence check and any lab's probes.

A member has its own run directory (or none, for in-memory runs such as the muP coordinate
check), always in the same layout: ``config.yaml`` (the resolved config), ``metrics.jsonl`` (one
JSON object per record; the source of truth), ``checkpoints/`` (`lmscale.train.checkpoint`),
``summary.json``, plus what the lab adds when the directory is created (tokenizer, data
manifest). Resuming: every member restarts from the newest checkpoint step that all members can
load (members that were ahead roll back, their later checkpoints and metrics records dropped);
batches, dropout keys and the learning rate are functions of the step, so a run killed at any
moment and resumed ends bitwise identical to an uninterrupted one (on CPU).

Order at each step s (done = s + 1): the step is dispatched; the next batch is built on the host
while the device runs; the metrics are read; then every hook whose `every` divides `done` runs
(for done < steps), in list order. At the end, each hook's `end` runs (final evaluation, final
checkpoint), then summaries are written. `stop_at` pauses every member at a step (status
'paused', a checkpoint there): sweeps fork WSD cooldown branches from it.

Batches drawn on the device: a trainer built with a `batch_fn` (``(seed, step) -> batch``,
jittable; the ICL lab's prompts) runs the steps between two steps where a hook needs the state
(evaluation, checkpoints) as one compiled `lax.scan` (at most `steps_per_call` steps), and the
hooks that only read metrics (`needs_state = False`: divergence check, train records, progress)
are replayed step by step after the call. This removes a dispatch and a batch program per step,
which for models of 10^2-10^5 parameters are most of the step's time on a CPU.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lmscale.config import config_diff, safe_load_unique
from lmscale.errors import DivergedError, LmscaleError
from lmscale.fileio import atomic_write_json, atomic_write_yaml, read_json
from lmscale.train import checkpoint
from lmscale.train.metrics import MetricsWriter, read_metrics
from lmscale.train.step import Trainer, member_keys, shard_batch

CONFIG = "config.yaml"
SUMMARY = "summary.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"

DIVERGED_HINT = "Expected a finite loss: try a lower train.optimizer.lr or longer warmup"
DEFAULT_STEPS_PER_CALL = 100  # device batches: the most steps one compiled call runs


class Reporter:
    """Where human-readable output goes (the CLI plugs in Rich; tests stay quiet)."""

    def log(self, msg: str) -> None:
        pass

    def warn(self, msg: str) -> None:
        pass

    def start(self, total_steps: int, done: int) -> None:
        pass

    def update(self, step: int, record: dict[str, Any]) -> None:
        pass

    def stop(self) -> None:
        pass

    def check(self, before: str) -> None:
        """Called before the core writes to the run directories (opening them, rolling members
        back, each state hook, the summaries); raising stops the run there. A sweep worker
        raises once its job has become another worker's."""


@dataclass
class Member:
    """One run of an ensemble: its seed, where it lives, and where its batches come from.

    `config` is the resolved config record written to config.yaml; on resume the directory's
    record must equal it after `normalize` (validation that fills defaults, so records written by
    older versions compare equal). `on_open(run_dir, resumed)` writes or checks what the lab
    keeps beside the config (it runs before anything else is written).
    """

    seed: int
    batches: Callable[[int], Any]
    run_dir: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)
    name: str = "run"
    normalize: Callable[[dict[str, Any]], dict[str, Any]] = lambda raw: raw
    on_open: Callable[[Path, bool], None] | None = None
    summary_base: dict[str, Any] = field(default_factory=dict)
    checkpoint_extra: Callable[[int], dict[str, Any]] | None = None


@dataclass
class Run:
    """What hooks see: the members, their current state, this step's metrics (host arrays with a
    leading members axis), and the means to record."""

    trainer: Trainer
    members: list[Member]
    steps: int  # the run's total steps (the schedule's length)
    end: int  # where this call stops (steps, or the stop_at pause)
    start_step: int
    reporter: Reporter
    chunk: int  # members per compiled chunk
    states: list[Any] = field(default_factory=list)  # per chunk
    step: int = 0  # optimizer steps done
    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    step_seconds: float = 0.0  # wall time of the last step (dispatch, next batch, waiting for it)
    live: np.ndarray = field(default_factory=lambda: np.ones(0, bool))
    finished_before: list[bool] = field(default_factory=list)
    writers: list[MetricsWriter | None] = field(default_factory=list)
    prior: list[list[dict[str, Any]]] = field(default_factory=list)  # metrics records kept from before a resume
    latest: list[dict[str, dict[str, Any]]] = field(default_factory=list)  # per member: kind -> newest record
    diverged: list[str] = field(default_factory=list)
    compile_s: float = 0.0

    @property
    def k(self) -> int:
        return len(self.members)

    def write(self, i: int, record: dict[str, Any]) -> None:
        """Append a metrics.jsonl record of member i (kept in memory for in-memory runs)."""
        w = self.writers[i]
        if w is not None:
            w.write(record)
        else:
            self.prior[i].append(record)
        self.latest[i][record.get("kind", "")] = record

    def records(self, i: int) -> list[dict[str, Any]]:
        """Member i's metrics records so far (before and after a resume)."""
        w = self.writers[i]
        if w is None:
            return list(self.prior[i])
        return read_metrics(w.path) if w.path.exists() else []

    def params(self, i: int):
        """Member i's parameters (device arrays; stacked chunk state sliced when c > 1)."""
        p = self.states[i // self.chunk]["params"]
        return p if not self.trainer.stacked else jax.tree.map(lambda x: x[i % self.chunk], p)

    def member_state(self, i: int, host: bool = False):
        s = self.states[i // self.chunk]
        if self.trainer.stacked:
            s = jax.tree.map(lambda x: x[i % self.chunk], s)
        return jax.device_get(s) if host else s

    def mark_diverged(self, i: int, loss: float) -> None:
        """Record member i's divergence (metrics record, summary 'diverged'); it trains no further."""
        m = self.members[i]
        self.write(i, {"kind": "diverged", "step": self.step, "loss": loss})
        good = checkpoint.list_steps(m.run_dir / CHECKPOINTS) if m.run_dir else []
        kept = f"the last good checkpoint (step {good[-1]}) is kept" if good else "no checkpoint had been written yet"
        if m.run_dir is not None:
            write_summary(m.run_dir, m.summary_base | {"status": "diverged", "step": self.step, "loss": str(loss)})
        what = f"loss is {loss}" if not math.isfinite(loss) else f"loss {loss:.4g} but non-finite gradients or parameters"
        where = f" in {m.run_dir / CHECKPOINTS}" if m.run_dir else ""
        label = f"member {i} ({m.name!r}) " if self.k > 1 else ""
        self.diverged.append(f"{label}diverged at step {self.step}: {what}; {kept}{where}")
        self.live[i] = False


class Hook:
    """Something run around the steps.

    - `step(run)` after every `every`-th step before the last (`every` None: never);
    - `start(run)` once before the first step of this call;
    - `end(run)` once after the last step (done == steps), instead of `step`: final evaluations,
      the final checkpoint. `run.metrics` is empty there when this call trained nothing (a run
      killed after its last checkpoint is finished without training);
    - `pause(run)` when this call stops early at `stop_at`; `close(run)` always, also on errors;
    - `summary(run, i)`: fields for member i's summary.json.
    """

    every: int | None = None
    # False for hooks that read only `run.metrics` (not the state): with device batches the core
    # runs several steps per call and replays these hooks step by step after it.
    needs_state: bool = True

    def start(self, run: Run) -> None:
        pass

    def step(self, run: Run) -> None:
        pass

    def end(self, run: Run) -> None:
        pass

    def pause(self, run: Run) -> None:
        pass

    def close(self, run: Run) -> None:
        pass

    def summary(self, run: Run, i: int) -> dict[str, Any]:
        return {}


class FnHook(Hook):
    """A function `fn(run)` run every `every` steps (and at the end with `at_end`)."""

    def __init__(self, fn: Callable[[Run], None], every: int, at_start: bool = False, at_end: bool = False,
                 needs_state: bool = True):
        self.fn, self.every, self.at_start, self.at_end, self.needs_state = fn, every, at_start, at_end, needs_state

    def start(self, run: Run) -> None:
        if self.at_start:
            self.fn(run)

    def step(self, run: Run) -> None:
        self.fn(run)

    def end(self, run: Run) -> None:
        if self.at_end:
            self.fn(run)


def add_hook(hooks: list[Hook], fn: Callable[[Run], None], every: int, **kw) -> list[Hook]:
    """Levanter-style: append `fn` as a hook run every `every` steps; returns `hooks`."""
    hooks.append(FnHook(fn, every, **kw))
    return hooks


# ----------------------------------------------------------------------------------------------
# Standard hooks


class StopOnDivergence(Hook):
    """Every step: a member whose loss, gradients or parameters became non-finite stops; the others
    go on (their numbers do not depend on it). The run raises `DivergedError` at the end."""

    every = 1
    needs_state = False

    def step(self, run: Run) -> None:
        for i in np.flatnonzero(run.live & ~run.metrics["finite"].astype(bool)):
            run.mark_diverged(int(i), float(run.metrics["loss"][i]))

    def end(self, run: Run) -> None:
        if run.metrics:
            self.step(run)


class TrainLog(Hook):
    """A 'train' record every `log_every` steps (and at the last step): loss, its mean over the
    window, lr, gradient and update norms, throughput, plus `extra(run, i)`'s fields.

    `ms_per_step` is the wall time of an ensemble step (all members at once); `tokens_per_s` is
    a member's tokens per wall second, i.e. the ensemble's throughput divided by k.
    """

    every = 1
    needs_state = False

    def __init__(self, log_every: int, lr_at: Callable[[int], float] | None = None, tokens_per_step: int | None = None,
                 flops_per_token: float | None = None, extra: Callable[[Run, int], dict[str, Any]] | None = None):
        self.log_every, self.lr_at, self.tokens_per_step, self.flops_per_token = log_every, lr_at, tokens_per_step, flops_per_token
        self.extra = extra
        self.last_tokens_per_s: float | None = None
        self._reset()

    def _reset(self) -> None:
        self.n, self.loss_sum, self.seconds = 0, None, 0.0

    def start(self, run: Run) -> None:
        self._reset()

    def step(self, run: Run) -> None:
        loss = run.metrics["loss"].astype(np.float64)
        self.loss_sum = loss if self.loss_sum is None else self.loss_sum + loss
        self.n += 1
        self.seconds += run.step_seconds
        if run.step % self.log_every == 0 or run.step == run.steps:
            self.flush(run)

    def end(self, run: Run) -> None:
        if run.metrics:
            self.step(run)  # run.step == steps: accumulates the last step and writes the record

    def flush(self, run: Run) -> None:
        step_s = self.seconds / max(1, self.n)
        for i in np.flatnonzero(run.live):
            rec = {"kind": "train", "step": run.step}
            if self.tokens_per_step is not None:
                rec["tokens"] = run.step * self.tokens_per_step
            rec |= {"loss": float(run.metrics["loss"][i]), "loss_avg": float(self.loss_sum[i]) / self.n}
            if self.lr_at is not None:
                rec["lr"] = float(self.lr_at(run.step - 1))
            rec |= {"grad_norm": float(run.metrics["grad_norm"][i]), "update_norm": float(run.metrics["update_norm"][i])}
            if self.tokens_per_step is not None and step_s > 0:
                tps = self.tokens_per_step / step_s
                rec["tokens_per_s"] = tps
                if self.flops_per_token is not None:
                    rec["flops_per_s"] = tps * self.flops_per_token
            rec["ms_per_step"] = 1000 * step_s
            if self.extra is not None:
                rec |= self.extra(run, int(i))
            run.write(int(i), rec)
        self.last_tokens_per_s = self.tokens_per_step / step_s if self.tokens_per_step and step_s > 0 else None
        self._reset()


class Checkpoints(Hook):
    """Every `every` steps, at a pause and at the end: each live member saves its own (unstacked)
    state. Older checkpoints are pruned only after every member has saved, so a kill between
    members' saves still leaves a step that all members have."""

    def __init__(self, every: int, keep: int):
        self.every, self.keep = every, keep

    def _save(self, run: Run) -> None:
        live = [i for i in np.flatnonzero(run.live) if run.members[i].run_dir is not None]
        if not live:
            return
        host = [None] * len(run.states)
        for i in live:
            m = run.members[i]
            j = i // run.chunk
            if not run.trainer.stacked:
                state = run.states[j]  # device arrays: Orbax writes each shard where it lives
            else:
                if host[j] is None:
                    host[j] = jax.device_get(run.states[j])
                state = jax.tree.map(lambda x: x[i % run.chunk], host[j])
            extra = {"loader_position": run.step, "seed": m.seed, "rng": f"fold_in(key({m.seed}), stream, step)",
                     "machine": machine_record(run.trainer)}
            if run.k > 1:
                extra["ensemble"] = {"member": int(i), "members": run.k}
            if m.checkpoint_extra is not None:
                extra |= m.checkpoint_extra(run.step)
            checkpoint.save(m.run_dir / CHECKPOINTS, run.step, state, extra, keep=None)
        for i in live:
            checkpoint.prune(run.members[i].run_dir / CHECKPOINTS, self.keep)

    def step(self, run: Run) -> None:
        self._save(run)

    def pause(self, run: Run) -> None:
        if any(run.step not in checkpoint.list_steps(run.members[i].run_dir / CHECKPOINTS)
               for i in np.flatnonzero(run.live) if run.members[i].run_dir is not None):
            self._save(run)

    def end(self, run: Run) -> None:
        if run.start_step < run.steps:
            self._save(run)


class Progress(Hook):
    """The reporter's progress bar: the live members' mean loss, their total throughput and the
    newest `val_key` of their `val_kind` records."""

    every = 1
    needs_state = False

    def __init__(self, train_log: TrainLog | None = None, val_kind: str = "eval", val_key: str = "val_loss"):
        self.train_log, self.val_kind, self.val_key = train_log, val_kind, val_key

    def start(self, run: Run) -> None:
        run.reporter.start(run.end, run.start_step)

    def step(self, run: Run) -> None:
        live = np.flatnonzero(run.live)
        tps = self.train_log.last_tokens_per_s if self.train_log is not None else None
        vals = [run.latest[i][self.val_kind][self.val_key] for i in live
                if self.val_key in run.latest[i].get(self.val_kind, {})]
        run.reporter.update(run.step, {"loss": float(run.metrics["loss"][live].mean()) if len(live) else None,
                                       "tokens_per_s": tps and tps * len(live),
                                       "val_loss": float(np.mean(vals)) if vals else None})

    def end(self, run: Run) -> None:
        if run.metrics:
            self.step(run)

    def close(self, run: Run) -> None:
        run.reporter.stop()


# ----------------------------------------------------------------------------------------------
# Run directories


def is_run_dir(path: Path) -> bool:
    return (Path(path) / CONFIG).is_file()


def inspect_run_dir(m: Member) -> str:
    """What member `m`'s run directory holds, checked before anything is written: "resume" (the
    same run), "new" (absent or empty) or "restart" (a run that never trained a step, whose config
    may differ: a crash before the first record, say a model too large to build, must not lock
    the directory to the config that crashed)."""
    import yaml

    run_dir = m.run_dir
    if is_run_dir(run_dir):
        try:
            existing = safe_load_unique((run_dir / CONFIG).read_text(encoding="utf-8"))
            diff = config_diff(m.normalize(existing), m.normalize(m.config))
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError, TypeError, AttributeError) as err:
            if _never_trained(run_dir):
                return "restart"
            why = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise LmscaleError(f"{str(run_dir / CONFIG)!r} is unreadable ({why}); expected the config lmscale wrote") from None
        if diff:
            if _never_trained(run_dir):
                return "restart"
            shown = ", ".join(diff[:3]) + (f" and {len(diff) - 3} more" if len(diff) > 3 else "")
            raise LmscaleError(
                f"run directory {str(run_dir)!r} holds a run with another config ({shown}); "
                "expected the same config to resume, or a new --run-dir"
            )
        if m.on_open is not None:
            m.on_open(run_dir, True)
        checkpoint.clean_temporaries(run_dir / CHECKPOINTS)
        return "resume"
    if run_dir.exists() and not run_dir.is_dir():
        raise LmscaleError(f"run directory {str(run_dir)!r} is a file; expected a new or empty directory")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise LmscaleError(f"run directory {str(run_dir)!r} exists and is not an lmscale run; expected a new or empty directory")
    return "new"


def _never_trained(run_dir: Path) -> bool:
    """No committed checkpoint, no metrics record and no other directory inside (an ensemble's
    members): nothing a restart could lose."""
    metrics = run_dir / METRICS
    return (not checkpoint.list_steps(run_dir / CHECKPOINTS) and (not metrics.exists() or metrics.stat().st_size == 0)
            and not any(p.is_dir() and p.name != CHECKPOINTS for p in run_dir.iterdir()))


def create_run_dir(m: Member, replace: bool = False) -> None:
    """Write member `m`'s new run directory with its config (`replace`: over a never-trained one).

    Built beside it and renamed into place (onto an empty directory too): a kill leaves either
    nothing or a complete new run directory (or, replacing, the old one moved aside)."""
    run_dir = m.run_dir
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = run_dir.with_name(f".{run_dir.name}.creating")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    atomic_write_yaml(tmp / CONFIG, m.config)
    if m.on_open is not None:
        m.on_open(tmp, False)
    old = None
    if replace and run_dir.exists():
        old = run_dir.with_name(f".{run_dir.name}.replaced")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(run_dir, old)
    os.replace(tmp, run_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def open_run_dir(m: Member) -> tuple[bool, bool]:
    """Create member `m`'s run directory with its config, or check an existing one holds the same
    run: (resumed, finished before)."""
    how = inspect_run_dir(m)
    if how != "resume":
        create_run_dir(m, replace=how == "restart")
        return False, False
    return True, _status(m.run_dir) == "done"


def _status(run_dir: Path) -> str | None:
    try:
        return read_json(run_dir / SUMMARY).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    atomic_write_json(Path(run_dir) / SUMMARY, summary)


def check_seeds_and_dirs(seeds: Sequence[int], run_dirs: Sequence[Path | None]) -> None:
    """Members need distinct seeds (repeats train identical runs) and distinct run directories."""
    if not seeds:
        raise LmscaleError("training needs at least one run; expected one member or more")
    if len(set(seeds)) != len(seeds):
        raise LmscaleError(f"ensemble seeds {list(seeds)} repeat a seed; expected distinct seeds (repeats train identical runs)")
    given = [d for d in run_dirs if d is not None]
    if len({str(Path(d).resolve()) for d in given}) != len(given):
        raise LmscaleError(f"ensemble run directories {[str(d) for d in given]} repeat a directory; expected one per member")


def _common_checkpoint(run: Run, template, warn) -> tuple[int, list | None]:
    """The newest step at which every member has a usable checkpoint, with the members' states;
    (0, None) when the members share none (all start afresh)."""
    dirs = [m.run_dir / CHECKPOINTS for m in run.members]
    listed = [set(checkpoint.list_steps(d)) for d in dirs]
    common = sorted(set.intersection(*listed), reverse=True)
    for step in common:
        states, metas = [], []
        for d in dirs:
            try:
                ck = checkpoint.load(d, step, template)
                states.append(ck.state)
                metas.append(ck.meta)
            except checkpoint.CheckpointError as err:
                warn(f"checkpoint step {step} in {d} is unusable ({err}); trying the previous "
                     f"{'common step' if len(dirs) > 1 else 'one'}")
                break
        else:
            return step, states, metas
    if common:
        what = "none is usable in every member" if len(dirs) > 1 else "none is usable"
        where = "the ensemble's run directories" if len(dirs) > 1 else f"run directory {str(run.members[0].run_dir)!r}"
        raise LmscaleError(
            f"{where} {'share' if len(dirs) > 1 else 'has'} checkpoints but {what} (see the warnings above); "
            "expected a valid checkpoint to resume — move the run aside or use a new --run-dir"
        )
    if any(listed):
        warn("the ensemble's members share no checkpoint step; every member starts again from step 0")
    return 0, None, []


def machine_record(trainer: Trainer) -> dict[str, Any]:
    """What a checkpoint records of where it was trained: a resume elsewhere reduces in another
    order (other devices, another mesh), so it cannot be bitwise the uninterrupted run."""
    return {"platform": jax.default_backend(), "processes": jax.process_count(), "devices": int(trainer.mesh.devices.size),
            "mesh": {str(a): int(n) for a, n in trainer.mesh.shape.items()}}


def _check_machine(metas: list[dict[str, Any]], now: dict[str, Any], warn) -> None:
    saved = next((m["machine"] for m in metas if isinstance(m.get("machine"), dict)), None)
    if saved is None or saved == now:  # checkpoints from before the record carry none
        return
    def show(r):
        mesh = " x ".join(f"{a}={n}" for a, n in r.get("mesh", {}).items())
        return f"{r.get('devices')} {r.get('platform')} device(s) in {r.get('processes')} process(es), mesh {mesh}"
    warn(f"this run was checkpointed on {show(saved)} and resumes on {show(now)}: it continues correctly, but the "
         "result will not be bitwise identical to an uninterrupted run")


# ----------------------------------------------------------------------------------------------
# The loop


def fit(trainer: Trainer, members: list[Member], steps: int, hooks: Sequence[Hook] = (), **kw) -> list[dict[str, Any]]:
    """Train (or resume) `members` for `steps` steps with `hooks` (see `_fit`). An OS error while
    writing (disk full, a read-only or removed directory) stops training with a one-line error
    that says what each run directory kept."""
    try:
        return _fit(trainer, members, steps, hooks, **kw)
    except OSError as err:
        raise LmscaleError(_os_error_message(err, members)) from None


def _os_error_message(err: OSError, members: Sequence[Member]) -> str:
    what = err.strerror or str(err).splitlines()[0] or type(err).__name__
    where = f" ({err.filename})" if err.filename else ""
    kept = []
    for m in members:
        if m.run_dir is not None:
            steps = checkpoint.list_steps(m.run_dir / CHECKPOINTS) if m.run_dir.is_dir() else []
            kept.append(f"{m.run_dir}: checkpoint step {steps[-1]}" if steps else f"{m.run_dir}: no checkpoint yet")
    return (f"could not write{where}: {what}; training stopped, and each run directory keeps its newest committed "
            f"checkpoint and the metrics up to it ({'; '.join(kept) or 'nothing on disk'}) — expected a writable "
            "directory with free space: fix that and run the same command to resume")


def _fit(
    trainer: Trainer,
    members: list[Member],
    steps: int,
    hooks: Sequence[Hook] = (),
    *,
    stop_at: int | None = None,
    reporter: Reporter | None = None,
    describe: Callable[[Run], str] | None = None,
    steps_per_call: int | None = None,
) -> list[dict[str, Any]]:
    """Train (or resume) `members` for `steps` steps with `hooks`; returns each member's summary
    (also written to its summary.json). Raises `DivergedError` naming the diverged members after
    the others have finished.

    With a trainer built with a `batch_fn` (batches drawn in the program; `Member.batches` is
    then unused), the steps between two steps where a hook needs the state run in one compiled call
    (at most `steps_per_call` of them, default `DEFAULT_STEPS_PER_CALL`, calls aligned to its
    multiples); hooks that only read metrics are replayed step by step after each call. Every call
    is the same program (a fixed-length scan that skips the steps past the call's end), so a run
    paused or killed anywhere and resumed computes bitwise what an uninterrupted one does."""
    rep = reporter or Reporter()
    check_seeds_and_dirs([m.seed for m in members], [m.run_dir for m in members])
    k, c = len(members), trainer.members
    if k % c:
        raise LmscaleError(f"vmap_members={c} does not divide the {k} ensemble members; expected a divisor of {k}")
    if stop_at is not None and not 0 < stop_at <= steps:
        raise ValueError(f"stop_at={stop_at} must be in 1..{steps}")
    run = Run(trainer, list(members), steps, steps, 0, rep, c)
    chunks = [list(range(j, j + c)) for j in range(0, k, c)]
    keys = [member_keys([members[i].seed for i in chunk]) for chunk in chunks]

    on_disk = [m.run_dir is not None for m in members]
    # Run directories are checked first and created only once the model's state exists, so a run
    # that cannot be built (too large, a bad config the validators let through) writes nothing.
    check = rep.check
    check("opening the run directories")
    how = [inspect_run_dir(m) if m.run_dir is not None else None for m in members]
    for m, h in zip(members, how):
        if h == "restart":
            rep.warn(f"run directory {str(m.run_dir)!r} holds a run that never trained a step; starting it afresh with this config")
    run.finished_before = [h == "resume" and _status(m.run_dir) == "done" for m, h in zip(members, how)]
    start_step, loaded = 0, None
    if any(h == "resume" for h in how):
        start_step, loaded, metas = _common_checkpoint(run, trainer.abstract_member_state(), rep.warn)
        _check_machine(metas, machine_record(trainer), rep.warn)
        for m in members:  # members that were ahead roll back to the common step
            d = m.run_dir / CHECKPOINTS
            checkpoint.drop(d, [s for s in checkpoint.list_steps(d) if s > start_step])
    if start_step == steps and all(run.finished_before) and all(on_disk):
        rep.log(f"{'the seed ensemble of ' + str(k) if k > 1 else members[0].run_dir} is already finished ({steps} steps)")
        return [read_json(m.run_dir / SUMMARY) for m in members]
    if loaded is None:
        run.states = [trainer.init_state(init_keys) for init_keys, _ in keys]
    else:
        run.states = [jax.device_put(_stack(trainer, [loaded[i] for i in chunk]), trainer.state_shardings) for chunk in chunks]
        rep.log(f"resuming {'the seed ensemble of ' + str(k) if k > 1 else members[0].run_dir} from step {start_step}")
    for m, h in zip(members, how):
        if h in ("new", "restart"):
            create_run_dir(m, replace=h == "restart")
    run.start_step = run.step = start_step
    run.writers = [MetricsWriter(m.run_dir / METRICS) if m.run_dir is not None else None for m in members]
    run.prior = [[] for _ in members]
    for i, w in enumerate(run.writers):
        if w is not None:
            w.truncate_after(start_step if start_step > 0 else -1)
            run.prior[i] = read_metrics(w.path) if w.path.exists() else []
    run.live = np.ones(k, dtype=bool)
    run.latest = [{r.get("kind", ""): r for r in prior} for prior in run.prior]

    end = steps if stop_at is None else stop_at
    if start_step > end:
        where = members[0].run_dir
        raise LmscaleError(f"run {str(where)!r} is already at step {start_step}, past the requested pause at step {end}")
    run.end = end
    for m in members:
        if m.run_dir is not None:
            write_summary(m.run_dir, m.summary_base | {"status": "running", "step": start_step})

    def host_batches(step: int):
        per_member = [m.batches(step) for m in members]
        return [jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *[per_member[i] for i in chunk])
                for chunk in chunks]

    device = trainer.batch_fn is not None
    seeds = [jnp.asarray([members[i].seed for i in chunk], jnp.int32) for chunk in chunks]

    def call_end(step: int) -> int:
        """Where the call starting at `step` stops (device batches): the next step at which a hook
        needs the state, a multiple of `steps_per_call`, or the end."""
        stop = end
        for every in [h.every for h in hooks if h.needs_state and h.every] + [call_length]:
            stop = min(stop, (step // every + 1) * every)
        return stop

    # Compile ahead of time, so step timings measure steps, not compilation.
    t0 = time.perf_counter()
    step_fn, batches = None, []
    call_length = steps_per_call or DEFAULT_STEPS_PER_CALL
    if start_step < end and device:
        step_fn = trainer.run_steps(call_length).lower(run.states[0], jnp.int32(start_step), jnp.int32(1), seeds[0],
                                                        keys[0][1]).compile()
    elif start_step < end:
        batches = [shard_batch(trainer, b) for b in host_batches(start_step)]
        step_fn = trainer.train_step.lower(run.states[0], batches[0], jnp.int32(start_step), keys[0][1]).compile()
    run.compile_s = time.perf_counter() - t0
    if describe is not None and start_step < end:
        rep.log(describe(run) + f", compiled in {run.compile_s:.1f}s")

    def after_step(metrics, step_seconds: float, stateless_only: bool) -> bool:
        """Record one finished step and run its hooks; False when the run is over (last step or
        no live member)."""
        run.metrics, run.step_seconds = metrics, step_seconds
        if run.step == steps:
            return False  # the end hooks take the last step
        for h in hooks:
            if h.every and run.step % h.every == 0 and not (stateless_only and h.needs_state):
                if h.needs_state:
                    check(f"the hooks of step {run.step}")
                h.step(run)
        return bool(run.live.any())

    def host_loop() -> None:
        nonlocal batches
        for step in range(start_step, end):
            t_step = time.perf_counter()
            out = [step_fn(run.states[j], batches[j], jnp.int32(step), keys[j][1]) for j in range(len(chunks))]
            run.states = [s for s, _ in out]
            if step + 1 < end:  # the next batches are built while the device runs this step
                batches = [shard_batch(trainer, b) for b in host_batches(step + 1)]
            metrics = jax.tree.map(lambda *xs: np.concatenate([np.asarray(x) for x in xs]), *[mj for _, mj in out])
            run.step = step + 1
            if not after_step(metrics, time.perf_counter() - t_step, stateless_only=False):
                return

    def device_loop() -> None:
        step = start_step
        while step < end:
            stop = call_end(step)
            n = stop - step
            t_call = time.perf_counter()
            out = [step_fn(run.states[j], jnp.int32(step), jnp.int32(n), seeds[j], keys[j][1]) for j in range(len(chunks))]
            run.states = [s for s, _ in out]
            stacked = jax.tree.map(lambda *xs: np.concatenate([np.asarray(x) for x in xs], axis=1), *[mj for _, mj in out])
            per_step = (time.perf_counter() - t_call) / n
            for i in range(n):
                run.step = step + i + 1
                if not after_step(jax.tree.map(lambda x, i=i: x[i], stacked), per_step, stateless_only=True):
                    return
            step = stop
            for h in hooks:  # the hooks that need the state, at the call's last step
                if h.needs_state and h.every and run.step % h.every == 0:
                    check(f"the hooks of step {run.step}")
                    h.step(run)

    try:
        for h in hooks:
            h.start(run)
        (device_loop if device else host_loop)()
        check(f"the end of step {run.step}")
        if run.live.any() and end < steps:
            for h in hooks:
                h.pause(run)
        elif run.live.any():
            for h in hooks:
                h.end(run)
    finally:
        for h in hooks:
            h.close(run)
        for w in run.writers:
            if w is not None:
                w.close()

    summaries = []
    for i, m in enumerate(members):
        if not run.live[i]:
            continue
        s = m.summary_base | {"status": "paused" if end < steps else "done", "step": run.step}
        for h in hooks:
            s |= h.summary(run, i)
        if end == steps:
            s["compile_s"] = run.compile_s
        if m.run_dir is not None:
            write_summary(m.run_dir, s)
        summaries.append(s)
    if run.diverged:
        rest = (f"the other {int(run.live.sum())} member(s) trained on" if run.live.any() else "every member diverged") if k > 1 else ""
        msg = f"{'seed ensemble: ' if k > 1 else 'training '}{'; '.join(run.diverged)}{'; ' + rest if rest else ''}. {DIVERGED_HINT}"
        raise DivergedError(msg)
    return summaries


def _stack(trainer: Trainer, member_states: list):
    """A chunk's state from its members' own states."""
    if trainer.stacked:
        return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *member_states)
    return member_states[0]
