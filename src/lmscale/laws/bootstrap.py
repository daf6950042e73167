"""Cluster bootstrap: resample whole runs, refit, report percentile intervals.

Checkpoints (or WSD cooldown branches) of one run share its noise, so resampling single rows
understates the uncertainty; each resample draws as many runs as the data have, with
replacement, and keeps all rows of a drawn run together (rows without a run id are their own
run). A resample is a weight vector (how often each row was drawn), so every resample of a law
fit is one row of the batched objective: all resamples are fitted together by the batched
L-BFGS, each starting from the full-data optimum and a few other distinct local optima the grid
found, then polished in the same batch at tight tolerances.

    boot = bootstrap(est, 1000, seed=0, compute=[1e21, 1e22])   # any fitted estimator; nothing stored on it
    boot.interval("alpha"); boot.interval("N_opt")               # floats; arrays for a sequence of compute

`bootstrap` is a free function (as scikit-learn keeps cross_validate outside its estimators); an
estimator supplies `_bootstrap_samples(n_resamples, rng, compute, predict_at, n_starts)` returning
(point, samples, converged (R,), theta (R, p) or None, notes).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from lmscale.laws._blas import single_threaded_blas
from lmscale.laws.lbfgs import CONVERGED_FTOL, CONVERGED_GTOL, LINE_SEARCH_FAILED, SCIPY_GTOL, minimize_batched
from lmscale.laws.summary import jsonable


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
    """Bootstrap samples (one value per resample; NaN where a refit failed) and percentile intervals.

    `samples[name]` is (R,) for parameters, exponents and quantities at a scalar `compute`, and (R, m)
    for the allocation at a sequence of m compute values; `interval(name)` gives floats or arrays to match.
    """

    law: str
    n_resamples: int
    n_converged: int
    confidence: float
    seed: int | None
    n_clusters: int
    point: dict[str, Any]
    samples: dict[str, np.ndarray]
    converged: np.ndarray
    compute: float | np.ndarray | None = None
    predict_at: Any = None
    notes: list[str] = field(default_factory=list)
    theta: np.ndarray | None = field(default=None, repr=False)  # (R, p) fit-space parameters per resample
    resampling: str = "cluster bootstrap (whole runs)"  # Approach 2: stratified by compute budget

    @property
    def target_compute(self) -> float | None:
        """The compute (FLOPs) of the derived samples when it is one value, else None."""
        return float(self.compute) if self.compute is not None and np.ndim(self.compute) == 0 else None

    def _finite_columns(self, name: str) -> list[np.ndarray]:
        v = self.samples[name][self.converged]
        return [c[np.isfinite(c)] for c in v.T]

    def interval(self, name: str, confidence: float | None = None):
        """Percentile interval of `name` over the converged resamples: (low, high) floats, or arrays per compute value."""
        q = self.confidence if confidence is None else confidence
        v = self.samples[name][self.converged]
        if v.ndim == 1:
            v = v[np.isfinite(v)]
            if not len(v):
                return (float("nan"), float("nan"))
            lo, hi = np.percentile(v, [50 * (1 - q), 50 * (1 + q)])
            return float(lo), float(hi)
        cols = [np.percentile(c, [50 * (1 - q), 50 * (1 + q)]) if len(c) else np.full(2, np.nan)
                for c in self._finite_columns(name)]
        out = np.array(cols, float).reshape(-1, 2)
        return out[:, 0], out[:, 1]

    @property
    def intervals(self) -> dict[str, tuple]:
        return {k: self.interval(k) for k in self.samples}

    def std(self, name: str):
        """Bootstrap standard error of `name`: a float, or an array per compute value."""
        v = self.samples[name][self.converged]
        if v.ndim == 1:
            v = v[np.isfinite(v)]
            return float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")
        return np.array([float(np.std(c, ddof=1)) if len(c) > 1 else np.nan for c in self._finite_columns(name)])

    def summary(self) -> str:
        from lmscale.laws.summary import bootstrap_summary

        return bootstrap_summary(self)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self, include_samples: bool = False) -> dict[str, Any]:
        from lmscale.laws.summary import bootstrap_to_dict

        return bootstrap_to_dict(self, include_samples)


def bootstrap(est, n_resamples: int = 1000, *, seed: int | None = 0, confidence: float = 0.95, compute=None,
              predict_at=None, n_starts: int = 6) -> BootstrapResult:
    """Cluster bootstrap of a fitted estimator: resample whole runs, refit each resample, percentile intervals.

    Works for every fitted `lmscale.laws` estimator (Approach-3 laws, `IsoFLOPAllocation`,
    `EnvelopeAllocation`); nothing is stored on the estimator. Intervals cover the parameters and
    the derived quantities at `compute` (FLOPs: a float, or a sequence of m values for (R, m)
    allocation samples; default 10x the largest compute in the data): exponents a, b, N_opt, D_opt,
    tokens/param, loss at the optimum, and the loss at `predict_at` (e.g. {"N": 7e10, "D": 1.4e12}).
    `n_starts`: distinct starts per resample of a parametric law (the full-data optimum first).
    """
    from lmscale.errors import LmscaleError
    from lmscale.laws.frontier import check_compute, default_compute

    if not hasattr(est, "_bootstrap_samples"):
        raise LmscaleError(f"{type(est).__name__} cannot be bootstrapped; expected a fitted lmscale.laws estimator "
                           "(ChinchillaLaw, KaplanLaw, ..., IsoFLOPAllocation, EnvelopeAllocation)")
    if not hasattr(est, "data_"):
        raise LmscaleError(f"{type(est).__name__} is not fitted yet; call .fit(data) first")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 2:
        raise LmscaleError(f"n_resamples={n_resamples!r}; expected an integer of at least 2 (1000 or more for 95% intervals)")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float, np.floating)) or not 0 < confidence < 1:
        raise LmscaleError(f"confidence={confidence!r}; expected a fraction such as 0.95")
    if isinstance(n_starts, bool) or not isinstance(n_starts, (int, np.integer)) or n_starts < 1:
        raise LmscaleError(f"n_starts={n_starts!r}; expected a positive integer such as 6")
    if seed is not None and not isinstance(seed, (int, np.integer, np.random.Generator)) or isinstance(seed, bool):
        raise LmscaleError(f"seed={seed!r}; expected an integer, None or a numpy Generator")
    C = check_compute(compute) if compute is not None else default_compute(est.data_)
    rng = np.random.default_rng(seed)
    point, samples, converged, theta, notes = est._bootstrap_samples(int(n_resamples), rng, C, predict_at, int(n_starts))
    converged = np.asarray(converged, bool)
    label = est.form_.name if hasattr(est, "form_") else getattr(est, "_bootstrap_label", type(est).__name__)
    n_clusters = est._bootstrap_n_clusters() if hasattr(est, "_bootstrap_n_clusters") else est.data_.n_clusters
    return BootstrapResult(law=label, n_resamples=int(n_resamples), n_converged=int(converged.sum()),
                           confidence=float(confidence), seed=None if isinstance(seed, np.random.Generator) else seed,
                           n_clusters=int(n_clusters), point=point, samples=samples, converged=converged, compute=C,
                           predict_at=None if predict_at is None else jsonable(predict_at), notes=list(notes), theta=theta,
                           resampling=getattr(est, "_bootstrap_resampling", "cluster bootstrap (whole runs)"))


def at_compute(est, boot: BootstrapResult, compute) -> BootstrapResult:
    """`boot` (a bootstrap of the parametric law `est`) with its derived quantities at another `compute`,
    from the resampled parameters it kept: the same numbers as `bootstrap(est, ..., compute=compute)`
    with the same seed, without refitting a single resample."""
    from lmscale.errors import LmscaleError
    from lmscale.laws.frontier import check_compute

    if boot.theta is None or not hasattr(est, "_samples_at"):
        raise LmscaleError(f"{type(est).__name__}: only a parametric law's bootstrap keeps the resampled parameters "
                           "its derived quantities are recomputed from")
    C = check_compute(compute)
    point, samples = est._samples_at(boot.theta, C, boot.predict_at)
    return replace(boot, point=point, samples=samples, compute=C)


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

    `objective_factory(weights)` builds the batched objective for an (R, n) weight matrix; `seed` is
    an integer, None, or a numpy Generator the resamples are drawn from.
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
