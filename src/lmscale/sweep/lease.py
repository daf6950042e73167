"""Job leases: one small file per claim, exclusive even where SQLite's locking is not.

SQLite's locks are unreliable on network file systems (NFS), so the registry's claim of a job
(one `BEGIN IMMEDIATE` transaction) is backed by a lease file, and the lease decides who owns the
job. The leases of job J live in ``leases/J/`` as numbered *generations* ``00000001``,
``00000002``, ...; the newest one names the owner. Taking a job writes the next generation
completely under a temporary name and `os.link`s it into place: `link()` fails if the name
exists, atomically on local disks and on NFS alike (where even O_CREAT|O_EXCL was not atomic
before NFSv3), so of any number of workers racing for one generation exactly one wins.

A generation may be created only when the newest one is *free*: released by its owner (the job
finished or was handed back), or its worker is gone: on the same host its process no longer runs
(pid and start time, `registry.worker_alive`), on another host its heartbeat (wall-clock seconds,
rewritten by the owner every few seconds) is older than `stale_after`. So a live worker on the
same host keeps its job however long it stalls, and hosts must agree on the time to well within
`stale_after` (NTP does; the default is 120 s). A worker owns its job only while its generation
is the newest: `Hold` checks that before each stage of training and before each result is
recorded, and its heartbeat thread at every beat, so a worker on another host that was stalled
past `stale_after` and lost its job stops instead of training it a second time.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmscale.errors import LmscaleError
from lmscale.sweep.registry import Registry, check_id, claim_delay, worker_alive

LEASES = "leases"
_GEN_DIGITS = 8


class ClaimLost(Exception):
    """This worker no longer owns its job: another worker took it over (this one stalled past
    the lease on another host, or the registry was reset). Not a failure of the job's runs."""


@dataclass(frozen=True)
class Lease:
    """Generation `gen` of job `job`'s lease, held by `worker` (the `token` tells it from a
    generation of the same number made again after the directory was cleared)."""

    root: Path
    job: str
    gen: int
    worker: str
    token: str

    @property
    def path(self) -> Path:
        return self.root / self.job / f"{self.gen:0{_GEN_DIGITS}d}"

    def is_newest(self) -> bool:
        """Whether this lease still owns its job (no newer generation, and its file is ours)."""
        gens = generations(self.root, self.job)
        if not gens or gens[-1] != self.gen:
            return False
        rec = read_lease(self.path)
        return rec is not None and rec.get("token") == self.token and not rec.get("released")

    def renew(self) -> bool:
        """Rewrite this lease with a fresh heartbeat; False (and nothing written) once it lost the job.

        A newer generation made between the check and the write leaves this file behind as an
        older generation, which no one reads as the owner."""
        if not self.is_newest():
            return False
        _write(self.path, self._record(), replace=True)
        return True

    def release(self) -> None:
        """Mark the lease free (the job is finished or handed back), if it is still ours."""
        if self.is_newest():
            _write(self.path, self._record() | {"released": True}, replace=True)

    def _record(self) -> dict[str, Any]:
        return {"job": self.job, "gen": self.gen, "worker": self.worker, "token": self.token, "heartbeat": time.time(),
                "host": socket.gethostname(), "released": False}


def generations(root: Path, job: str) -> list[int]:
    try:
        names = os.listdir(Path(root) / job)
    except FileNotFoundError:
        return []
    return sorted(int(n) for n in names if len(n) == _GEN_DIGITS and n.isdigit())


def read_lease(path: Path) -> dict[str, Any] | None:
    """A lease's record; None if the file is gone (a newer generation pruned it). A file that is
    not a lease record (edited by hand) counts as free once its mtime is `stale_after` old."""
    try:
        text = path.read_text(encoding="utf-8")
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        rec = json.loads(text)
        if isinstance(rec, dict) and isinstance(rec.get("heartbeat"), (int, float)):
            return rec
    except ValueError:
        pass
    return {"worker": None, "heartbeat": mtime, "released": False}


def is_free(rec: dict[str, Any], stale_after: float, now: float | None = None) -> bool:
    """Whether a lease record may be superseded: released, its worker gone from this host, or
    (another host's) no heartbeat for `stale_after` seconds."""
    if rec.get("released"):
        return True
    alive = worker_alive(rec.get("worker"))
    if alive is not None:
        return not alive
    return (time.time() if now is None else now) - float(rec["heartbeat"]) > stale_after


def acquire(root: str | os.PathLike, job: str, worker: str, stale_after: float = 120.0) -> Lease | None:
    """Create the next generation of `job`'s lease for `worker`, or None while it is held.

    None also when another worker created that generation first, or the newest one vanished
    while it was read (superseded just then): the job is someone else's, at least for now.
    """
    root = Path(root)
    check_id(job, "job", f"lease directory {str(root)!r}")
    try:
        (root / job).mkdir(parents=True, exist_ok=True)
        gens = generations(root, job)
        if gens:
            rec = read_lease(root / job / f"{gens[-1]:0{_GEN_DIGITS}d}")
            # A worker trains one job at a time, so a lease of its own that it is claiming again
            # is one it left behind (its registry row was handed back): free.
            if rec is None or not (rec.get("worker") == worker or is_free(rec, stale_after)):
                return None
        claim_delay()  # tests: widen the window between reading the newest lease and creating the next
        lease = Lease(root, job, (gens[-1] if gens else 0) + 1, worker, secrets.token_hex(8))
        if not _write(lease.path, lease._record(), replace=False):
            return None
        for g in gens:  # older generations name no owner; keep the directory small
            (root / job / f"{g:0{_GEN_DIGITS}d}").unlink(missing_ok=True)
        return lease
    except OSError as err:
        raise LmscaleError(f"cannot write the lease of job {job!r} in {str(root)!r} ({err.strerror or err}); "
                           "expected a writable sweep directory") from None


def _write(path: Path, record: dict[str, Any], replace: bool) -> bool:
    """Write `record` completely under a temporary name, then rename it over `path` (`replace`)
    or hard-link it to `path`, failing if `path` exists (the exclusive create)."""
    data = json.dumps(record).encode("utf-8")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK):
                raise
            return _create_exclusive(path, data)  # a file system without hard links
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _create_exclusive(path: Path, data: bytes) -> bool:
    """O_CREAT|O_EXCL: exclusive too, but a reader may see the file before its record, which
    `read_lease` reads as held (heartbeat = its mtime): safe, only slower to free."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return True


class Hold:
    """A worker's hold on one job while it trains it: the lease and the registry row, renewed by
    a background thread every `every` seconds (its own registry connection) and checked by
    `check` in the worker's thread.

    `check` raises `ClaimLost` once either says the job is another worker's. Cheap to call often
    (each training step): between beats it only reads the thread's verdict, except that it looks
    itself when a beat is overdue, so a worker resuming from a stall finds out at its first
    check, before the heartbeat thread runs again.
    """

    def __init__(self, registry: Registry, lease: Lease, every: float = 15.0):
        self.registry, self.lease, self.every = registry, lease, every
        self._lost: str | None = None
        self._last = time.monotonic()  # the monotonic clock runs on while a process is stopped
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @property
    def job(self) -> str:
        return self.lease.job

    def _loop(self) -> None:
        reg = Registry(self.registry.path)
        try:
            while not self._stop.wait(self.every):
                try:
                    mine = self.lease.renew() and reg.heartbeat(self.job, self.lease.worker)
                except (OSError, LmscaleError):  # disk or registry briefly unavailable: try again at the next beat
                    continue
                if not mine:
                    self._lost = f"job {self.job!r} was taken over by another worker"
                    return
                self._last = time.monotonic()
        finally:
            reg.close()

    def verify(self) -> bool:
        """Look now: is the job still this worker's (newest lease, and the registry's worker)? If
        so, the lease is renewed at once, so that a worker resuming from a stall does not leave
        it stale while it trains on."""
        if self._lost is None and not (self.lease.renew() and self.registry.owner(self.job) == self.lease.worker):
            self._lost = f"job {self.job!r} is no longer this worker's (another worker took it over)"
        self._last = time.monotonic()
        return self._lost is None

    def check(self, before: str = "", now: bool = False) -> None:
        """Raise `ClaimLost` if the job is no longer this worker's; `now`: look rather than trust
        the last beat (before a stage of training, before recording a result)."""
        if self._lost is None and (now or time.monotonic() - self._last > self.every):
            self.verify()
        if self._lost is not None:
            raise ClaimLost(self._lost + (f"; stopped before {before}" if before else ""))

    def __enter__(self) -> "Hold":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
