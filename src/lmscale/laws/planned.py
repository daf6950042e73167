"""Predicting planned runs: the loss of each (N, D) in a CSV, with a bootstrap interval.

    planned = load_planned("planned.csv")            # header required: N, D (optional U; other columns kept)
    pred = predict_planned(law, planned, boot)        # boot: lmscale.laws.bootstrap.bootstrap(law, ...) or None
    pred.write("planned.predicted.csv", "planned.predicted.json")

The point prediction is `law.predict` at the fitted parameters; the interval is the percentile
interval of the same prediction over the converged bootstrap resamples (their parameters,
`BootstrapResult.theta`), so it carries the fit's uncertainty, not the seed-to-seed noise of a
single run. Units: N parameters, D tokens, loss nats/token.

Reading is strict, and fails before anything is fitted or written: a binary or non-UTF-8 file, no
header line, missing N or D columns, a value that is not a positive finite number, a row with the
wrong number of fields, or more than MAX_PLANNED_ROWS rows is a one-line LmscaleError naming it.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmscale.errors import LmscaleError
from lmscale.laws.data import ALIASES, _find
from lmscale.laws.summary import jsonable

MAX_PLANNED_ROWS = 100_000
MAX_PLANNED_BYTES = 64 * 1024**2  # ~600 bytes a row at the row limit; planned runs are a few lines
_BLOCK = 4096  # planned points per block of bootstrap predictions (R x block floats at a time)


@dataclass
class PlannedRuns:
    """Planned (N, D[, U]) points read from a CSV; `columns` keeps every input column as text, in order."""

    source: str
    N: np.ndarray
    D: np.ndarray
    U: np.ndarray | None
    header: list[str]
    columns: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.N)


def default_outputs(planned_path: str | Path, out: str | Path | None = None) -> tuple[Path, Path]:
    """(CSV, JSON) paths: `out` and the same name with .json, or PLANNED.predicted.csv/.json beside PLANNED."""
    if out is not None:
        out = Path(out)
        if out.suffix.lower() != ".csv":
            raise LmscaleError(f"--predict-out {str(out)!r}; expected a path ending in .csv (the JSON goes beside it)")
        return out, out.with_suffix(".json")
    p = Path(planned_path)
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    return p.with_name(stem + ".predicted.csv"), p.with_name(stem + ".predicted.json")


def _number(source: str, row: int, col: str, text: str) -> float:
    s = (text or "").strip()
    try:
        v = float(s)
    except ValueError:
        raise LmscaleError(f"{source}: row {row} has {col}={s!r}; expected a positive number") from None
    if not (math.isfinite(v) and v > 0):
        what = "NaN" if math.isnan(v) else ("infinite" if math.isinf(v) else "not positive")
        raise LmscaleError(f"{source}: row {row} has {col}={s!r} ({what}); expected a positive finite number")
    return v


def load_planned(path: str | Path) -> PlannedRuns:
    """Read planned runs: a CSV with a header naming N (parameters) and D (tokens), at most MAX_PLANNED_ROWS rows."""
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise LmscaleError(f"planned runs {source!r} not found; expected a CSV with columns N,D")
    if path.is_dir():
        raise LmscaleError(f"planned runs {source!r} is a directory; expected a CSV file with columns N,D")
    try:
        size = path.stat().st_size
        if size > MAX_PLANNED_BYTES:
            raise LmscaleError(f"planned runs {source!r} is {size:,} bytes; expected at most {MAX_PLANNED_BYTES:,} "
                               f"({MAX_PLANNED_ROWS:,} rows)")
        raw = path.read_bytes()
    except OSError as err:
        raise LmscaleError(f"cannot read {source!r}: {err.strerror or err}") from None
    if b"\0" in raw:
        raise LmscaleError(f"planned runs {source!r} is a binary file; expected a text CSV with a header line N,D")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LmscaleError(f"planned runs {source!r} is not UTF-8 text; expected a text CSV with a header line N,D") from None
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = None
        rows: list[tuple[int, list[str]]] = []
        for line_no, row in enumerate(reader, start=1):
            if not row or all(not c.strip() for c in row):
                continue
            if header is None:
                header = [h.strip() for h in row]
                continue
            rows.append((line_no, row))
            if len(rows) > MAX_PLANNED_ROWS:
                raise LmscaleError(f"planned runs {source!r} has more than {MAX_PLANNED_ROWS:,} rows; expected at most "
                                   f"{MAX_PLANNED_ROWS:,}")
    except csv.Error as err:
        raise LmscaleError(f"planned runs {source!r} is not a readable CSV ({err}); expected a header line N,D and "
                           "comma-separated rows") from None
    if header is None:
        raise LmscaleError(f"planned runs {source!r} is empty; expected a header line N,D and one row per planned run")
    numeric = 0
    for h in header:
        try:
            float(h)
            numeric += 1
        except ValueError:
            pass
    if numeric == len(header):
        raise LmscaleError(f"planned runs {source!r}: the first line {','.join(header)!r} has no column names; "
                           "expected a header line such as N,D")
    cols = {k: _find(header, ALIASES[k]) for k in ("N", "D", "U")}
    missing = [k for k in ("N", "D") if cols[k] is None]
    if missing:
        raise LmscaleError(f"planned runs {source!r}: missing column(s) {', '.join(missing)}; found columns: "
                           f"{', '.join(header) or '(none)'}; expected N (parameters) and D (tokens)")
    if len(set(header)) != len(header):
        raise LmscaleError(f"planned runs {source!r}: repeated column names in the header {','.join(header)!r}; "
                           "expected each column once")
    if not rows:
        raise LmscaleError(f"planned runs {source!r} has a header but no rows; expected one row per planned run")
    idx = {h: i for i, h in enumerate(header)}
    values: dict[str, list[float]] = {"N": [], "D": [], "U": []}
    texts: dict[str, list[str]] = {h: [] for h in header}
    for k, (line_no, row) in enumerate(rows, start=1):
        if len(row) != len(header):
            raise LmscaleError(f"planned runs {source!r}: row {k} (line {line_no}) has {len(row)} fields; expected "
                               f"{len(header)} ({','.join(header)})")
        for name in ("N", "D", "U"):
            h = cols[name]
            if h is not None:
                values[name].append(_number(source, k, h, row[idx[h]]))
        for h in header:
            texts[h].append(row[idx[h]].strip())
    return PlannedRuns(source=source, N=np.array(values["N"]), D=np.array(values["D"]),
                       U=np.array(values["U"]) if cols["U"] is not None else None, header=header, columns=texts)


def _inputs(law, N: np.ndarray, D: np.ndarray, U: np.ndarray | None) -> dict[str, np.ndarray | None]:
    """The law form's input variables at the planned points (KaplanLaw: N, D or C = 6ND; U for data-constrained)."""
    avail = {"N": N, "D": D, "C": 6.0 * N * D, "U": U}
    return {v: avail[v] for v in law.form_.variables}


def _predict_point(law, planned: PlannedRuns) -> np.ndarray:
    if "U" in law.form_.variables:
        return np.asarray(law.predict(planned.N, planned.D, U=planned.U), float)
    return np.asarray(law.predict(planned.N, planned.D), float)


@dataclass
class PlannedPrediction:
    """Predicted loss (nats/token) per planned run, with the bootstrap percentile interval (or none)."""

    law: str
    planned: PlannedRuns
    loss: np.ndarray
    low: np.ndarray | None
    high: np.ndarray | None
    confidence: float | None
    n_resamples: int | None
    n_converged: int | None
    notes: list[str] = field(default_factory=list)

    def csv_text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        extra = ["loss_pred"] + (["loss_low", "loss_high"] if self.low is not None else [])
        w.writerow(self.planned.header + extra)
        for i in range(len(self.loss)):
            vals = [repr(float(self.loss[i]))]
            if self.low is not None:
                vals += [repr(float(self.low[i])), repr(float(self.high[i]))]
            w.writerow([self.planned.columns[h][i] for h in self.planned.header] + vals)
        return buf.getvalue()

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for i in range(len(self.loss)):
            r: dict[str, Any] = {"N": self.planned.N[i], "D": self.planned.D[i]}
            if self.planned.U is not None:
                r["U"] = self.planned.U[i]
            r["loss"] = self.loss[i]
            if self.low is not None:
                r["interval"] = [self.low[i], self.high[i]]
            rows.append(r)
        return jsonable({"law": self.law, "planned": self.planned.source, "n": len(self.loss),
                         "units": {"N": "parameters", "D": "tokens", "loss": "nats/token"},
                         "confidence": self.confidence, "n_resamples": self.n_resamples,
                         "n_converged": self.n_converged, "interval": "bootstrap percentile" if self.low is not None else None,
                         "notes": self.notes, "rows": rows})

    def write(self, csv_path: str | Path, json_path: str | Path) -> None:
        from lmscale.fileio import atomic_write_json, atomic_write_text

        atomic_write_text(csv_path, self.csv_text())
        atomic_write_json(json_path, self.to_dict())


def predict_planned(law, planned: PlannedRuns, boot=None) -> PlannedPrediction:
    """The law's predicted loss at each planned run, and the bootstrap interval when `boot` (of this law) is given."""
    if not hasattr(law, "theta_"):
        raise LmscaleError(f"{type(law).__name__} is not fitted yet; call .fit(data) first")
    if not hasattr(law, "form_") or not set(law.form_.variables) <= {"N", "D", "C", "U"}:
        raise LmscaleError(f"{type(law).__name__} cannot predict a loss at (N, D); expected an Approach-3 law")
    notes = []
    if "U" in law.form_.variables and planned.U is None:
        notes.append("no U column in the planned runs: predicted without data repetition (U unlimited)")
    if getattr(law, "nonembedding", False):
        notes.append("the law was fitted on non-embedding parameters: the planned N are read as non-embedding counts")
    point = _predict_point(law, planned)
    if boot is None:
        return PlannedPrediction(law.form_.name, planned, point, None, None, None, None, None, notes)
    if boot.theta is None or boot.law != law.form_.name or np.shape(boot.theta)[-1] != len(law.theta_):
        raise LmscaleError(f"bootstrap of {boot.law!r} has no parameter samples of the {law.form_.name} law; expected "
                           "lmscale.laws.bootstrap.bootstrap(law, ...) of this law")
    theta = np.asarray(boot.theta, float)[np.asarray(boot.converged, bool)]
    q = float(boot.confidence)
    m = len(planned)
    low, high = np.full(m, np.nan), np.full(m, np.nan)
    if len(theta):
        X = _inputs(law, planned.N, planned.D, planned.U)
        for s in range(0, m, _BLOCK):
            blk = {k: None if v is None else v[None, s:s + _BLOCK] for k, v in X.items()}
            samp = np.asarray(law.form_.loss(theta[:, None, :], **blk), float)  # (R, block)
            samp = np.where(np.isfinite(samp), samp, np.nan)
            with warnings.catch_warnings():  # a column with no finite sample stays NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                lo, hi = np.nanpercentile(samp, [50 * (1 - q), 50 * (1 + q)], axis=0)
            low[s:s + _BLOCK], high[s:s + _BLOCK] = lo, hi
    else:
        notes.append("no bootstrap resample converged: no intervals")
    return PlannedPrediction(law.form_.name, planned, point, low, high, q, int(boot.n_resamples), int(len(theta)), notes)
