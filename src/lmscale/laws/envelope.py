"""Chinchilla Approach 1: the envelope of training curves.

Each training curve (loss against FLOPs as a run proceeds) is optionally smoothed (Gaussian over
evaluation steps, as Hoffmann et al. did with 10 steps) and interpolated linearly in log C. At
log-spaced FLOP values (1500 in the paper) the run with the lowest loss gives N_opt and its tokens
at that point give D_opt; N_opt = k_N C^a and D_opt = k_D C^b are fitted by OLS in log space.

Curve rows come from `load_curves` (a sweep's curves.csv): `curve` = run_id tells the curves
apart, `run` (trunk) is the bootstrap cluster. Note that a cosine run's mid-training losses are
not the losses of a run trained to that length (the schedule has not decayed); Approach 1 takes
that as given, like the paper, and WSD sweeps give a cleaner envelope.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmscale.errors import LmscaleError
from lmscale.laws.bootstrap import cluster_weights
from lmscale.laws.data import ScalingData
from lmscale.laws.params import Params
from lmscale.laws.isoflop import _compute_array, _point, _predict_at_note, fit_power_law, power_law_allocation


def gaussian_smooth(y: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing over the index (sigma in evaluation steps), renormalised at the ends."""
    if sigma <= 0 or len(y) < 3:
        return y
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    num = np.convolve(y, k, mode="same")
    den = np.convolve(np.ones_like(y), k, mode="same")
    return num / den


class EnvelopeAllocation(Params):
    """Approach 1 estimator. Fitted: a_, b_, N_coef_, D_coef_, a_se_, b_se_ (OLS over the grid; the grid
    points are not independent, so prefer the bootstrap), envelope_ (dict of arrays C, N, D, loss, curve),
    n_curves_, warnings_, data_.

    n_grid: log-spaced FLOP values (1500 as Hoffmann et al.).
    smooth: Gaussian sigma in evaluation steps (0 = none).
    min_curves: a grid point is used only where at least this many curves reach it.
    trim_edges: drop grid points won by the smallest or largest model (the optimum may lie beyond them).
    Parameters are stored by `__init__` and validated by `fit` (scikit-learn's rules).
    """

    _bootstrap_label = "approach 1 (envelope)"
    _own_params = ("n_grid", "smooth", "min_curves", "trim_edges")

    def __init__(self, n_grid: int = 1500, smooth: float = 0.0, min_curves: int = 2, trim_edges: bool = True):
        self.n_grid = n_grid
        self.smooth = smooth
        self.min_curves = min_curves
        self.trim_edges = trim_edges

    def _check_params(self) -> None:
        def is_int(v):
            return not isinstance(v, bool) and isinstance(v, (int, np.integer))

        if not is_int(self.n_grid) or self.n_grid < 2:
            raise LmscaleError(f"n_grid={self.n_grid!r}; expected an integer of at least 2 (1500 as Hoffmann et al.)")
        if isinstance(self.smooth, bool) or not isinstance(self.smooth, (int, float, np.floating)) or not self.smooth >= 0:
            raise LmscaleError(f"smooth={self.smooth!r}; expected a Gaussian sigma >= 0 in evaluation steps (0 = none)")
        if not is_int(self.min_curves) or self.min_curves < 1:
            raise LmscaleError(f"min_curves={self.min_curves!r}; expected a positive integer such as 2")
        if not isinstance(self.trim_edges, (bool, np.bool_)):
            raise LmscaleError(f"trim_edges={self.trim_edges!r}; expected True or False")

    def _curves(self, data: ScalingData):
        ids = data.curve if data.curve is not None else data.run
        if ids is None:
            raise LmscaleError(f"{data.source}: no run_id column; Approach 1 needs to know which training curve each row is on")
        names, inv = np.unique(ids.astype(str), return_inverse=True)
        curves = []
        for i in range(len(names)):
            m = np.flatnonzero(inv == i)
            m = m[np.argsort(data.C[m])]
            if len(m) < 2:
                continue
            loss = gaussian_smooth(data.loss[m], self.smooth)
            curves.append({"name": names[i], "rows": m, "N": float(np.exp(np.log(data.N[m]).mean())),
                           "lC": np.log(data.C[m]), "loss": loss, "lD": np.log(data.D[m])})
        return curves

    def fit(self, data: ScalingData) -> "EnvelopeAllocation":
        """Build the envelope of the training curves and fit the power laws; returns self."""
        self._check_params()
        if not isinstance(data, ScalingData):
            raise LmscaleError(f"EnvelopeAllocation.fit expects a ScalingData of training curves; got {type(data).__name__} "
                               "(load_curves(sweep), or ScalingData.from_arrays(N=..., D=..., loss=..., run=...))")
        curves = self._curves(data)
        if len(curves) < 2:
            raise LmscaleError(f"{data.source}: {len(curves)} training curve(s) with 2+ evaluations; Approach 1 needs "
                               "at least 2 (runs of different sizes)")
        if len({c["N"] for c in curves}) < 2:
            raise LmscaleError(f"{data.source}: every curve has the same N; Approach 1 needs runs of different sizes")
        lo = min(c["lC"][0] for c in curves)
        hi = max(c["lC"][-1] for c in curves)
        grid = np.linspace(lo, hi, self.n_grid)
        K = len(curves)
        Lmat = np.full((K, self.n_grid), np.inf)
        lDmat = np.full((K, self.n_grid), np.nan)
        for k, c in enumerate(curves):
            inside = (grid >= c["lC"][0]) & (grid <= c["lC"][-1])
            Lmat[k, inside] = np.interp(grid[inside], c["lC"], c["loss"])
            lDmat[k, inside] = np.interp(grid[inside], c["lC"], c["lD"])
        self.grid_, self.curves_, self.Lmat_, self.lDmat_ = grid, curves, Lmat, lDmat
        self.Ns_ = np.array([c["N"] for c in curves])
        self.data_ = data
        res = self._solve(np.ones(K, bool))
        if res is None:
            raise LmscaleError(f"{data.source}: the envelope has fewer than 2 usable points (curves too short, or every "
                               "point won by the smallest or largest model); expected overlapping curves of several sizes")
        (self.a_, self.N_coef_, self.a_se_, self.b_, self.D_coef_, self.b_se_, self.envelope_) = res
        self.n_curves_ = K
        winners = np.unique(self.envelope_["N"])
        self.warnings_ = []
        if len(winners) < 3:
            self.warnings_.append(f"the envelope is won by only {len(winners)} model size(s); the exponents are poorly "
                                  "determined (train more sizes)")
        return self

    def _solve(self, include: np.ndarray):
        L = np.where(include[:, None], self.Lmat_, np.inf)
        count = np.isfinite(L).sum(0)
        win = np.argmin(L, axis=0)
        ok = count >= self.min_curves
        Nw = self.Ns_[win]
        if self.trim_edges:
            Ns_in = self.Ns_[include]
            ok &= (Nw > Ns_in.min()) & (Nw < Ns_in.max())
        if ok.sum() < 2 or len(np.unique(Nw[ok])) < 2:
            return None
        C = np.exp(self.grid_[ok])
        N = Nw[ok]
        D = np.exp(self.lDmat_[win[ok], np.flatnonzero(ok)])
        a, kN, a_se = fit_power_law(C, N)
        b, kD, b_se = fit_power_law(C, D)
        env = {"C": C, "N": N, "D": D, "loss": L[win[ok], np.flatnonzero(ok)],
               "curve": np.array([self.curves_[i]["name"] for i in win[ok]], dtype=object)}
        return a, kN, a_se, b, kD, b_se, env

    def _require_fitted(self) -> None:
        if not hasattr(self, "envelope_"):
            raise LmscaleError("EnvelopeAllocation is not fitted yet; call .fit(curves) first")

    def optimal_allocation(self, C) -> dict[str, Any]:
        """N_opt (params), D_opt (tokens), tokens/param at compute C (FLOPs) from the fitted power laws; the same
        keys as an Approach-3 law (C, N_opt, D_opt, tokens_per_param, loss_opt = NaN: not estimated)."""
        self._require_fitted()
        return power_law_allocation(self.a_, self.N_coef_, self.b_, self.D_coef_, C)

    def _curve_clusters(self) -> np.ndarray:
        """One cluster per curve: the cluster of its first row (all rows of a curve share a run)."""
        row_cluster = self.data_.clusters()
        curve_cluster = np.array([row_cluster[c["rows"][0]] for c in self.curves_])
        return np.unique(curve_cluster, return_inverse=True)[1]

    def _bootstrap_n_clusters(self) -> int:
        return int(self._curve_clusters().max()) + 1

    def _bootstrap_samples(self, n_resamples, rng, compute, predict_at, n_starts):
        """Cluster bootstrap over runs (trunks): redraw runs, rebuild the envelope, refit the power laws."""
        self._require_fitted()
        tc = _compute_array(compute, self.data_)
        W = cluster_weights(self._curve_clusters(), n_resamples, rng)
        keys = ("a", "b", "N_opt", "D_opt", "tokens_per_param")
        shape = {k: (n_resamples,) if k in ("a", "b") or np.ndim(tc) == 0 else (n_resamples, np.size(tc)) for k in keys}
        samples = {k: np.full(shape[k], np.nan) for k in keys}
        for r in range(n_resamples):
            res = self._solve(W[r] > 0)
            if res is None:
                continue
            a, kN, _, b, kD, _, _ = res
            N, D = kN * tc ** a, kD * tc ** b
            for k, v in zip(keys, (a, b, N, D, D / N)):
                samples[k][r] = v
        conv = np.isfinite(samples["a"])
        at = self.optimal_allocation(tc)
        point = _point({"a": self.a_, "b": self.b_, **{k: at[k] for k in ("N_opt", "D_opt", "tokens_per_param")}})
        return point, samples, conv, None, _predict_at_note(predict_at)

    def to_dict(self, bootstrap=None, **kw) -> dict[str, Any]:
        from lmscale.laws.summary import to_dict

        return to_dict(self, bootstrap, **kw)

    def summary(self, bootstrap=None, **kw) -> str:
        from lmscale.laws.summary import summary

        return summary(self, bootstrap, **kw)

    def __str__(self) -> str:
        return self.summary() if hasattr(self, "envelope_") else repr(self)
