"""Running sweeps: WSD branches equal standalone runs, kills lose nothing, workers share a sweep."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from lmscale.train.config import validate_config
from lmscale.errors import LmscaleError
from lmscale.sweep.cli import sweep_app
from lmscale.sweep.lease import LEASES, Lease, generations
from lmscale.sweep.registry import Registry
from lmscale.sweep.results import write_results
from lmscale.sweep.runner import open_sweep, run_sweep
from lmscale.train.core import Reporter
from lmscale.train.lm import train
from lmscale.train.run import load_run
from tests.helpers import invoke, run_cli, tree_bytes, write_yaml


def _params(run_dir):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(load_run(run_dir).params)]


def test_wsd_branch_equals_the_same_schedule_trained_alone(sweep_spec, tmp_path):
    spec = sweep_spec(ladder={"shapes": [{"depth": 1, "width": 16, "heads": 2}]})
    sweep = open_sweep(write_yaml(tmp_path / "spec.yaml", spec), tmp_path / "sw")
    counts = run_sweep(sweep)
    assert counts["done"] == 2 and sum(counts.values()) == 2
    branch = next(r for r in sweep.runs if r.fork_step is not None)
    alone = train(validate_config(branch.config), tmp_path / "alone")
    bdir = sweep.run_dir(branch.run_id)
    summary = json.loads((bdir / "summary.json").read_text())
    assert summary["step"] == branch.steps and summary["final_val_loss"] == alone["final_val_loss"]
    for a, b in zip(_params(bdir), _params(tmp_path / "alone")):
        np.testing.assert_array_equal(a, b)  # the fork is exact: same LR before the cooldown, same data order
    paths = write_results(sweep.dir)
    rows = json.loads(paths["results_json"].read_text())
    assert {r["status"] for r in rows} == {"done"}
    assert all(r["loss"] > 0 and r["N"] > r["N_nonembed"] > 0 and r["C"] > r["C_6N"] * 0.9 for r in rows)
    header = paths["curves_csv"].read_text().splitlines()[0].split(",")
    assert header[:10] == ["run_id", "trunk", "family", "seed", "N", "N_nonembed", "step", "D", "C", "loss"]


def _start(spec_path, sweep_dir, *extra):
    return subprocess.Popen([sys.executable, "-m", "lmscale", "sweep", "run", str(spec_path), "--dir", str(sweep_dir),
                             "--no-progress", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _status(sweep_dir):
    reg = Registry(sweep_dir / "registry.sqlite")
    try:
        return {r["run_id"]: r["status"] for r in reg.runs()}
    finally:
        reg.close()


def _train_steps(run_dir):
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "train"]
    return steps


def test_killed_sweep_resumes_without_retraining_finished_runs(sweep_spec, tmp_path):
    spec_path = write_yaml(tmp_path / "spec.yaml", sweep_spec())
    sd = tmp_path / "sw"
    p = _start(spec_path, sd)
    deadline = time.time() + 240
    while time.time() < deadline:
        if (sd / "registry.sqlite").exists() and "done" in _status(sd).values():
            break
        time.sleep(0.2)
    p.send_signal(signal.SIGKILL)
    p.wait()
    before = _status(sd)
    finished = [r for r, s in before.items() if s == "done"]
    assert finished and len(finished) < len(before)
    stamps = {r: (sd / "runs" / r / "summary.json").stat().st_mtime_ns for r in finished}
    out = _start(spec_path, sd).communicate(timeout=300)[0]
    assert "4 done" in out, out
    assert set(_status(sd).values()) == {"done"}
    for r in finished:  # never trained twice
        assert (sd / "runs" / r / "summary.json").stat().st_mtime_ns == stamps[r]
    for r in before:
        steps = _train_steps(sd / "runs" / r)
        assert len(steps) == len(set(steps)), f"{r} logged a step twice"


def test_two_workers_split_a_sweep_without_overlap(sweep_spec, tmp_path):
    spec = sweep_spec(branches="none", seeds=[0, 1], tokens={"absolute": [8 * 32 * 10]})
    spec["base"]["train"]["schedule"]["kind"] = "cosine"
    spec_path = write_yaml(tmp_path / "spec.yaml", spec)
    sd = tmp_path / "sw"
    open_sweep(spec_path, sd)  # create it first, so both workers open the same directory
    procs = [_start(spec_path, sd) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    reg = Registry(sd / "registry.sqlite")
    jobs = reg.jobs()
    reg.close()
    assert len(jobs) == 4 and all(j["status"] == "done" and j["attempts"] == 1 for j in jobs)
    for r in _status(sd):
        assert _train_steps(sd / "runs" / r)[-1] == 10


def test_reopening_a_sweep_with_another_spec_is_refused(sweep_spec, tmp_path):
    sd = tmp_path / "sw"
    open_sweep(write_yaml(tmp_path / "a.yaml", sweep_spec()), sd)
    with pytest.raises(LmscaleError, match="holds another spec"):
        open_sweep(write_yaml(tmp_path / "b.yaml", sweep_spec(seeds=[5])), sd)
    assert open_sweep(sd).spec.name == "tiny-sweep"  # the directory alone reopens it


def test_cli_bad_spec_exits_2_with_one_line(tmp_path, sweep_spec):
    bad = sweep_spec(tokens={"absolute": [0]})
    r = run_cli("sweep", "plan", write_yaml(tmp_path / "bad.yaml", bad))
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: ") and len(r.stderr.strip().splitlines()) == 1
    assert "tokens.absolute" in r.stderr
    r = run_cli("sweep", "status", tmp_path / "nowhere")
    assert r.returncode == 2 and "registry" in r.stderr


def test_vmapped_seed_ensembles_with_branches_finish_every_point(sweep_spec, tmp_path):
    spec = sweep_spec(ladder={"shapes": [{"depth": 1, "width": 16, "heads": 2}]}, seeds=[0, 1], vmap_seeds=True)
    sweep = open_sweep(write_yaml(tmp_path / "spec.yaml", spec), tmp_path / "sw")
    assert len({r.job for r in sweep.runs}) == 1  # both seeds, trunk and branch: one job
    assert run_sweep(sweep)["done"] == 4
    rows = json.loads(write_results(sweep.dir)["results_json"].read_text())
    by_seed = {}
    for r in rows:
        by_seed.setdefault(r["D"], {})[r["seed"]] = r["loss"]
    for losses in by_seed.values():
        assert losses[0] != losses[1]  # different seeds, different numbers
    for r in sweep.runs:  # every member's directory is an ordinary, loadable run
        assert load_run(sweep.run_dir(r.run_id)).step == r.steps


# -- stalled and late workers ------------------------------------------------------------------


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _jobs(sweep_dir):
    reg = Registry(sweep_dir / "registry.sqlite")
    try:
        return reg.jobs()
    finally:
        reg.close()


def test_a_stopped_worker_keeps_its_job_and_no_run_is_trained_twice(sweep_spec, tmp_path):
    """The hostile user's case: worker A is stopped (SIGSTOP, alive on this host) mid-run for longer
    than the stale time; worker B must leave A's job alone, and A, resumed, finishes it: every job
    claimed once, every record once."""
    steps = 600  # long enough to stop A mid-run
    spec = sweep_spec(branches="none", tokens={"absolute": [8 * 32 * steps]})
    spec["base"]["train"] |= {"schedule": {"kind": "cosine", "warmup": 2, "min_lr": 3e-4}, "eval_every": 100,
                              "checkpoint_every": 100, "log_every": 5}
    spec_path = write_yaml(tmp_path / "spec.yaml", spec)
    sd = tmp_path / "sw"
    sweep = open_sweep(spec_path, sd)
    assert len({r.job for r in sweep.runs}) == 2
    a = _start(spec_path, sd, "--stale-after", "2")
    b = None
    try:
        deadline, mine = time.time() + 240, None
        while time.time() < deadline and mine is None:
            running = [j for j in _jobs(sd) if j["status"] == "running" and j["worker"].split(":")[1] == str(a.pid)]
            runs = [r for r in sweep.runs if running and r.job == running[0]["job"]]
            if runs and (sd / "runs" / runs[0].run_id / "metrics.jsonl").exists() and any(
                    r["kind"] == "train" for r in _records(sd / "runs" / runs[0].run_id)):
                mine = runs[0]
            time.sleep(0.05)
        assert mine is not None, "worker A never started training"
        os.kill(a.pid, signal.SIGSTOP)
        assert _status(sd)[mine.run_id] == "running", "A finished before it could be stopped; make the run longer"
        while time.time() - next(j["heartbeat"] for j in _jobs(sd) if j["job"] == mine.job) < 3:
            time.sleep(0.2)  # A's heartbeat is now stale by B's --stale-after
        b = _start(spec_path, sd, "--stale-after", "2")
        out_b = b.communicate(timeout=300)[0]
        assert b.returncode == 0, out_b
        assert mine.run_id not in out_b  # B trained the other job only
        assert _status(sd)[mine.run_id] == "running"
    finally:
        os.kill(a.pid, signal.SIGCONT)
        if b is not None and b.poll() is None:
            b.kill()
    out_a = a.communicate(timeout=300)[0]
    assert a.returncode == 0, out_a
    assert set(_status(sd).values()) == {"done"}
    jobs = _jobs(sd)
    assert all(j["status"] == "done" and j["attempts"] == 1 for j in jobs), jobs  # no job was taken over
    assert next(j for j in jobs if j["job"] == mine.job)["worker"].split(":")[1] == str(a.pid)
    for r in sweep.runs:  # every record once
        keys = [(x["kind"], x["step"]) for x in _records(sd / "runs" / r.run_id)]
        assert len(keys) == len(set(keys)) and max(s for k, s in keys if k == "train") == steps, r.run_id
    with open(sd / "curves.csv") as f:
        points = [(row["run_id"], row["step"]) for row in csv.DictReader(f)]
    assert points and len(points) == len(set(points))


class _TakenOverAt(Reporter):
    """A reporter that, at training step `at`, lets a worker on another host take the job over
    (a newer lease generation and the registry's row), then stalls a little."""

    def __init__(self, sweep, at):
        self.sweep, self.at, self.warnings, self.job = sweep, at, [], None

    def warn(self, msg):
        self.warnings.append(msg)

    def update(self, step, record):
        if step != self.at or self.job is not None:
            return
        reg = Registry(self.sweep.registry_path)
        try:
            self.job = next(j["job"] for j in reg.jobs() if j["status"] == "running")
            root = self.sweep.dir / LEASES
            theirs = Lease(root, self.job, generations(root, self.job)[-1] + 1, "other-host:1:1", "t")
            theirs.path.write_text(json.dumps(theirs._record()))
            reg.db.execute("UPDATE jobs SET worker = 'other-host:1:1' WHERE job = ?", (self.job,))
        finally:
            reg.close()
        time.sleep(0.3)  # the heartbeat thread (every 0.05 s) finds out


def test_a_worker_that_lost_its_job_stops_at_the_next_step_and_records_nothing(sweep_spec, tmp_path):
    spec = sweep_spec(branches="none", ladder={"shapes": [{"depth": 1, "width": 16, "heads": 2}]},
                      tokens={"absolute": [8 * 32 * 40]})
    spec["base"]["train"] |= {"schedule": {"kind": "cosine", "warmup": 2}, "log_every": 1}
    sweep = open_sweep(write_yaml(tmp_path / "spec.yaml", spec), tmp_path / "sw")
    rep = _TakenOverAt(sweep, at=10)
    counts = run_sweep(sweep, rep, heartbeat_every=0.05)
    (run,) = sweep.runs
    assert rep.job == run.job and any("taken over" in w for w in rep.warnings), rep.warnings
    trained = [r["step"] for r in _records(sweep.run_dir(run.run_id)) if r["kind"] == "train"]
    assert max(trained) <= 11  # stopped at the first step after the takeover (step 11's record may be out)
    assert counts == {**{k: 0 for k in counts}, "running": 1}  # the run is the new owner's to record
    (job,) = _jobs(sweep.dir)
    assert (job["status"], job["worker"], job["attempts"]) == ("running", "other-host:1:1", 1)
    assert json.loads((sweep.run_dir(run.run_id) / "summary.json").read_text())["status"] != "done"


# -- what the registry may name ----------------------------------------------------------------


def test_a_run_id_that_leaves_the_sweep_directory_is_refused(sweep_spec, tmp_path):
    spec = sweep_spec(branches="none", tokens={"absolute": [8 * 32 * 4]})
    spec["base"]["train"]["schedule"]["kind"] = "cosine"
    sd = tmp_path / "a" / "b" / "sw"  # runs/../../../../outside is tmp_path/outside
    sweep = open_sweep(write_yaml(tmp_path / "spec.yaml", spec), sd)
    first = sweep.runs[0].run_id
    db = sqlite3.connect(sd / "registry.sqlite")
    db.execute("UPDATE runs SET run_id = '../../../../outside' WHERE run_id = ?", (first,))
    db.commit()
    db.close()
    before = tree_bytes(tmp_path)
    for args in (["run", sd, "--no-progress"], ["status", sd], ["export", sd, "--out", tmp_path / "exp"]):
        assert "'../../../../outside', which is not a run name" in _one_error_line(invoke(sweep_app, args))
    assert tree_bytes(tmp_path) == before and not (tmp_path / "exp").exists()  # refused before any write
    # Tampered after the sweep was opened: the worker refuses the job before writing anything.
    with pytest.raises(LmscaleError, match="not a run name"):
        run_sweep(sweep)
    assert not (tmp_path / "outside").exists() and not (sd / "runs").exists()
    assert [p for p in tree_bytes(tmp_path) if not p.startswith("a/b/sw/")] == [p for p in before if not p.startswith("a/b/sw/")]
    assert {j["status"] for j in _jobs(sd)} == {"pending"}  # handed back, not left 'running'


# -- bad input: one line, exit 2 ---------------------------------------------------------------


def _one_error_line(r):
    """Exit 2 and one line `error: ...`, the last thing on stderr (after any progress lines)."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == 2 and lines and lines[-1].startswith("error: "), r.output
    assert sum(ln.startswith("error: ") for ln in lines) == 1 and "Traceback" not in r.output, r.output
    return lines[-1]


def _garbage_registry(sd):
    (sd / "registry.sqlite").write_bytes(os.urandom(8192))


def _binary_record(sd):
    (sd / "sweep.yaml").write_bytes(b"\x00\xff\xfe binary " + os.urandom(512))


@pytest.mark.parametrize("command, spoil, fragment", [
    ("status", _garbage_registry, "is not a database"),
    ("run", _garbage_registry, "is not a database"),
    ("export", _garbage_registry, "is not a database"),
    ("run", _binary_record, "sweep.yaml' is unreadable"),
    ("status", _binary_record, "sweep.yaml' is unreadable"),
])
def test_unreadable_sweep_files_are_one_line_errors(sweep_spec, tmp_path, command, spoil, fragment):
    sd = tmp_path / "sw"
    open_sweep(write_yaml(tmp_path / "spec.yaml", sweep_spec()), sd)
    spoil(sd)
    before = tree_bytes(tmp_path)
    extra = {"run": ["--no-progress"], "export": ["--out", tmp_path / "exp"]}.get(command, [])
    r = invoke(sweep_app, [command, sd] + extra)
    assert fragment in _one_error_line(r)
    assert tree_bytes(tmp_path) == before and not (tmp_path / "exp").exists()  # nothing changed, no --out made


def test_sweep_run_into_a_file_is_a_one_line_error(sweep_spec, tmp_path):
    (tmp_path / "afile").write_text("x")
    r = invoke(sweep_app, ["run", write_yaml(tmp_path / "spec.yaml", sweep_spec()), "--dir", tmp_path / "afile"])
    assert r.stderr.startswith("error: ") and "is a file" in _one_error_line(r)  # nothing prepared first
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.parametrize("patch, fragment", [
    ({"ladder": {"depths": [1, 2], "aspect_ratio": 16, "head_dim": 8}, "grid": {"model.depth": [1, 2]}},
     "grid key 'model.depth' would be overridden: the ladder sets model.depth"),
    ({"grid": {"model.width": [16, 32]}}, "grid key 'model.width' would be overridden: the ladder sets model.width"),
    ({"grid": {"model": [{"context": 32}]}}, "grid key 'model' would be overridden: the ladder sets model."),
    ({"grid": {"train.steps": [10, 20]}}, "grid key 'train.steps' would be overridden: the token budget"),
    ({"grid": {"train": [{"steps": 10, "batch_size": 8}]}}, "grid key 'train' would be overridden: the token budget"),
    ({"set": {"train.steps": 10}}, "set key 'train.steps' would be overridden: the token budget"),
    ({"set": {"train": {"steps": 10}}}, "set key 'train' would be overridden: the token budget ('tokens') sets train.steps"),
    ({"set": {"model.heads": 4}}, "set key 'model.heads' would be overridden: the ladder sets model.heads"),
    ({"set": {"seed": 4}}, "set key 'seed' would be overridden: the 'seeds' list sets seed"),
])
def test_grid_and_set_keys_the_expansion_overrides_are_errors(sweep_spec, tmp_path, patch, fragment):
    r = invoke(sweep_app, ["plan", write_yaml(tmp_path / "spec.yaml", sweep_spec(**patch)), "--no-calibrate"])
    assert r.stderr.startswith("error: ") and fragment in _one_error_line(r)  # refused before any data is prepared


def test_a_million_run_grid_is_refused_at_once_naming_the_limit(sweep_spec, tmp_path):
    grid = {"train.optimizer.lr": [1e-3 + 1e-6 * i for i in range(1000)],
            "train.optimizer.beta2": [0.9 + 1e-5 * i for i in range(1000)]}
    spec = sweep_spec(branches="none", ladder={"shapes": [{"depth": 1, "width": 16, "heads": 2}]},
                      tokens={"absolute": [8 * 32 * 4]}, grid=grid)
    path = write_yaml(tmp_path / "spec.yaml", spec)
    t0 = time.perf_counter()
    r = invoke(sweep_app, ["plan", path, "--no-calibrate"])
    assert time.perf_counter() - t0 < 5
    line = _one_error_line(r)
    assert r.stderr.startswith("error: ") and "expands to up to 1,000,000 runs" in line and "at most 10,000" in line
