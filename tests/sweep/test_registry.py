"""The SQLite registry and the job leases: exclusive claims across processes (also when a delay
is injected inside the claim), takeover of dead workers' jobs and never of live ones, results
written once, run ids that cannot leave the sweep directory, unreadable registries refused."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from lmscale.errors import LmscaleError
from lmscale.sweep import lease as leases
from lmscale.sweep.registry import CLAIM_DELAY_ENV, Registry, process_start, run_dir_of, worker_alive, worker_id
from lmscale.sweep.spec import PlannedRun

HOST = socket.gethostname()


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
        with pytest.raises(LmscaleError, match="readonly"):
            ro.set_run("r1", "done")
    finally:
        ro.close()
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["registry.sqlite"]
    with pytest.raises(LmscaleError, match="unable to open"):
        Registry(tmp_path / "missing.sqlite", readonly=True)  # never created
    assert not (tmp_path / "missing.sqlite").exists()


# -- claims under a forced race ---------------------------------------------------------------

# Each racer opens the registry (or the lease directory), says "ready", waits for the parent's
# "go" file and claims once with CLAIM_DELAY_ENV seconds between reading the claim and writing it.
# Both start within milliseconds of each other, far inside the delay, so a claim whose read is
# not exclusive hands both the same job every time (not 3 times in 15, as a plain race did).
RACER = """
import sys, time, pathlib
from lmscale.sweep import lease
from lmscale.sweep.registry import Registry
what, path, worker, go = sys.argv[1:5]
reg = Registry(path) if what == "registry" else None
print("ready", flush=True)
while not pathlib.Path(go).exists():
    time.sleep(0.005)
if reg is not None:
    print(reg.claim(worker, stale_after=60), flush=True)
else:
    got = lease.acquire(path, "j0", worker, stale_after=60)
    print(got.worker if got else None, flush=True)
"""
DELAY = 1.5  # seconds; the racers' start skew under load is tens of milliseconds


def _race(tmp_path, what, path, n=2):
    go = tmp_path / "go"
    env = dict(os.environ, **{CLAIM_DELAY_ENV: str(DELAY)})
    procs = [subprocess.Popen([sys.executable, "-c", RACER, what, str(path), f"other-host-{i}:{i + 1}", str(go)],
                              stdout=subprocess.PIPE, text=True, env=env) for i in range(n)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        t0 = time.perf_counter()
        go.touch()
        out = [p.communicate(timeout=120)[0].split()[-1] for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    return out, time.perf_counter() - t0


def test_a_claim_stays_exclusive_with_a_delay_between_its_read_and_its_write(tmp_path):
    path = tmp_path / "registry.sqlite"
    reg = Registry(path)
    reg.add_runs(_runs(3))
    got, seconds = _race(tmp_path, "registry", path)
    assert sorted(got) == ["j0", "j1"], got  # one job each: the second claim waited for the first
    assert seconds >= 2 * DELAY  # ... and it did wait (the claims ran one after the other)
    assert {j["job"]: j["attempts"] for j in reg.jobs()} == {"j0": 1, "j1": 1, "j2": 0}


def test_a_lease_is_created_by_exactly_one_of_two_racing_workers(tmp_path):
    root = tmp_path / "leases"
    # A stale lease of a silent host: both racers read it as free, then both try to supersede it.
    old = leases.Lease(root, "j0", 1, "gone-host:1", "t")
    (root / "j0").mkdir(parents=True)
    old.path.write_text(json.dumps(old._record() | {"heartbeat": time.time() - 3600}))
    got, _ = _race(tmp_path, "lease", root)
    winners = [g for g in got if g != "None"]
    assert len(winners) == 1, got
    assert leases.generations(root, "j0") == [2]
    assert leases.read_lease(root / "j0" / "00000002")["worker"] == winners[0]


# -- live workers keep their jobs --------------------------------------------------------------


@pytest.fixture
def stopped_process():
    """A live process on this host that makes no progress (SIGSTOPped `sleep`), as a worker id."""
    p = subprocess.Popen(["sleep", "300"])
    os.kill(p.pid, signal.SIGSTOP)
    try:
        yield p, f"{HOST}:{p.pid}:{process_start(p.pid)}"
    finally:
        p.kill()
        p.wait()


def test_a_live_workers_job_is_not_claimable_however_old_its_heartbeat(tmp_path, stopped_process):
    proc, stopped = stopped_process
    reg = Registry(tmp_path / "registry.sqlite")
    reg.add_runs(_runs(1))
    assert reg.claim(stopped) == "j0"
    reg.db.execute("UPDATE jobs SET heartbeat = ? WHERE job = 'j0'", (time.time() - 3600,))  # an hour silent
    assert worker_alive(stopped) is True
    assert reg.claim(worker_id(), stale_after=1) is None
    # The lease says the same: a stopped worker on this host holds its job.
    root = tmp_path / "leases"
    lease = leases.acquire(root, "j0", stopped)
    (root / "j0" / "00000001").write_text(json.dumps(lease._record() | {"heartbeat": time.time() - 3600}))
    assert leases.acquire(root, "j0", worker_id(), stale_after=1) is None
    # Its pid with another start time is another process (the pid was reused): the worker is gone.
    reused = f"{HOST}:{proc.pid}:{process_start(proc.pid) + 1}"
    assert worker_alive(reused) is False
    reg.db.execute("UPDATE jobs SET worker = ? WHERE job = 'j0'", (reused,))
    assert reg.claim(worker_id(), stale_after=1) == "j0"
    # Killed but not yet reaped (a zombie): gone too, whatever its id.
    reg.db.execute("UPDATE jobs SET worker = ?, status = 'running' WHERE job = 'j0'", (stopped,))
    proc.kill()
    time.sleep(0.2)
    assert worker_alive(stopped) is False
    assert reg.claim("h:2") == "j0"
    assert leases.acquire(root, "j0", "h:2", stale_after=1) is not None  # the zombie's lease is free


def test_a_lease_is_kept_only_while_it_is_the_newest(tmp_path):
    root = tmp_path / "leases"
    mine = leases.acquire(root, "j0", "host-a:1")
    assert mine.is_newest() and mine.renew()
    assert leases.acquire(root, "j0", "host-b:2", stale_after=60) is None  # fresh heartbeat: held
    rec = json.loads(mine.path.read_text())
    mine.path.write_text(json.dumps(rec | {"heartbeat": time.time() - 120}))
    theirs = leases.acquire(root, "j0", "host-b:2", stale_after=60)  # stale: superseded
    assert theirs is not None and theirs.gen == 2
    assert not mine.is_newest() and not mine.renew()  # the stalled owner finds out, and writes nothing
    assert leases.generations(root, "j0") == [2]
    mine.release()  # not its own any more: a no-op
    assert theirs.is_newest()
    theirs.release()
    again = leases.acquire(root, "j0", "host-c:3", stale_after=60)  # released: free at once
    assert again is not None and again.gen == 3


# -- results written once ----------------------------------------------------------------------


def test_a_done_run_is_never_rewritten_and_only_its_jobs_worker_records_it(tmp_path):
    reg = Registry(tmp_path / "registry.sqlite")
    reg.add_runs(_runs(2))
    assert reg.claim("h:1") == "j0"
    assert not reg.set_run("r0", "running", worker="h:2")  # not h:2's job
    assert reg.set_run("r0", "done", worker="h:1", final_loss=2.0)
    assert not reg.set_run("r0", "done", final_loss=3.0)  # done stays done, whoever comes late
    assert not reg.set_run("r0", "running")
    assert [(r["status"], r["final_loss"]) for r in reg.job_runs("j0")] == [("done", 2.0)]
    assert reg.heartbeat("j0", "h:1") and not reg.heartbeat("j0", "h:2")
    assert not reg.finish_job("j0", "done", worker="h:2") and reg.finish_job("j0", "done", worker="h:1")
    assert reg.claim("h:2") == "j1" and reg.hand_back("j1", "h:2") and not reg.hand_back("j1", "h:2")


# -- what the registry may name ----------------------------------------------------------------


def test_run_ids_from_the_registry_must_be_run_names_inside_the_sweep(tmp_path):
    sd = tmp_path / "a" / "b" / "sw"
    reg = Registry(sd / "registry.sqlite")
    reg.add_runs(_runs(2))
    reg.db.execute("UPDATE runs SET run_id = '../../../../outside' WHERE run_id = 'r0'")
    for read in (reg.runs, lambda: reg.job_runs("j0")):
        with pytest.raises(LmscaleError, match=r"run id '\.\./\.\./\.\./\.\./outside', which is not a run name") as e:
            read()
        assert "\n" not in str(e.value)
    for bad in ("../x", "a/b", ".", "..", ".hidden", "-x", "", "x" * 201, None, 3):
        with pytest.raises(LmscaleError, match="not a run name"):
            run_dir_of(sd, bad)
    assert run_dir_of(sd, "ok-L1W16-D3.07e3-s0") == sd / "runs" / "ok-L1W16-D3.07e3-s0"
    (sd / "runs").mkdir()
    (sd / "runs" / "r1").symlink_to(tmp_path)  # a name that is fine, pointing out of the sweep
    with pytest.raises(LmscaleError, match="outside"):
        run_dir_of(sd, "r1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


@pytest.mark.parametrize("content", [os.urandom(4096), b"SQLite format 3\x00" + os.urandom(2000)])
def test_an_unreadable_registry_is_a_one_line_error(tmp_path, content):
    path = tmp_path / "registry.sqlite"
    path.write_bytes(content)
    for readonly in (True, False):
        with pytest.raises(LmscaleError) as e:
            Registry(path, readonly=readonly).runs()
        assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert path.read_bytes() == content  # nothing written over it


def test_a_database_that_is_not_a_registry_is_refused_for_reading(tmp_path):
    path = tmp_path / "other.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(LmscaleError, match="without the tables 'runs' and 'jobs'"):
        Registry(path, readonly=True)


def test_curves_hold_one_point_per_evaluation_step_even_if_a_late_worker_appended_again(tmp_path):
    from lmscale.sweep.results import collect_results

    reg = Registry(tmp_path / "registry.sqlite")
    reg.add_runs(_runs(1))
    reg.close()
    (tmp_path / "runs" / "r0").mkdir(parents=True)
    recs = [{"kind": "eval", "step": s, "val_loss": 3.0 - 0.1 * s} for s in (1, 2, 3, 2, 3)]  # steps 2, 3 twice
    (tmp_path / "runs" / "r0" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    _, curves = collect_results(tmp_path)
    assert [(c["run_id"], c["step"]) for c in curves] == [("r0", 1), ("r0", 2), ("r0", 3)]


def test_leases_stay_exclusive_on_a_file_system_without_hard_links(tmp_path, monkeypatch):
    import errno

    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(leases.os, "link", no_links)
    root = tmp_path / "leases"
    mine = leases.acquire(root, "j0", "host-a:1")
    assert mine is not None and mine.is_newest()
    assert leases.acquire(root, "j0", "host-b:2", stale_after=60) is None
    (root / "j1").mkdir()
    (root / "j1" / "00000001").write_bytes(b"")  # created, record not yet written: held, not free
    assert leases.acquire(root, "j1", "host-b:2", stale_after=60) is None
