"""The long-format evaluation table: one row per (run_id, task, k_shot, metric) (and step).

    rows = [EvalRow(run_id="r0", N=1e6, task="add3", metric="exact_match", value=0.12, ...), ...]
    write_eval_table("sweeps/demo", rows)          # sweeps/demo/eval.csv + eval.json
    table = read_eval_table("sweeps/demo")         # validated
    curve = table.curve("add3", "exact_match", x="N")

Columns (units): run_id, family, seed, N (parameters, total), N_nonembed (parameters), D (training
tokens), C (training FLOPs), step (optimizer step of the checkpoint), val_loss (nats/token), task,
k_shot, metric, value, ci_low, ci_high (interval of `value`), n_examples, chance (the metric's value
for a model that guesses), answer_tokens (mean answer length L in tokens), higher_is_better.
Blank cells are missing values (NaN). The harness (`lmscale eval`) writes this table; the detector,
forecasts, ledger and figures read it. numpy only: no JAX, SciPy or matplotlib here.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from lmscale.errors import LmscaleError
from lmscale.fileio import atomic_write_json, atomic_write_text, csv_cell

SCHEMA = "lmscale.eval/1"
EVAL_CSV = "eval.csv"
EVAL_JSON = "eval.json"

# name -> (higher_is_better, description with units)
METRICS: dict[str, tuple[bool, str]] = {
    "exact_match": (True, "fraction of answers generated exactly (greedy)"),
    "token_accuracy": (True, "fraction of answer tokens predicted correctly (teacher-forced)"),
    "edit_distance": (False, "token edit distance / answer length (0 = exact)"),
    "logprob": (True, "mean log p(answer) (nats, teacher-forced)"),
    "token_prob": (True, "per-token probability exp(logprob / L)"),
    "mc_accuracy": (True, "multiple-choice accuracy (highest-likelihood choice)"),
    "brier": (False, "multiple-choice Brier score"),
    "pass_until": (True, "estimated pass rate (PassUntil, r successes / K samples)"),
}
# Metrics that are all-or-nothing per example (Schaeffer's "discontinuous" metrics).
DISCONTINUOUS = ("exact_match", "mc_accuracy", "pass_until")
X_AXES = ("N", "N_nonembed", "C", "D", "val_loss", "step")

COLUMNS = [
    "run_id", "family", "seed", "N", "N_nonembed", "D", "C", "step", "val_loss", "task", "k_shot", "metric", "value",
    "ci_low", "ci_high", "n_examples", "chance", "answer_tokens", "higher_is_better",
]
REQUIRED = ("run_id", "N", "task", "k_shot", "metric", "value")
_FLOATS = ("N", "N_nonembed", "D", "C", "val_loss", "value", "ci_low", "ci_high", "chance", "answer_tokens")
_INTS = ("seed", "step", "k_shot", "n_examples")
NAN = float("nan")


@dataclass(frozen=True, kw_only=True)
class EvalRow:
    """One evaluation number. Missing optional values are NaN (floats) or -1 (seed, step, n_examples)."""

    run_id: str
    N: float
    task: str
    metric: str
    value: float
    k_shot: int = 0
    family: str = ""
    seed: int = -1
    N_nonembed: float = NAN
    D: float = NAN
    C: float = NAN
    step: int = -1
    val_loss: float = NAN
    ci_low: float = NAN
    ci_high: float = NAN
    n_examples: int = -1
    chance: float = NAN
    answer_tokens: float = NAN
    higher_is_better: bool | None = field(default=None)

    def __post_init__(self):
        if self.metric not in METRICS:
            raise LmscaleError(f"unknown metric {self.metric!r} for task {self.task!r}; expected one of "
                               f"{', '.join(METRICS)}")
        if self.higher_is_better is None:
            object.__setattr__(self, "higher_is_better", METRICS[self.metric][0])

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in COLUMNS}


@dataclass(frozen=True)
class Curve:
    """One metric of one task along one axis, sorted by x; one point per distinct x (seeds averaged)."""

    x: np.ndarray
    y: np.ndarray
    low: np.ndarray  # interval of y (NaN where the table has none)
    high: np.ndarray
    n: np.ndarray  # examples behind each point (-1 unknown)
    chance: float  # NaN when unknown
    task: str = ""
    metric: str = ""
    x_name: str = "N"
    k_shot: int = 0
    answer_tokens: float = NAN  # mean answer length L (tokens) over the points
    higher_is_better: bool = True
    run_ids: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.x)

    def to_dict(self) -> dict[str, Any]:
        from lmscale.laws.tables import jsonable

        return jsonable({"task": self.task, "metric": self.metric, "x_name": self.x_name, "k_shot": self.k_shot,
                         "x": self.x, "y": self.y, "low": self.low, "high": self.high, "n": self.n,
                         "chance": self.chance, "answer_tokens": self.answer_tokens,
                         "higher_is_better": self.higher_is_better})


def _json_value(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def _resolve_paths(path: str | Path) -> tuple[Path, Path]:
    path = Path(path)
    if path.suffix.lower() in (".csv", ".json"):
        return path.with_suffix(".csv"), path.with_suffix(".json")
    if path.exists() and not path.is_dir():
        raise LmscaleError(f"eval table path {str(path)!r} is a file without .csv/.json suffix; expected a directory "
                           f"or a .csv path")
    return path / EVAL_CSV, path / EVAL_JSON


def write_eval_table(path: str | Path, rows: Iterable[EvalRow]) -> tuple[Path, Path]:
    """Write rows as CSV and JSON (atomically). `path`: a directory (eval.csv/eval.json inside) or a
    .csv/.json path (both files share its stem). Returns (csv_path, json_path)."""
    rows = list(rows)
    if not rows:
        raise LmscaleError(f"no evaluation rows to write to {str(path)!r}; expected at least one")
    csv_path, json_path = _resolve_paths(path)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([csv_cell(getattr(r, k)) for k in COLUMNS])
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(csv_path, buf.getvalue())
    atomic_write_json(json_path, {"schema": SCHEMA, "columns": COLUMNS,
                                  "rows": [{k: _json_value(getattr(r, k)) for k in COLUMNS} for r in rows]})
    return csv_path, json_path


def _parse(rec: dict[str, Any], where: str) -> EvalRow:
    vals: dict[str, Any] = {}
    for k in COLUMNS:
        v = rec.get(k)
        blank = v is None or (isinstance(v, str) and v.strip() == "")
        if k in REQUIRED and blank:
            raise LmscaleError(f"{where}: column {k!r} is empty; expected a value")
        if blank:
            continue
        try:
            if k in _FLOATS:
                vals[k] = float(v)
            elif k in _INTS:
                f = float(v)
                if not f.is_integer():
                    raise ValueError
                vals[k] = int(f)
            elif k == "higher_is_better":
                s = str(v).strip().lower()
                if s not in ("true", "false", "1", "0"):
                    raise ValueError
                vals[k] = s in ("true", "1")
            else:
                vals[k] = str(v)
        except (TypeError, ValueError):
            kind = "a number" if k in _FLOATS else "an integer" if k in _INTS else "true or false"
            raise LmscaleError(f"{where}: column {k!r} has {v!r}; expected {kind}") from None
    if not (math.isfinite(vals["N"]) and vals["N"] > 0):
        raise LmscaleError(f"{where}: N = {vals['N']!r}; expected a positive parameter count")
    if math.isnan(vals["value"]):
        raise LmscaleError(f"{where}: value is NaN; expected a number")
    if vals["metric"] not in METRICS:
        raise LmscaleError(f"{where}: unknown metric {vals['metric']!r}; expected one of {', '.join(METRICS)}")
    return EvalRow(**vals)


def read_eval_table(path: str | Path) -> "EvalTable":
    """Read and validate an evaluation table: a .csv or .json file, or a directory holding eval.csv (or eval.json)."""
    path = Path(path)
    if path.is_dir():
        cands = [path / EVAL_CSV, path / EVAL_JSON]
        found = next((p for p in cands if p.is_file()), None)
        if found is None:
            raise LmscaleError(f"{str(path)!r} has no {EVAL_CSV} or {EVAL_JSON}; expected an evaluation table "
                               f"written by `lmscale eval`")
        path = found
    elif not path.is_file():
        raise LmscaleError(f"evaluation table {str(path)!r} does not exist; expected a .csv/.json file or a directory")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LmscaleError(f"cannot read evaluation table {str(path)!r}: {e}") from None
    if path.suffix.lower() == ".json":
        import json

        try:
            obj = json.loads(text)
        except ValueError as e:
            raise LmscaleError(f"{str(path)!r} is not valid JSON ({e}); expected an evaluation table") from None
        recs = obj.get("rows") if isinstance(obj, dict) else obj
        if not isinstance(recs, list) or not all(isinstance(r, dict) for r in recs):
            raise LmscaleError(f"{str(path)!r} holds no list of row objects; expected {{'rows': [...]}}")
        header = set().union(*(r.keys() for r in recs)) if recs else set()
    else:
        reader = csv.DictReader(io.StringIO(text))
        header = set(reader.fieldnames or [])
        recs = list(reader)
    missing = [k for k in REQUIRED if k not in header]
    if missing and header:
        raise LmscaleError(f"evaluation table {str(path)!r} lacks column(s) {', '.join(missing)}; expected at least "
                           f"{', '.join(REQUIRED)}")
    if not recs:
        raise LmscaleError(f"evaluation table {str(path)!r} is empty; expected at least one row")
    # Line numbers count the CSV header as line 1.
    rows = [_parse(r, f"{path} row {i + 2 if path.suffix.lower() != '.json' else i}") for i, r in enumerate(recs)]
    return EvalTable(rows, source=str(path))


class EvalTable:
    """A validated list of EvalRow with column access and curve extraction."""

    def __init__(self, rows: Sequence[EvalRow], source: str = "<memory>"):
        self.rows = list(rows)
        self.source = source
        if not self.rows:
            raise LmscaleError(f"evaluation table {source!r} is empty; expected at least one row")

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> np.ndarray:
        if name not in COLUMNS:
            raise LmscaleError(f"unknown column {name!r}; expected one of {', '.join(COLUMNS)}")
        vals = [getattr(r, name) for r in self.rows]
        return np.asarray(vals, float if name in _FLOATS else object if name not in _INTS else int)

    def tasks(self) -> list[str]:
        return sorted({r.task for r in self.rows})

    def metrics(self, task: str | None = None) -> list[str]:
        have = {r.metric for r in self.rows if task is None or r.task == task}
        return [m for m in METRICS if m in have]

    def k_shots(self, task: str | None = None) -> list[int]:
        return sorted({r.k_shot for r in self.rows if task is None or r.task == task})

    def families(self) -> list[str]:
        return sorted({r.family for r in self.rows})

    def run_ids(self) -> list[str]:
        return sorted({r.run_id for r in self.rows})

    def filter(self, **eq: Any) -> "EvalTable":
        """Rows whose columns equal the given values, e.g. filter(task="add3", k_shot=2)."""
        for k in eq:
            if k not in COLUMNS:
                raise LmscaleError(f"unknown column {k!r}; expected one of {', '.join(COLUMNS)}")
        rows = [r for r in self.rows if all(getattr(r, k) == v for k, v in eq.items())]
        if not rows:
            raise LmscaleError(f"no rows in {self.source!r} with {', '.join(f'{k}={v!r}' for k, v in eq.items())}")
        return EvalTable(rows, self.source)

    def final_rows(self) -> "EvalTable":
        """Only each run's last evaluated step (the trained model; earlier steps are training-time points)."""
        last: dict[str, int] = {}
        for r in self.rows:
            last[r.run_id] = max(last.get(r.run_id, r.step), r.step)
        return EvalTable([r for r in self.rows if r.step == last[r.run_id]], self.source)

    def loss_by_run(self) -> dict[str, tuple[float, float, float, float]]:
        """run_id -> (N, C, D, val_loss) of the final step (NaN where missing)."""
        out: dict[str, tuple[float, float, float, float]] = {}
        for r in self.final_rows().rows:
            out.setdefault(r.run_id, (r.N, r.C, r.D, r.val_loss))
        return out

    def curve(self, task: str, metric: str, x: str = "N", k_shot: int | None = None, family: str | None = None,
              run_id: str | None = None) -> Curve:
        """The metric of one task along `x` (N, N_nonembed, C, D, val_loss: the final step of each run;
        step: every evaluated step, usually of one run). Points at the same x (seeds) are averaged;
        `k_shot` may be left out when the task was evaluated with one k only."""
        if x not in X_AXES:
            raise LmscaleError(f"unknown x axis {x!r}; expected one of {', '.join(X_AXES)}")
        if metric not in METRICS:
            raise LmscaleError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
        rows = [r for r in self.rows if r.task == task]
        if not rows:
            raise LmscaleError(f"no task {task!r} in {self.source!r}; expected one of {', '.join(self.tasks())}")
        if family is not None:
            rows = [r for r in rows if r.family == family]
        if run_id is not None:
            rows = [r for r in rows if r.run_id == run_id]
        ks = sorted({r.k_shot for r in rows})
        if k_shot is None:
            if len(ks) > 1:
                raise LmscaleError(f"task {task!r} was evaluated with k_shot {ks}; pass k_shot= to pick one")
            k_shot = ks[0] if ks else 0
        rows = [r for r in rows if r.k_shot == k_shot and r.metric == metric]
        if not rows:
            raise LmscaleError(f"no {metric!r} values for task {task!r} (k_shot={k_shot}) in {self.source!r}; "
                               f"metrics there: {', '.join(self.metrics(task))}")
        if x != "step":
            rows = EvalTable(rows, self.source).final_rows().rows
        xs = np.array([getattr(r, x) for r in rows], float)
        if not np.isfinite(xs).all():
            raise LmscaleError(f"task {task!r} metric {metric!r}: column {x!r} is empty for some runs; "
                               f"expected a value to use it as the x axis")
        groups: dict[float, list[EvalRow]] = {}
        for xv, r in zip(xs, rows):
            groups.setdefault(float(xv), []).append(r)
        order = sorted(groups)

        def mean(vals: list[float]) -> float:
            a = np.asarray(vals, float)
            a = a[np.isfinite(a)]
            return float(a.mean()) if len(a) else NAN

        y = np.array([mean([r.value for r in groups[k]]) for k in order])
        lo = np.array([mean([r.ci_low for r in groups[k]]) for k in order])
        hi = np.array([mean([r.ci_high for r in groups[k]]) for k in order])
        n = np.array([sum(r.n_examples for r in groups[k]) if all(r.n_examples >= 0 for r in groups[k]) else -1
                      for k in order], int)
        return Curve(
            x=np.array(order, float), y=y, low=lo, high=hi, n=n, chance=mean([r.chance for r in rows]), task=task,
            metric=metric, x_name=x, k_shot=int(k_shot), answer_tokens=mean([r.answer_tokens for r in rows]),
            higher_is_better=bool(rows[0].higher_is_better),
            run_ids=tuple(sorted({r.run_id for r in rows})),
        )

    def with_rows(self, rows: Iterable[EvalRow]) -> "EvalTable":
        return EvalTable([*self.rows, *rows], self.source)


def derive_token_prob(rows: Iterable[EvalRow]) -> list[EvalRow]:
    """token_prob rows exp(logprob / L) for every logprob row with answer_tokens L and no token_prob row yet."""
    rows = list(rows)
    have = {(r.run_id, r.task, r.k_shot, r.step) for r in rows if r.metric == "token_prob"}
    out = []
    for r in rows:
        key = (r.run_id, r.task, r.k_shot, r.step)
        if r.metric != "logprob" or key in have or not (r.answer_tokens > 0):
            continue
        f = lambda v: math.exp(v / r.answer_tokens) if math.isfinite(v) else NAN  # noqa: E731
        out.append(replace(r, metric="token_prob", value=f(r.value), ci_low=f(r.ci_low), ci_high=f(r.ci_high),
                           chance=f(r.chance), higher_is_better=True))
    return out


__all__ = ["EvalRow", "EvalTable", "Curve", "write_eval_table", "read_eval_table", "derive_token_prob", "METRICS",
           "DISCONTINUOUS", "COLUMNS", "REQUIRED", "X_AXES", "EVAL_CSV", "EVAL_JSON", "SCHEMA"]
