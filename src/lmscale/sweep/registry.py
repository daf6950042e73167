"""The run registry: one SQLite file per sweep recording every run's state and final figures.

Runs are grouped into *jobs* (a trunk with its WSD branches, or the seeds of a vmapped ensemble)
and workers claim whole jobs. A claim is one `BEGIN IMMEDIATE` transaction, so two workers never
take the same job; the runner backs it with a lease file per job (`lmscale.sweep.lease`), which
stays exclusive where SQLite's locking does not (network file systems). A worker that dies
leaves its job 'running'; another worker takes it over only once the owner is gone: on the same
host, once its process no longer runs (pid *and* start time, so a reused pid does not count as the
owner); on another host, once its heartbeat is older than `stale_after` seconds. A live worker's
job is never taken over on its own host, however long it stalls (a SIGSTOP, a debugger). The
runs themselves resume from their checkpoints, so a takeover loses at most the steps since the
last checkpoint, and a finished run is never trained again: a run marked 'done' stays done, and
only the job's current worker may record its runs (`set_run(..., worker=)`).

Run states: pending, running, done, failed, diverged (also 'paused' for a trunk between branches).
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from lmscale.errors import LmscaleError

REGISTRY = "registry.sqlite"
RUNS = "runs"  # the sweep directory's run directories: runs/<run_id>
RUN_STATES = ("pending", "running", "paused", "done", "failed", "diverged")
# Run and job ids are run names (`RunConfig.name`'s pattern) and become directory and file names
# (runs/<run_id>, leases/<job>): anything else in the registry was not written by lmscale. At most
# MAX_ID_CHARS, so that with the suffixes of temporary names (".forking") they stay under
# NAME_MAX (255 bytes).
MAX_ID_CHARS = 200
ID_PATTERN = re.compile(rf"[A-Za-z0-9_][A-Za-z0-9_.-]{{0,{MAX_ID_CHARS - 1}}}")
# Tests set this to a number of seconds to sleep between reading a claim and writing it (here,
# between the SELECT and the UPDATE; in lease.py between reading a lease and creating the next),
# so that a claim that is not exclusive loses the race every time instead of now and then.
CLAIM_DELAY_ENV = "LMSCALE_TEST_CLAIM_DELAY"

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


def claim_delay() -> None:
    delay = os.environ.get(CLAIM_DELAY_ENV)
    if delay:
        time.sleep(float(delay))


def check_id(value: Any, what: str, where: str) -> str:
    """`value` if it is a run name (usable as one path component), else a one-line error."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise LmscaleError(
            f"{where} holds {what} {value!r}, which is not a run name; expected letters, digits, '_', '.' or '-' "
            f"(at most {MAX_ID_CHARS}, not starting with '.' or '-'), as lmscale writes them (was the registry edited?)"
        )
    return value


def run_dir_of(sweep_dir: str | os.PathLike, run_id: Any) -> Path:
    """`sweep_dir/runs/<run_id>`, refused (one line) unless `run_id` is a run name and the path
    resolves to a directory directly inside `runs/` (not elsewhere through '..' or a symlink):
    the registry is a file that any worker sharing the directory can write."""
    runs = Path(sweep_dir) / RUNS
    check_id(run_id, "run id", f"sweep {str(sweep_dir)!r}")
    where = (runs / run_id).resolve()
    if where.parent != runs.resolve():
        raise LmscaleError(f"run directory {str(runs / run_id)!r} resolves to {str(where)!r}, outside {str(runs)!r}; "
                           "expected the sweep's own run directories (a symlink there?)")
    return runs / run_id


def process_start(pid: int) -> int | None:
    """A process's start time (clock ticks after boot, /proc/<pid>/stat field 22): with the pid it
    names one process for the life of the host, where a pid alone may be reused. None where
    there is no /proc (not Linux), the process is gone, or it is a zombie (dead, not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name (field 2) may hold spaces and ')'
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def worker_id() -> str:
    """This process as a worker: host:pid:start (start = `process_start`; host:pid without /proc)."""
    pid = os.getpid()
    start = process_start(pid)
    return f"{socket.gethostname()}:{pid}" + (f":{start}" if start is not None else "")


def worker_alive(worker: str | None) -> bool | None:
    """Whether a worker's process still runs: True/False on this host, None for another host.

    On Linux a worker id carries its process's start time, so a pid since reused by another
    process reads as gone. Ids without it (no /proc, or registries from before) trust the pid.
    """
    if not worker or ":" not in worker:
        return None
    host, pid_s, *start = worker.split(":")
    if host != socket.gethostname():
        return None
    try:
        pid = int(pid_s)
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    except (ValueError, OverflowError):
        return None  # not an id lmscale writes: no claim on liveness either way
    if Path("/proc/self/stat").exists():
        now = process_start(pid)
        if now is None:
            return False  # gone (or a zombie) since the kill above
        if start:
            return start[0] == str(now)
    return True


class Registry:
    def __init__(self, path: str | os.PathLike, readonly: bool = False):
        """Open (or create) the registry; `readonly=True` opens an existing one for reading only
        (no directory, no schema, no write lock: what readers such as the results tables use).

        Anything that is not a readable lmscale registry (random bytes, another database, a
        read-only directory) is a one-line `LmscaleError`."""
        self.path = Path(path)
        try:
            if readonly:
                where, uri = f"{self.path.resolve().as_uri()}?mode=ro", True
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                where, uri = str(self.path), False
        except OSError as err:
            raise LmscaleError(f"cannot create registry {str(self.path)!r} ({err.strerror or err}); "
                               "expected a writable sweep directory") from None
        with self._errors("open"):
            # autocommit mode; transactions are explicit. A generous busy timeout lets many workers wait.
            self.db = sqlite3.connect(where, timeout=60.0, isolation_level=None, uri=uri)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA busy_timeout = 60000")
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if readonly:
            if not {"runs", "jobs"} <= tables:
                self.db.close()
                raise LmscaleError(f"{str(self.path)!r} is an SQLite file without the tables 'runs' and 'jobs'; "
                                   "expected the registry written by `lmscale sweep run`")
            return
        with self.transaction():
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    self.db.execute(stmt)

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """SQLite's failures as one line naming the file (garbage bytes: 'file is not a database';
        a read-only directory; a lock held past the busy timeout)."""
        try:
            yield
        except sqlite3.Error as err:
            raise LmscaleError(f"registry {str(self.path)!r}: cannot {doing} ({err}); expected the registry.sqlite "
                               "written by `lmscale sweep run`, in a writable directory") from None

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._errors("write"):
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

    def claim(self, worker: str, stale_after: float = 120.0, take: Callable[[str], bool] | None = None) -> str | None:
        """Atomically take the next pending job (or one whose worker is gone); None if none is left.

        `take(job)` runs inside the transaction before the job is recorded as this worker's; False
        skips the job (the runner acquires the job's lease file there). A job whose worker is
        alive on this host is never taken; one on another host only after `stale_after` seconds
        without a heartbeat.
        """
        now = time.time()
        with self.transaction() as db:
            rows = db.execute(
                "SELECT job, status, worker, heartbeat FROM jobs WHERE status IN ('pending', 'running') ORDER BY ord"
            ).fetchall()
            claim_delay()
            for row in rows:
                if row["status"] == "running":
                    if row["worker"] == worker:
                        continue
                    alive = worker_alive(row["worker"])
                    stale = row["heartbeat"] is None or now - row["heartbeat"] > stale_after
                    if alive is True or alive is None and not stale:
                        continue
                if take is not None and not take(check_id(row["job"], "job", f"registry {str(self.path)!r}")):
                    continue
                db.execute(
                    "UPDATE jobs SET status = 'running', worker = ?, heartbeat = ?, attempts = attempts + 1, error = NULL "
                    "WHERE job = ?",
                    (worker, now, row["job"]),
                )
                return row["job"]
        return None

    def heartbeat(self, job: str, worker: str) -> bool:
        """Refresh `worker`'s heartbeat on `job`; False if the job is no longer its own."""
        with self.transaction() as db:
            cur = db.execute("UPDATE jobs SET heartbeat = ? WHERE job = ? AND worker = ? AND status = 'running'",
                             (time.time(), job, worker))
        return cur.rowcount == 1

    def owner(self, job: str) -> str | None:
        """The worker of a running job (None if the job is not running)."""
        with self._errors("read"):
            row = self.db.execute("SELECT worker FROM jobs WHERE job = ? AND status = 'running'", (job,)).fetchone()
        return row[0] if row else None

    def finish_job(self, job: str, status: str, error: str | None = None, worker: str | None = None) -> bool:
        """Record a job's end; with `worker`, only while the job is still that worker's (returns
        whether it was recorded)."""
        q = "UPDATE jobs SET status = ?, error = ?, heartbeat = ? WHERE job = ?"
        args: tuple = (status, error, time.time(), job)
        if worker is not None:
            q, args = q + " AND worker = ? AND status = 'running'", args + (worker,)
        with self.transaction() as db:
            return db.execute(q, args).rowcount == 1

    def hand_back(self, job: str, worker: str) -> bool:
        """Put `worker`'s running job (and its running runs) back to pending; False if it is not its own."""
        with self.transaction() as db:
            if db.execute("UPDATE jobs SET status = 'pending' WHERE job = ? AND worker = ? AND status = 'running'",
                          (job, worker)).rowcount != 1:
                return False
            db.execute("UPDATE runs SET status = 'pending' WHERE job = ? AND status = 'running'", (job,))
        return True

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
        with self._errors("read"):
            rows = self.db.execute("SELECT * FROM runs WHERE job = ? ORDER BY ord", (job,)).fetchall()
        return [self._run(r) for r in rows]

    def set_run(self, run_id: str, status: str, worker: str | None = None, **fields: Any) -> bool:
        """Record a run's state and figures; returns whether it was recorded.

        A run marked 'done' is never changed again (results are written once, whoever comes
        late), and with `worker` the run is recorded only while its job is that worker's.
        """
        if status not in RUN_STATES:
            raise ValueError(f"unknown run status {status!r}")
        cols = {"status": status, "updated": time.time(), **fields}
        sets = ", ".join(f"{k} = ?" for k in cols)
        q, args = f"UPDATE runs SET {sets} WHERE run_id = ? AND status != 'done'", (*cols.values(), run_id)
        if worker is not None:
            q += " AND job IN (SELECT job FROM jobs WHERE worker = ? AND status = 'running')"
            args += (worker,)
        with self.transaction() as db:
            return db.execute(q, args).rowcount == 1

    def runs(self) -> list[dict[str, Any]]:
        with self._errors("read"):
            rows = self.db.execute("SELECT * FROM runs ORDER BY ord").fetchall()
        return [self._run(r) for r in rows]

    def jobs(self) -> list[dict[str, Any]]:
        with self._errors("read"):
            return [dict(r) for r in self.db.execute("SELECT * FROM jobs ORDER BY ord").fetchall()]

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in RUN_STATES}
        with self._errors("read"):
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
        with self._errors("read"):
            return [json.loads(r[0]) for r in self.db.execute(q, (run_id,) if run_id is not None else ())]

    def _run(self, row: sqlite3.Row) -> dict[str, Any]:
        """A run row, its ids checked (they become paths) and its JSON decoded."""
        d = dict(row)
        where = f"registry {str(self.path)!r}"
        check_id(d["run_id"], "run id", where)
        check_id(d["job"], "job", where)
        try:
            d["plan"] = json.loads(d["plan"])
            d["config"] = json.loads(d["config"])
        except (TypeError, ValueError) as err:
            raise LmscaleError(f"{where}: run {d['run_id']!r} has an unreadable plan or config ({err}); "
                               "expected the JSON lmscale writes") from None
        if not isinstance(d["plan"], dict) or not isinstance(d["config"], dict):
            raise LmscaleError(f"{where}: run {d['run_id']!r} has a plan or config that is not a mapping; "
                               "expected the JSON objects lmscale writes")
        if "trunk" in d["plan"]:
            check_id(d["plan"]["trunk"], "trunk", where)
        return d

