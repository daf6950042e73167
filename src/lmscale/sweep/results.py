"""Results tables of a sweep: one row per run (final figures) and one row per evaluation (curves).

`write_results(sweep_dir)` writes, atomically, beside the registry:
- ``results.csv`` / ``results.json``: run_id, trunk, family, status, seed, N (total params),
  N_nonembed, D (tokens trained), C (training FLOPs, exact convention), C_6N (6 N D), budget
  (requested FLOPs, IsoFLOP sweeps), loss (final validation loss, nats/token, over the whole
  validation split unless the config limits it), loss_se, best_loss, steps, fork_step, shape and
  grid values, tokens_per_s, train_s, error;
- ``curves.csv``: run_id, trunk, family, seed, N, N_nonembed, step, D (tokens seen), C, loss — every
  periodic evaluation of every run (Chinchilla Approach 1 takes the envelope of these).
The `lmscale.laws` loaders read these files; columns N, D, loss are what `lmscale fit` needs. For a
sweep that was never exported they use `results_tables(sweep_dir)` instead: the same tables, cell
for cell, built in memory (it reads the registry read-only and writes nothing).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from lmscale.errors import LmscaleError
from lmscale.fileio import atomic_write_json, atomic_write_text
from lmscale.sweep.registry import REGISTRY, Registry, run_dir_of
from lmscale.train.metrics import read_metrics
from lmscale.train.run import METRICS

RESULT_COLUMNS = [
    "run_id", "trunk", "family", "status", "seed", "N", "N_nonembed", "D", "C", "C_6N", "budget", "loss", "loss_se",
    "best_loss", "steps", "fork_step", "depth", "width", "heads", "tokens_per_s", "train_s", "error",
]
CURVE_COLUMNS = ["run_id", "trunk", "family", "seed", "N", "N_nonembed", "step", "D", "C", "loss"]
RESULTS_CSV, RESULTS_JSON, CURVES_CSV = "results.csv", "results.json", "curves.csv"


def collect_results(sweep_dir: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows, curves) for every registered run, read from the registry (read-only) and the run directories."""
    sweep_dir = Path(sweep_dir)
    if not (sweep_dir / REGISTRY).is_file():
        raise LmscaleError(f"{str(sweep_dir)!r} has no {REGISTRY}; expected a sweep directory made by `lmscale sweep run`")
    reg = Registry(sweep_dir / REGISTRY, readonly=True)
    try:
        runs = reg.runs()
    finally:
        reg.close()
    rows, curves = [], []
    for r in runs:
        p = r["plan"]
        row = {k: v for k, v in p.items() if k != "job"}
        row.update(
            status=r["status"], loss=r["final_loss"], loss_se=r["final_loss_se"], best_loss=r["best_loss"],
            tokens_per_s=r["tokens_per_s"], train_s=r["train_s"], error=r["error"],
        )
        rows.append(row)
        mpath = run_dir_of(sweep_dir, r["run_id"]) / METRICS
        if not mpath.is_file():
            continue
        tokens_per_step = p["D"] / p["steps"]
        seen = set()
        for m in read_metrics(mpath):
            if m.get("kind") != "eval" or m["step"] == 0 or m["step"] in seen:
                continue  # one point per evaluation step, even if a late worker appended a step again
            seen.add(m["step"])
            d = m["step"] * tokens_per_step
            curves.append({
                "run_id": r["run_id"], "trunk": p["trunk"], "family": p["family"], "seed": p["seed"], "N": p["N"],
                "N_nonembed": p["N_nonembed"], "step": m["step"], "D": d, "C": p["C"] * d / p["D"], "loss": m["val_loss"],
            })
    return rows, curves


def csv_table(records: list[dict[str, Any]], columns: list[str]) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows of text cells) of a results table exactly as its CSV file holds them and
    `csv.DictReader` reads them back: `columns` first, then any other keys sorted; missing cells ''."""
    header = columns + sorted({k for r in records for k in r} - set(columns))
    return header, [{k: _cell(r[k]) if k in r else "" for k in header} for r in records]


def results_tables(sweep_dir: str | Path) -> dict[str, tuple[list[str], list[dict[str, str]]]]:
    """The CSV tables of a sweep, built in memory: {"results.csv": (header, rows), "curves.csv": (header, rows)}.

    Cell for cell what `write_results` writes, but nothing is written (the scaling-law loaders use
    this for a sweep that was never exported).
    """
    rows, curves = collect_results(sweep_dir)
    return {RESULTS_CSV: csv_table(rows, RESULT_COLUMNS), CURVES_CSV: csv_table(curves, CURVE_COLUMNS)}


def _csv(header: list[str], rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)  # shortest round-trip form: no precision lost in the CSV ('nan', 'inf' as the csv module writes them)
    return str(v)


def write_results(sweep_dir: str | Path, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Write results.csv, results.json and curves.csv; returns their paths."""
    sweep_dir = Path(sweep_dir)
    out = Path(out_dir) if out_dir is not None else sweep_dir
    rows, curves = collect_results(sweep_dir)  # read (and refused if unreadable) before --out is made
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results_csv": out / RESULTS_CSV, "results_json": out / RESULTS_JSON, "curves_csv": out / CURVES_CSV}
    atomic_write_text(paths["results_csv"], _csv(*csv_table(rows, RESULT_COLUMNS)))
    atomic_write_json(paths["results_json"], rows)
    atomic_write_text(paths["curves_csv"], _csv(*csv_table(curves, CURVE_COLUMNS)))
    return paths
