"""Scaling data: one row per (model size, training length) point, validated, in float64.

Units everywhere in `lmscale.laws`: N = total parameters (embeddings included, as Chinchilla and
Porian et al. recommend; `N_nonembed` is kept for Kaplan-style fits), D = training tokens,
C = training FLOPs (6·N·D when the file does not give it), loss = nats/token.

Accepted inputs (`load_scaling_data`):
- a CSV with columns N, D, loss (optionally C, seed, run, family, N_nonembed, U, budget);
- the `chinchilla` PyPI package's ``df.csv`` (columns C, N, D, loss) as is;
- Epoch's ``svg_extracted_data.csv`` ("Model Size", "Training FLOP", "loss"): D = C / (6 N);
- a sweep directory: ``results.csv`` from `lmscale sweep export` (rows with status 'done';
  run = trunk, so WSD cooldown branches of one trunk form one bootstrap cluster) and, for
  Approach 1, ``curves.csv`` (every evaluation along every run; see `load_curves`). A sweep that
  was never exported is read from its registry into the same tables in memory
  (`lmscale.sweep.results.results_tables`).

Loading never writes: a sweep directory is only read.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from lmscale.errors import LmscaleError

# Column aliases, tried in order (exact match first, then case-insensitive).
ALIASES: dict[str, tuple[str, ...]] = {
    "N": ("N", "Model Size", "params", "n_params", "parameters"),
    "D": ("D", "tokens", "n_tokens"),
    "C": ("C", "Training FLOP", "FLOPs", "flops", "compute"),
    "loss": ("loss", "L", "Loss", "final_loss"),
    "N_nonembed": ("N_nonembed", "params_no_embed", "non_embedding"),
    "U": ("U", "unique_tokens"),
    "seed": ("seed",),
    "family": ("family",),
    "budget": ("budget",),
}
ACCEPTED = ("expected columns N, D, loss (optional: C, seed, run, family, N_nonembed, U); also accepted: the chinchilla "
            "package's C, N, D, loss and Epoch's 'Model Size', 'Training FLOP', 'loss'")
FLOAT_COLUMNS = ("N", "D", "C", "loss", "N_nonembed", "U", "budget")


@dataclass(frozen=True)
class ScalingData:
    """Validated scaling points (float64 arrays of equal length).

    `run` is the bootstrap cluster (rows sharing a run are resampled together, e.g. WSD cooldown
    branches of one trunk, or checkpoints of one training curve); rows with an empty run are their
    own cluster. `curve` names the training curve a row lies on (Approach 1). `row_numbers` are the
    1-based data-row numbers in the source file, for error messages.
    """

    N: np.ndarray
    D: np.ndarray
    loss: np.ndarray
    C: np.ndarray
    N_nonembed: np.ndarray | None = None
    U: np.ndarray | None = None
    seed: np.ndarray | None = None
    run: np.ndarray | None = None
    curve: np.ndarray | None = None
    family: np.ndarray | None = None
    budget: np.ndarray | None = None
    source: str = "<arrays>"
    D_from_C: bool = False
    C_from_6ND: bool = False
    row_numbers: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.loss)

    @classmethod
    def from_arrays(
        cls,
        N: Sequence[float] | None = None,
        D: Sequence[float] | None = None,
        loss: Sequence[float] | None = None,
        *,
        C: Sequence[float] | None = None,
        N_nonembed=None,
        U=None,
        seed=None,
        run=None,
        curve=None,
        family=None,
        budget=None,
        source: str = "<arrays>",
    ) -> "ScalingData":
        """Build and validate from arrays; D = C/(6N) when only C is given, C = 6ND when absent.

        Columns that cannot be derived stay NaN (e.g. only C and loss for a Kaplan L(C) fit);
        each law checks that the columns it uses are present.
        """
        if loss is None:
            raise LmscaleError("no loss values given; expected loss in nats/token, one per point")
        cols: dict[str, np.ndarray] = {"loss": _as_float("loss", loss)}
        n = len(cols["loss"])
        for name, v in (("N", N), ("D", D), ("C", C), ("N_nonembed", N_nonembed), ("U", U), ("budget", budget)):
            if v is not None:
                cols[name] = _as_float(name, v)
                if len(cols[name]) != n:
                    raise LmscaleError(f"{source}: {name} has {len(cols[name])} values but loss has {n}; expected equal lengths")
        if not {"N", "D", "C"} & set(cols):
            raise LmscaleError(f"{source}: none of N (params), D (tokens), C (FLOPs) given; expected at least one")
        labels = {}
        for name, v in (("seed", seed), ("run", run), ("curve", curve), ("family", family)):
            if v is not None:
                a = np.array(["" if x is None else str(x) for x in np.asarray(v, dtype=object).ravel()], dtype=object)
                if len(a) != n:
                    raise LmscaleError(f"{source}: {name} has {len(a)} values but loss has {n}; expected equal lengths")
                labels[name] = a
        return _finish(cols, labels, source, np.arange(1, n + 1))

    def subset(self, index) -> "ScalingData":
        """Rows selected by a boolean mask or an index array (all columns kept aligned)."""
        idx = np.asarray(index)
        changes = {}
        for name in ("N", "D", "loss", "C", "N_nonembed", "U", "seed", "run", "curve", "family", "budget", "row_numbers"):
            v = getattr(self, name)
            if v is not None:
                changes[name] = v[idx]
        return replace(self, **changes)

    def clusters(self) -> np.ndarray:
        """Integer cluster id per row for the cluster bootstrap: one per run; unlabelled rows are singletons."""
        n = len(self)
        if self.run is None:
            return np.arange(n)
        labels = [r if r else f"\0row{i}" for i, r in enumerate(self.run)]
        _, codes = np.unique(np.array(labels, dtype=object).astype(str), return_inverse=True)
        return codes.ravel()

    @property
    def n_clusters(self) -> int:
        return int(self.clusters().max()) + 1 if len(self) else 0

    def families(self) -> list[str]:
        if self.family is None:
            return []
        return sorted({f for f in self.family if f})

    def select_family(self, name: str) -> "ScalingData":
        if self.family is None:
            raise LmscaleError(f"{self.source}: family {name!r} requested but the data have no family column")
        mask = self.family == name
        if not mask.any():
            raise LmscaleError(f"{self.source}: no rows of family {name!r}; families found: {', '.join(self.families()) or '(none)'}")
        return self.subset(mask)

    def require(self, column: str, why: str) -> np.ndarray:
        v = getattr(self, column)
        if v is None:
            raise LmscaleError(f"{self.source}: column {column} is missing; {why}")
        return v

    def describe(self) -> str:
        parts = [f"{len(self)} points from {self.source}"]
        ranges = [f"{name} {np.nanmin(v):.3g}-{np.nanmax(v):.3g} {unit}" for name, v, unit in
                  (("N", self.N, "params"), ("D", self.D, "tokens"), ("C", self.C, "FLOPs")) if len(v) and np.isfinite(v).any()]
        if ranges:
            parts.append(", ".join(ranges))
        if self.D_from_C:
            parts.append("D = C/(6N)")
        if self.C_from_6ND:
            parts.append("C = 6ND")
        if self.run is not None:
            parts.append(f"{self.n_clusters} runs (bootstrap clusters)")
        return "; ".join(parts)


def _as_float(name: str, v) -> np.ndarray:
    try:
        return np.asarray(v, dtype=float).ravel()
    except (TypeError, ValueError):
        raise LmscaleError(f"column {name} holds non-numeric values; expected numbers") from None


def _finish(cols: dict[str, np.ndarray], labels: dict[str, np.ndarray], source: str, row_numbers: np.ndarray) -> ScalingData:
    """Derive D or C, then check every numeric value is finite and positive (naming the row)."""
    n = len(cols["loss"])
    D_from_C = C_from_6ND = False
    if "budget" in cols and np.isnan(cols["budget"]).any():  # exported sweeps leave it empty outside IsoFLOP sweeps
        del cols["budget"]
    for name in ("N", "D", "C", "loss", "N_nonembed", "U", "budget"):
        if name in cols:
            _check_positive(source, name, cols[name], row_numbers)
    if "D" not in cols and "C" in cols and "N" in cols:
        cols["D"] = cols["C"] / (6.0 * cols["N"])  # Epoch's convention for the Chinchilla Fig. 4 data
        D_from_C = True
    if "C" not in cols and "N" in cols and "D" in cols:
        cols["C"] = 6.0 * cols["N"] * cols["D"]
        C_from_6ND = True
    nan = np.full(n, np.nan)
    return ScalingData(
        N=cols.get("N", nan), D=cols.get("D", nan), loss=cols["loss"], C=cols.get("C", nan),
        N_nonembed=cols.get("N_nonembed"), U=cols.get("U"), budget=cols.get("budget"), seed=labels.get("seed"),
        run=labels.get("run"), curve=labels.get("curve"), family=labels.get("family"), source=source,
        D_from_C=D_from_C, C_from_6ND=C_from_6ND, row_numbers=row_numbers,
    )


def _check_positive(source: str, name: str, v: np.ndarray, row_numbers: np.ndarray) -> None:
    bad = ~np.isfinite(v) | ~(v > 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "NaN" if np.isnan(v[i]) else ("infinite" if np.isinf(v[i]) else "not positive")
        more = f" ({int(bad.sum())} bad values in this column)" if bad.sum() > 1 else ""
        raise LmscaleError(f"{source}: row {int(row_numbers[i])} has {name}={float(v[i])!r} ({what}){more}; "
                           f"expected a positive finite number")


def _find(header: list[str], names: tuple[str, ...]) -> str | None:
    for n in names:
        if n in header:
            return n
    lower = {h.lower(): h for h in header}
    for n in names:
        if n.lower() in lower:
            return lower[n.lower()]
    return None


# Stated sizes for reading a CSV: a million rows (~1.2 s per 500k rows to parse, ~400 bytes each
# held as dicts) and 256 MiB; scaling-law data are hundreds of rows, training curves thousands.
MAX_CSV_ROWS = 1_000_000
MAX_CSV_BYTES = 256 * 1024**2


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        size = path.stat().st_size
        if size > MAX_CSV_BYTES:
            raise LmscaleError(f"{str(path)!r} is {size:,} bytes; expected a CSV of at most {MAX_CSV_BYTES:,} bytes "
                               f"({MAX_CSV_ROWS:,} rows): thin the training curves or keep final losses")
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            rows = []
            for row in reader:
                rows.append(row)
                if len(rows) > MAX_CSV_ROWS:
                    raise LmscaleError(f"{str(path)!r} has more than {MAX_CSV_ROWS:,} data rows; expected at most "
                                       f"{MAX_CSV_ROWS:,}: thin the training curves or keep final losses")
    except OSError as err:
        raise LmscaleError(f"cannot read {str(path)!r}: {err.strerror or err}") from None
    except (csv.Error, UnicodeDecodeError) as err:
        raise LmscaleError(f"{str(path)!r} is not a readable CSV file ({err}); expected a header line and comma-separated rows") from None
    if not header:
        raise LmscaleError(f"{str(path)!r} is empty; expected a CSV header line such as N,D,loss")
    return header, rows


def _parse_float(source: str, row: int, col: str, text: str | None) -> float:
    s = (text or "").strip()
    if not s:
        return math.nan
    try:
        return float(s)
    except ValueError:
        raise LmscaleError(f"{source}: row {row} has {col}={s!r}; expected a number") from None


def _table_to_data(path: Path, header: list[str], rows: list[dict[str, str]], *, curves: bool = False,
                   source: str | None = None) -> ScalingData:
    source = source or str(path)
    found = {k: _find(header, names) for k, names in ALIASES.items()}
    missing = [k for k in ("N", "loss") if found[k] is None]
    if found["D"] is None and found["C"] is None:
        missing.append("D (or C)")
    if missing:
        raise LmscaleError(f"{source}: missing column(s) {', '.join(missing)}; found columns: "
                           f"{', '.join(header)}; {ACCEPTED}")
    if not rows:
        raise LmscaleError(f"{source}: no data rows; expected one row per (N, D, loss) point")
    row_numbers = np.arange(1, len(rows) + 1)
    cols = {}
    for k in FLOAT_COLUMNS:
        h = found[k]
        if h is not None:
            vals = np.array([_parse_float(source, i + 1, h, r.get(h)) for i, r in enumerate(rows)])
            cols[k] = vals
    # Empty cells in required columns are reported as NaN by the positivity check, naming the row.
    run_col = _find(header, ("trunk", "run")) or _find(header, ("run_id",))
    curve_col = _find(header, ("run_id",)) or run_col
    labels = {}
    for name, h in (("seed", found["seed"]), ("run", run_col), ("family", found["family"])):
        if h is not None:
            labels[name] = np.array([(r.get(h) or "").strip() for r in rows], dtype=object)
    if curve_col is not None:
        labels["curve"] = np.array([(r.get(curve_col) or "").strip() for r in rows], dtype=object)
    elif curves:
        raise LmscaleError(f"{source}: no run_id (or run) column; Approach 1 needs it to tell the training curves apart")
    for opt in ("N_nonembed", "U"):  # optional columns that are entirely empty are dropped, partly empty is an error
        if opt in cols and np.isnan(cols[opt]).all():
            del cols[opt]
    if "C" in cols and "D" in cols and np.isnan(cols["C"]).all():
        del cols["C"]
    return _finish(cols, labels, source, row_numbers)


def _sweep_table(directory: Path, name: str) -> tuple[Path, str, list[str], list[dict[str, str]]]:
    """(path, source, header, rows) of a sweep's results.csv or curves.csv: the exported file if there
    is one, else the same table built in memory from the registry and the runs' metrics. Nothing is
    written: loading data for a fit never touches the sweep directory."""
    target = directory / name
    if target.is_file():
        header, rows = _read_csv(target)
        return target, str(target), header, rows
    # Imported here: the sweep layer pulls in the trainer's modules, which a CSV fit does not need.
    from lmscale.sweep.results import results_tables

    try:
        tables = results_tables(directory)
    except LmscaleError as err:
        raise LmscaleError(f"{str(directory)!r} has no {name} and its table cannot be built ({err}); expected a sweep "
                           f"directory made by `lmscale sweep run` (or exported with `lmscale sweep export`), "
                           f"or a CSV file") from None
    header, rows = tables[name]
    return target, str(directory), header, rows  # the source is the directory: loading it again rebuilds the table


def _filter_done(source: str, header: list[str], rows: list[dict[str, str]]) -> list[dict[str, str]]:
    if "status" not in header:
        return rows
    done = [r for r in rows if (r.get("status") or "").strip() == "done"]
    if not done:
        statuses = sorted({(r.get("status") or "").strip() or "(empty)" for r in rows})
        raise LmscaleError(f"{source}: no finished runs (status 'done') among {len(rows)} rows; "
                           f"statuses found: {', '.join(statuses) or '(none)'}")
    return done


def load_scaling_data(path: str | Path, family: str | None = None) -> ScalingData:
    """Final losses from a CSV file or a sweep directory (see the module docstring), optionally one family."""
    path = Path(path)
    if path.is_dir():
        target, source, header, rows = _sweep_table(path, "results.csv")
        rows = _filter_done(source, header, rows)
        data = _table_to_data(target, header, rows, source=source)
    elif path.is_file():
        header, rows = _read_csv(path)
        data = _table_to_data(path, header, rows)
    else:
        raise LmscaleError(f"{str(path)!r} not found; expected a CSV file (N, D, loss) or a sweep directory")
    return data.select_family(family) if family is not None else data


def load_curves(path: str | Path, family: str | None = None) -> ScalingData:
    """Training curves for Approach 1: one row per evaluation, `curve` = run_id, `run` = trunk.

    From a sweep directory this reads ``curves.csv``; a CSV path is read as is and needs a run_id
    (or run) column naming the curve of each row.
    """
    path = Path(path)
    if path.is_dir():
        target, source, header, rows = _sweep_table(path, "curves.csv")
    elif path.is_file():
        target, source = path, str(path)
        header, rows = _read_csv(target)
    else:
        raise LmscaleError(f"{str(path)!r} not found; expected a curves CSV or a sweep directory")
    data = _table_to_data(target, header, rows, curves=True, source=source)
    return data.select_family(family) if family is not None else data


def epoch_chinchilla_data(path: str | Path, drop_highest: int = 5) -> ScalingData:
    """Epoch's Chinchilla Fig. 4 points, dropping the `drop_highest` highest losses (their n = 240 policy)."""
    data = load_scaling_data(path)
    if drop_highest <= 0:
        return data
    threshold = np.sort(data.loss)[-drop_highest]
    return data.subset(data.loss < threshold)
