"""The SQLite registry: exclusive claims across processes, takeover of dead workers' jobs."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import pytest

from lmscale.sweep.registry import Registry, worker_id
from lmscale.sweep.spec import PlannedRun


def _runs(n):
    return [PlannedRun(run_id=f"r{i}", trunk=f"r{i}", job=f"j{i}", family="f", config={"model": {"depth": 1, "width": 8, "heads": 1}},
                       seed=0, n_params=1, n_nonembed=1, tokens=1, flops=1.0, flops_6n=1.0, budget=None, steps=1,
                       fork_step=None, order=i) for i in range(n)]


CLAIMER = """
import sys, time
from lmscale.sweep.registry import Registry
reg = Registry(sys.argv[1])
got = []
while (job := reg.claim(sys.argv[2])) is not None:
    got.append(job)
    reg.finish_job(job, "done")
print(" ".join(got))
"""


def test_concurrent_processes_never_claim_the_same_job(tmp_path):
    path = tmp_path / "registry.sqlite"
    reg = Registry(path)
    assert reg.add_runs(_runs(60)) == 60
    assert reg.add_runs(_runs(60)) == 0  # idempotent
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(path), f"w{i}"], stdout=subprocess.PIPE, text=True)
             for i in range(4)]
    claimed = [p.communicate(timeout=120)[0].split() for p in procs]
    flat = [j for c in claimed for j in c]
    assert sorted(flat) == sorted(f"j{i}" for i in range(60))  # every job exactly once
    assert all(j["attempts"] == 1 for j in reg.jobs())


def test_jobs_of_dead_or_silent_workers_are_taken_over(tmp_path):
    reg = Registry(tmp_path / "registry.sqlite")
    reg.add_runs(_runs(3))
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    dead = f"{worker_id().rpartition(':')[0]}:{p.pid}"
    alive = worker_id()
    assert reg.claim(dead) == "j0"
    assert reg.claim(alive) == "j0"  # the claimant's process is gone: taken over at once
    assert reg.claim("other-host:1") == "j1"
    # Another host's worker with a fresh heartbeat keeps its job; a stale one loses it.
    assert reg.claim(alive, stale_after=60) == "j2"
    assert reg.claim("third-host:2", stale_after=60) is None
    reg.db.execute("UPDATE jobs SET heartbeat = ? WHERE job = 'j1'", (time.time() - 100,))
    assert reg.claim("third-host:2", stale_after=60) == "j1"
    assert {j["job"]: j["attempts"] for j in reg.jobs()} == {"j0": 2, "j1": 2, "j2": 1}


def test_retry_failed_requeues_failed_and_diverged_runs(tmp_path):
    reg = Registry(tmp_path / "registry.sqlite")
    reg.add_runs(_runs(2))
    for r, st in (("r0", "failed"), ("r1", "diverged")):
        reg.claim("h:1")
        reg.set_run(r, st, error="boom")
    reg.finish_job("j0", "failed")
    reg.finish_job("j1", "failed")
    assert reg.claim("h:2") is None
    assert reg.retry_failed() == 2
    assert reg.counts()["pending"] == 2
    assert reg.claim("h:2") == "j0"


def test_a_readonly_registry_reads_and_never_writes(tmp_path):
    path = tmp_path / "registry.sqlite"
    reg = Registry(path)
    reg.add_runs(_runs(2))
    reg.set_run("r0", "done", final_loss=2.5)
    reg.db.execute("DROP TABLE evals")  # a registry from before the evals table: opening it must not add one
    reg.close()
    before = path.read_bytes()
    ro = Registry(path, readonly=True)
    try:
        assert [(r["run_id"], r["status"], r["final_loss"]) for r in ro.runs()] == [("r0", "done", 2.5), ("r1", "pending", None)]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            ro.set_run("r1", "done")
    finally:
        ro.close()
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["registry.sqlite"]
    with pytest.raises(sqlite3.OperationalError):
        Registry(tmp_path / "missing.sqlite", readonly=True)  # never created
    assert not (tmp_path / "missing.sqlite").exists()
