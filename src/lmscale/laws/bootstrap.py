"""Cluster bootstrap: resample whole runs, refit, report percentile intervals.

Checkpoints (or WSD cooldown branches) of one run share its noise, so resampling single rows
understates the uncertainty; each resample draws as many runs as the data have, with
replacement, and keeps all rows of a drawn run together (rows without a run id are their own
run). A resample is a weight vector (how often each row was drawn), so every resample of a law
fit is one row of the batched objective: all resamples are fitted together by the batched
L-BFGS, each starting from the full-data optimum and a few other distinct local optima the grid
found, then polished in the same batch at tight tolerances.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lmscale.laws._blas import single_threaded_blas
from lmscale.laws.lbfgs import CONVERGED_FTOL, CONVERGED_GTOL, LINE_SEARCH_FAILED, SCIPY_GTOL, minimize_batched
from lmscale.laws.tables import fmt, format_table, jsonable


def cluster_weights(clusters: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_resamples, n_rows) draw counts: clusters drawn with replacement, every row gets its cluster's count."""
    clusters = np.asarray(clusters)
    n_c = int(clusters.max()) + 1
    draws = rng.integers(0, n_c, size=(n_resamples, n_c))
    counts = np.zeros((n_resamples, n_c))
    np.add.at(counts, (np.repeat(np.arange(n_resamples), n_c), draws.ravel()), 1.0)
    return counts[:, clusters]


def resample_indices(weights_row: np.ndarray) -> np.ndarray:
    """The row indices of one resample (a row repeated as often as it was drawn)."""
    return np.repeat(np.arange(len(weights_row)), weights_row.astype(int))


@dataclass
class BootstrapResult:
    """Bootstrap samples (one value per resample; NaN where a refit failed) and percentile intervals."""

    law: str
    n_resamples: int
    n_converged: int
    confidence: float
    seed: int | None
    n_clusters: int
    point: dict[str, float]
    samples: dict[str, np.ndarray]
    converged: np.ndarray
    target_compute: float | None = None
    predict_at: Any = None
    notes: list[str] = field(default_factory=list)
    theta: np.ndarray | None = field(default=None, repr=False)  # (R, p) fit-space parameters per resample

    def interval(self, name: str, confidence: float | None = None) -> tuple[float, float]:
        """Percentile interval of `name` over the converged resamples."""
        q = self.confidence if confidence is None else confidence
        v = self.samples[name][self.converged]
        v = v[np.isfinite(v)]
        if not len(v):
            return (float("nan"), float("nan"))
        lo, hi = np.percentile(v, [50 * (1 - q), 50 * (1 + q)])
        return float(lo), float(hi)

    @property
    def intervals(self) -> dict[str, tuple[float, float]]:
        return {k: self.interval(k) for k in self.samples}

    def std(self, name: str) -> float:
        v = self.samples[name][self.converged]
        v = v[np.isfinite(v)]
        return float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")

    def summary(self) -> str:
        rows = []
        for k in self.samples:
            lo, hi = self.interval(k)
            rows.append([k, fmt(self.point.get(k)), f"({fmt(lo)}, {fmt(hi)})", fmt(self.std(k))])
        title = (f"{self.law}: cluster bootstrap over {self.n_clusters} runs, {self.n_converged}/{self.n_resamples} "
                 f"resamples converged; {self.confidence:.0%} percentile intervals")
        if self.target_compute:
            title += f"; target compute {fmt(self.target_compute)} FLOPs"
        text = format_table(["quantity", "estimate", f"{self.confidence:.0%} interval", "bootstrap SE"], rows, title=title)
        return text + "".join(f"\nnote: {n}" for n in self.notes)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self, include_samples: bool = False) -> dict[str, Any]:
        d = {"law": self.law, "n_resamples": self.n_resamples, "n_converged": self.n_converged,
             "confidence": self.confidence, "seed": self.seed, "n_clusters": self.n_clusters,
             "resampling": "cluster bootstrap (whole runs)", "target_compute": self.target_compute,
             "predict_at": self.predict_at, "point": self.point,
             "intervals": {k: list(v) for k, v in self.intervals.items()},
             "std": {k: self.std(k) for k in self.samples}, "notes": self.notes}
        if include_samples:
            d["samples"] = {k: v.tolist() for k, v in self.samples.items()}
        return jsonable(d)


def distinct_starts(best: np.ndarray, optima: list, k: int, min_dist: float = 0.05) -> np.ndarray:
    """The best point plus up to k-1 local optima that differ from every chosen one (max-abs distance)."""
    chosen = [np.asarray(best, float)]
    for o in optima:
        if len(chosen) >= k:
            break
        t = np.asarray(o.theta, float)
        if all(np.max(np.abs(t - c) / (1.0 + np.abs(c))) > min_dist for c in chosen):
            chosen.append(t)
    return np.array(chosen)


def bootstrap_fit(objective_factory, theta_best: np.ndarray, optima: list, clusters: np.ndarray, *,
                  n_resamples: int, seed: int | None, n_starts: int = 6, max_iter: int = 15000,
                  polish_gtol: float = 1e-10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Refit every resample from a few starts at once. Returns (theta (R, p), objective (R,), converged (R,)).

    `objective_factory(weights)` builds the batched objective for an (R, n) weight matrix.
    """
    with single_threaded_blas():
        return _bootstrap_fit(objective_factory, theta_best, optima, clusters, n_resamples=n_resamples, seed=seed,
                              n_starts=n_starts, max_iter=max_iter, polish_gtol=polish_gtol)


def _bootstrap_fit(objective_factory, theta_best, optima, clusters, *, n_resamples, seed, n_starts, max_iter, polish_gtol):
    rng = np.random.default_rng(seed)
    W = cluster_weights(clusters, n_resamples, rng)
    obj = objective_factory(W)
    starts = distinct_starts(theta_best, optima, n_starts)
    k = len(starts)
    rows = np.repeat(np.arange(n_resamples), k)
    x0 = np.tile(starts, (n_resamples, 1))
    bulk = minimize_batched(obj, x0, rows, max_iter=max_iter)
    f = np.where(np.isfinite(bulk.f), bulk.f, np.inf).reshape(n_resamples, k)
    pick = np.argmin(f, axis=1)
    xb = bulk.x.reshape(n_resamples, k, -1)[np.arange(n_resamples), pick]
    # Polish each resample's best end point in one more batch, at tight tolerances.
    fin = minimize_batched(obj, xb, np.arange(n_resamples), ftol=1e-15, gtol=polish_gtol, max_iter=max_iter)
    better = np.isfinite(fin.f) & (fin.f <= f[np.arange(n_resamples), pick])
    theta = np.where(better[:, None], fin.x, xb)
    fval = np.where(better, fin.f, f[np.arange(n_resamples), pick])
    gmax = np.where(better, np.abs(fin.g).max(1), np.inf)
    ok_status = (fin.status == CONVERGED_GTOL) | (fin.status == CONVERGED_FTOL) | (fin.status == LINE_SEARCH_FAILED)
    converged = np.isfinite(fval) & ok_status & (gmax <= SCIPY_GTOL)
    return theta, fval, converged
