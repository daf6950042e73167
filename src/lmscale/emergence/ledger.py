"""The ability ledger: a persistent SQLite record of which tasks pass at which scale, across sweeps.

Chung's advice, as a table: an idea that "does not work" may only "not work yet", so every new
ladder's evaluations are added here and the ledger answers which tasks flipped from fail to pass
at which scale, and which are still "not yet".

    ledger = Ledger()                      # <lmscale cache>/ledger.sqlite, or Ledger(path)
    ledger.add(read_eval_table("sweeps/a"), source="sweeps/a")
    for s in ledger.status(): print(s.task, s.state, s.flip_N)

One row per (source, run_id, task, metric, k_shot, step); adding the same source again updates
those rows in place (no duplicates). A row passes when its value reaches the metric's threshold:
by default half-way from chance to perfect for bounded metrics (0.5 for accuracy with chance 0);
unbounded metrics (logprob) are recorded but not judged unless a threshold is given.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lmscale.emergence.results import METRICS, EvalRow, EvalTable
from lmscale.errors import LmscaleError
from lmscale.fileio import cache_dir

LEDGER = "ledger.sqlite"
STATES = ("flipped", "always", "not-yet", "unjudged")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    source TEXT NOT NULL,
    run_id TEXT NOT NULL,
    task TEXT NOT NULL,
    metric TEXT NOT NULL,
    k_shot INTEGER NOT NULL,
    step INTEGER NOT NULL,
    family TEXT NOT NULL,
    N REAL NOT NULL,           -- parameters (total)
    C REAL,                    -- training FLOPs
    value REAL NOT NULL,
    ci_low REAL,
    ci_high REAL,
    chance REAL,
    threshold REAL,
    passed INTEGER,            -- 1, 0, or NULL (not judged)
    date TEXT NOT NULL,        -- first added (UTC, ISO 8601)
    updated TEXT NOT NULL,
    PRIMARY KEY (source, run_id, task, metric, k_shot, step)
);
"""
_BEST = {"exact_match": 1.0, "token_accuracy": 1.0, "token_prob": 1.0, "mc_accuracy": 1.0, "pass_until": 1.0,
         "edit_distance": 0.0, "brier": 0.0}


def default_ledger_path() -> Path:
    return cache_dir() / LEDGER


def default_threshold(metric: str, chance: float) -> float:
    """Half-way from chance to perfect (chance taken as 0, or 1 for lower-is-better, when unknown); NaN if unbounded."""
    best = _BEST.get(metric)
    if best is None:
        return math.nan
    if not math.isfinite(chance):
        chance = 0.0 if best == 1.0 else 1.0
    return chance + 0.5 * (best - chance)


def _passed(r: EvalRow, threshold: float) -> int | None:
    if not math.isfinite(threshold):
        return None
    return int(r.value >= threshold) if r.higher_is_better else int(r.value <= threshold)


@dataclass
class AbilityStatus:
    """One (task, metric, k_shot, family) across every scale in the ledger."""

    task: str
    metric: str
    k_shot: int
    family: str
    state: str  # flipped | always | not-yet | unjudged
    flip_N: float | None  # smallest passing scale above a failing one
    flip_C: float | None
    scales: list[float]  # N values, ascending
    passed: list[bool | None]  # per scale: any evaluation there passed
    best_value: float
    threshold: float
    sources: int

    def to_dict(self) -> dict[str, Any]:
        from lmscale.laws.tables import jsonable

        return jsonable(asdict(self))


class Ledger:
    """The SQLite ledger (created on first use). Use as a context manager or call close()."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_ledger_path()
        if self.path.exists() and self.path.is_dir():
            self.path = self.path / LEDGER
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.executescript(_SCHEMA)
        except (OSError, sqlite3.DatabaseError) as e:
            raise LmscaleError(f"cannot open ledger {str(self.path)!r}: {e}") from None

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def add(self, table: EvalTable, source: str | None = None, thresholds: dict[str, float] | None = None) -> int:
        """Record every row of `table` (one transaction); returns how many rows were written."""
        source = source or table.source
        thresholds = thresholds or {}
        for m in thresholds:
            if m not in METRICS:
                raise LmscaleError(f"threshold for unknown metric {m!r}; expected one of {', '.join(METRICS)}")
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        recs = []
        for r in table.rows:
            th = thresholds.get(r.metric, default_threshold(r.metric, r.chance))

            def f(v: float) -> float | None:
                return v if math.isfinite(v) else None

            recs.append((source, r.run_id, r.task, r.metric, r.k_shot, r.step, r.family, r.N, f(r.C), r.value,
                         f(r.ci_low), f(r.ci_high), f(r.chance), f(th), _passed(r, th), now, now))
        with self.db:
            self.db.executemany(
                "INSERT INTO entries VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (source, run_id, task, metric, k_shot, step) DO UPDATE SET family=excluded.family, "
                "N=excluded.N, C=excluded.C, value=excluded.value, ci_low=excluded.ci_low, ci_high=excluded.ci_high, "
                "chance=excluded.chance, threshold=excluded.threshold, passed=excluded.passed, "
                "updated=excluded.updated", recs)
        return len(recs)

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def sources(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT source FROM entries ORDER BY source")]

    def entries(self, task: str | None = None, metric: str | None = None) -> list[dict[str, Any]]:
        q, args = "SELECT * FROM entries WHERE 1=1", []
        if task is not None:
            q, args = q + " AND task = ?", [*args, task]
        if metric is not None:
            q, args = q + " AND metric = ?", [*args, metric]
        cur = self.db.execute(q + " ORDER BY task, metric, k_shot, family, N", args)
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row)) for row in cur]

    def status(self, task: str | None = None, metric: str | None = None) -> list[AbilityStatus]:
        """Per (task, metric, k_shot, family): pass/fail by scale (a scale passes when any evaluation
        there passed), the scale where it flipped from fail to pass, or 'not-yet'."""
        rows = self.entries(task, metric)
        if task is not None and not rows:
            known = sorted({r["task"] for r in self.entries()})
            raise LmscaleError(f"no task {task!r} in the ledger {str(self.path)!r}; tasks there: "
                               f"{', '.join(known) if known else 'none (run `lmscale emergence ledger add` first)'}")
        groups: dict[tuple, list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault((r["task"], r["metric"], r["k_shot"], r["family"]), []).append(r)
        out = []
        for (t, m, k, fam), rs in groups.items():
            by_n: dict[float, list[dict[str, Any]]] = {}
            for r in rs:
                by_n.setdefault(r["N"], []).append(r)
            scales = sorted(by_n)
            passed: list[bool | None] = []
            for n in scales:
                ps = [r["passed"] for r in by_n[n] if r["passed"] is not None]
                passed.append(bool(max(ps)) if ps else None)
            flip_N = flip_C = None
            judged = [p for p in passed if p is not None]
            if not judged:
                state = "unjudged"
            elif not any(judged):
                state = "not-yet"
            elif all(judged):
                state = "always"
            else:
                state = "flipped"
                seen_fail = False
                for n, p in zip(scales, passed):
                    seen_fail |= p is False
                    if p and seen_fail:
                        flip_N = n
                        cs = [r["C"] for r in by_n[n] if r["C"] is not None]
                        flip_C = sum(cs) / len(cs) if cs else None
                        break
            hib = METRICS[m][0]
            vals = [r["value"] for r in rs]
            ths = [r["threshold"] for r in rs if r["threshold"] is not None]
            out.append(AbilityStatus(task=t, metric=m, k_shot=k, family=fam, state=state, flip_N=flip_N,
                                     flip_C=flip_C, scales=scales, passed=passed,
                                     best_value=max(vals) if hib else min(vals),
                                     threshold=ths[0] if ths else math.nan,
                                     sources=len({r["source"] for r in rs})))
        return out

    def flips(self) -> list[AbilityStatus]:
        return [s for s in self.status() if s.state == "flipped"]

    def not_yet(self) -> list[AbilityStatus]:
        return [s for s in self.status() if s.state == "not-yet"]


__all__ = ["Ledger", "AbilityStatus", "default_ledger_path", "default_threshold", "LEDGER", "STATES"]
