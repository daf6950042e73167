"""The run registry: one SQLite file per sweep recording every run's state and final figures.

Runs are grouped into *jobs* (a trunk with its WSD branches, or the seeds of a vmapped ensemble)
and workers claim whole jobs. A claim is one `BEGIN IMMEDIATE` transaction, so two workers never
take the same job. A worker that dies leaves its job 'running'; another worker may take it over
once the owner's process is gone (same host) or its heartbeat is older than `stale_after`
seconds. The runs themselves resume from their checkpoints, so a takeover loses at most the steps
since the last checkpoint, and a finished run is never trained again.

Run states: pending, running, done, failed, diverged (also 'paused' for a trunk between branches).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

REGISTRY = "registry.sqlite"
RUN_STATES = ("pending", "running", "paused", "done", "failed", "diverged")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    ord INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    plan TEXT NOT NULL,          -- JSON: N, D, C, seed, grid values, ... (PlannedRun.row())
    config TEXT NOT NULL,        -- JSON: the run config
    final_loss REAL,
    final_loss_se REAL,
    best_loss REAL,
    tokens_per_s REAL,
    train_s REAL,
    error TEXT,
    updated REAL
);
CREATE TABLE IF NOT EXISTS jobs (
    job TEXT PRIMARY KEY,
    ord INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    worker TEXT,
    heartbeat REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE TABLE IF NOT EXISTS evals (
    run_id TEXT NOT NULL,
    task TEXT NOT NULL,
    metric TEXT NOT NULL,
    k_shot INTEGER NOT NULL,
    value REAL,
    ci_low REAL,
    ci_high REAL,
    n_examples INTEGER,
    step INTEGER,
    row TEXT NOT NULL,           -- JSON: the whole evaluation row (lmscale.emergence.results.EvalRow)
    updated REAL,
    PRIMARY KEY (run_id, task, metric, k_shot)
);
"""


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_alive(worker: str | None) -> bool | None:
    """Whether a worker's process still runs: True/False on this host, None for another host."""
    if not worker or ":" not in worker:
        return None
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


class Registry:
    def __init__(self, path: str | os.PathLike, readonly: bool = False):
        """Open (or create) the registry; `readonly=True` opens an existing one for reading only
        (no directory, no schema, no write lock: what readers such as the results tables use)."""
        self.path = Path(path)
        if readonly:
            where, uri = f"{self.path.resolve().as_uri()}?mode=ro", True
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            where, uri = str(self.path), False
        # autocommit mode; transactions are explicit. A generous busy timeout lets many workers wait.
        self.db = sqlite3.connect(where, timeout=60.0, isolation_level=None, uri=uri)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA busy_timeout = 60000")
        if readonly:
            return
        with self.transaction():
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    self.db.execute(stmt)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- setup -------------------------------------------------------------------------------

    def add_runs(self, runs) -> int:
        """Insert planned runs not yet registered (idempotent); returns how many were new."""
        now = time.time()
        new = 0
        with self.transaction() as db:
            for r in runs:
                cur = db.execute(
                    "INSERT OR IGNORE INTO runs (run_id, job, ord, plan, config, updated) VALUES (?, ?, ?, ?, ?, ?)",
                    (r.run_id, r.job, r.order, json.dumps(r.row()), json.dumps(r.config), now),
                )
                new += cur.rowcount
                db.execute("INSERT OR IGNORE INTO jobs (job, ord) VALUES (?, ?)", (r.job, r.order))
                db.execute("UPDATE jobs SET ord = MIN(ord, ?) WHERE job = ?", (r.order, r.job))
        return new

    # -- claiming ----------------------------------------------------------------------------

    def claim(self, worker: str, stale_after: float = 120.0) -> str | None:
        """Atomically take the next pending job (or one whose worker is gone); None if none is left."""
        now = time.time()
        with self.transaction() as db:
            rows = db.execute(
                "SELECT job, status, worker, heartbeat FROM jobs WHERE status IN ('pending', 'running') ORDER BY ord"
            ).fetchall()
            for row in rows:
                if row["status"] == "running":
                    if row["worker"] == worker:
                        continue
                    alive = worker_alive(row["worker"])
                    stale = row["heartbeat"] is None or now - row["heartbeat"] > stale_after
                    if alive is True and not stale or alive is None and not stale:
                        continue
                db.execute(
                    "UPDATE jobs SET status = 'running', worker = ?, heartbeat = ?, attempts = attempts + 1, error = NULL "
                    "WHERE job = ?",
                    (worker, now, row["job"]),
                )
                return row["job"]
        return None

    def heartbeat(self, job: str, worker: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE jobs SET heartbeat = ? WHERE job = ? AND worker = ?", (time.time(), job, worker))

    def finish_job(self, job: str, status: str, error: str | None = None) -> None:
        with self.transaction() as db:
            db.execute("UPDATE jobs SET status = ?, error = ?, heartbeat = ? WHERE job = ?", (status, error, time.time(), job))

    def retry_failed(self) -> int:
        """Put failed and diverged runs (and their jobs) back to pending; returns how many runs."""
        with self.transaction() as db:
            jobs = [r[0] for r in db.execute("SELECT DISTINCT job FROM runs WHERE status IN ('failed', 'diverged')")]
            n = db.execute("UPDATE runs SET status = 'pending', error = NULL WHERE status IN ('failed', 'diverged')").rowcount
            for j in jobs:
                db.execute("UPDATE jobs SET status = 'pending', worker = NULL, error = NULL WHERE job = ?", (j,))
        return n

    # -- runs --------------------------------------------------------------------------------

    def job_runs(self, job: str) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM runs WHERE job = ? ORDER BY ord", (job,)).fetchall()
        return [self._run(r) for r in rows]

    def set_run(self, run_id: str, status: str, **fields: Any) -> None:
        if status not in RUN_STATES:
            raise ValueError(f"unknown run status {status!r}")
        cols = {"status": status, "updated": time.time(), **fields}
        sets = ", ".join(f"{k} = ?" for k in cols)
        with self.transaction() as db:
            db.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", (*cols.values(), run_id))

    def runs(self) -> list[dict[str, Any]]:
        return [self._run(r) for r in self.db.execute("SELECT * FROM runs ORDER BY ord").fetchall()]

    def jobs(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute("SELECT * FROM jobs ORDER BY ord").fetchall()]

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in RUN_STATES}
        for status, n in self.db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status"):
            out[status] = n
        return out

    # -- evaluations (lmscale eval) -----------------------------------------------------------

    def put_evals(self, rows: list[dict[str, Any]]) -> int:
        """Insert or replace evaluation rows (dicts with run_id, task, metric, k_shot, value, ...)."""
        now = time.time()
        with self.transaction() as db:
            for r in rows:
                db.execute(
                    "INSERT OR REPLACE INTO evals (run_id, task, metric, k_shot, value, ci_low, ci_high, n_examples, "
                    "step, row, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (r["run_id"], r["task"], r["metric"], int(r["k_shot"]), r.get("value"), r.get("ci_low"),
                     r.get("ci_high"), r.get("n_examples"), r.get("step"), json.dumps(r), now),
                )
        return len(rows)

    def evals(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Stored evaluation rows (the JSON of each), optionally of one run."""
        q = "SELECT row FROM evals" + (" WHERE run_id = ?" if run_id is not None else "") + " ORDER BY run_id, task, k_shot, metric"
        return [json.loads(r[0]) for r in self.db.execute(q, (run_id,) if run_id is not None else ())]

    @staticmethod
    def _run(row: sqlite3.Row) -> dict[str, Any]:
        d = dict(row)
        d["plan"] = json.loads(d["plan"])
        d["config"] = json.loads(d["config"])
        return d


class Heartbeat:
    """Refreshes a job's heartbeat from a background thread (its own connection) while work runs."""

    def __init__(self, path: Path, job: str, worker: str, every: float = 15.0):
        self.path, self.job, self.worker, self.every = path, job, worker, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        reg = Registry(self.path)
        try:
            while not self._stop.wait(self.every):
                reg.heartbeat(self.job, self.worker)
        finally:
            reg.close()

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
