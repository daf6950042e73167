"""Running sweeps: WSD branches equal standalone runs, kills lose nothing, workers share a sweep."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lmscale.train.config import validate_config
from lmscale.errors import LmscaleError
from lmscale.sweep.registry import Registry
from lmscale.sweep.results import write_results
from lmscale.sweep.runner import open_sweep, run_sweep
from lmscale.train.lm import train
from lmscale.train.run import load_run
from tests.helpers import run_cli, write_yaml


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


def _start(spec_path, sweep_dir):
    return subprocess.Popen([sys.executable, "-m", "lmscale", "sweep", "run", str(spec_path), "--dir", str(sweep_dir),
                             "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


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
