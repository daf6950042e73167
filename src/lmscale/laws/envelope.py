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
from lmscale.laws.bootstrap import BootstrapResult, cluster_weights
from lmscale.laws.data import ScalingData
from lmscale.laws.isoflop import fit_power_law
from lmscale.laws.tables import allocation_lines, fmt, format_table, jsonable


def gaussian_smooth(y: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing over the index (sigma in evaluation steps), renormalised at the ends."""
    if sigma <= 0 or len(y) < 3:
        return y
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    num = np.convolve(y, k, mode="same")
    den = np.convolve(np.ones_like(y), k, mode="same")
    return num / den


class EnvelopeAllocation:
    """Approach 1 estimator. Fitted: a_, b_, N_coef_, D_coef_, a_se_, b_se_ (OLS over the grid; the grid
    points are not independent, so prefer the bootstrap), envelope_ (dict of arrays C, N, D, loss, curve),
    n_curves_, warnings_.

    n_grid: log-spaced FLOP values (1500 as Hoffmann et al.).
    smooth: Gaussian sigma in evaluation steps (0 = none).
    min_curves: a grid point is used only where at least this many curves reach it.
    trim_edges: drop grid points won by the smallest or largest model (the optimum may lie beyond them).
    """

    def __init__(self, n_grid: int = 1500, smooth: float = 0.0, min_curves: int = 2, trim_edges: bool = True,
                 target_compute: float | None = None):
        self.n_grid, self.smooth, self.min_curves, self.trim_edges = n_grid, smooth, min_curves, trim_edges
        self.target_compute = target_compute

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
        curves = self._curves(data)
        if len(curves) < 2:
            raise LmscaleError(f"{data.source}: {len(curves)} training curve(s) with 2+ evaluations; Approach 1 needs "
                               "at least 2 (runs of different sizes)")
        if len({c["N"] for c in curves}) < 2:
            raise LmscaleError(f"{data.source}: every curve has the same N; Approach 1 needs runs of different sizes")
        lo = min(c["lC"][0] for c in curves)
        hi = max(c["lC"][-1] for c in curves)
        self.grid_ = np.linspace(lo, hi, self.n_grid)
        K = len(curves)
        Lmat = np.full((K, self.n_grid), np.inf)
        lDmat = np.full((K, self.n_grid), np.nan)
        for k, c in enumerate(curves):
            inside = (self.grid_ >= c["lC"][0]) & (self.grid_ <= c["lC"][-1])
            Lmat[k, inside] = np.interp(self.grid_[inside], c["lC"], c["loss"])
            lDmat[k, inside] = np.interp(self.grid_[inside], c["lC"], c["lD"])
        self.curves_, self.Lmat_, self.lDmat_ = curves, Lmat, lDmat
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
        self.target_compute_ = self.target_compute or float(10 * data.C.max())
        self.bootstrap_: BootstrapResult | None = None
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

    def predict(self, C) -> dict[str, np.ndarray]:
        C = np.asarray(C, float)
        N, D = self.N_coef_ * C ** self.a_, self.D_coef_ * C ** self.b_
        return {"N_opt": N, "D_opt": D, "tokens_per_param": D / N}

    def bootstrap(self, n_resamples: int = 1000, seed: int | None = 0, confidence: float = 0.95,
                  target_compute: float | None = None) -> BootstrapResult:
        """Cluster bootstrap over runs (trunks): redraw runs, rebuild the envelope, refit the power laws."""
        data = self.data_
        tc = target_compute or self.target_compute_
        # One cluster per curve: the cluster of its first row (all rows of a curve share a run).
        row_cluster = data.clusters()
        curve_cluster = np.array([row_cluster[c["rows"][0]] for c in self.curves_])
        _, curve_cluster = np.unique(curve_cluster, return_inverse=True)
        W = cluster_weights(curve_cluster, n_resamples, np.random.default_rng(seed))
        keys = ("a", "b", "N_opt", "D_opt", "tokens_per_param")
        samples = {k: np.full(n_resamples, np.nan) for k in keys}
        for r in range(n_resamples):
            res = self._solve(W[r] > 0)
            if res is None:
                continue
            a, kN, _, b, kD, _, _ = res
            N, D = kN * tc ** a, kD * tc ** b
            for k, v in zip(keys, (a, b, N, D, D / N)):
                samples[k][r] = v
        conv = np.isfinite(samples["a"])
        at = self.predict(tc)
        point = {"a": self.a_, "b": self.b_, **{k: float(v) for k, v in at.items()}}
        self.bootstrap_ = BootstrapResult(law="approach 1 (envelope)", n_resamples=n_resamples,
                                          n_converged=int(conv.sum()), confidence=confidence, seed=seed,
                                          n_clusters=int(curve_cluster.max()) + 1, point=point, samples=samples,
                                          converged=conv, target_compute=tc)
        return self.bootstrap_

    def to_dict(self) -> dict[str, Any]:
        return jsonable({
            "approach": 1, "method": "envelope of training curves (min loss over runs at log-spaced FLOPs); OLS power laws",
            "data": {"source": self.data_.source, "n_rows": len(self.data_), "n_curves": self.n_curves_},
            "n_grid": self.n_grid, "smooth": self.smooth, "n_envelope_points": len(self.envelope_["C"]),
            "a": self.a_, "b": self.b_, "a_se": self.a_se_, "b_se": self.b_se_, "N_coef": self.N_coef_,
            "D_coef": self.D_coef_, "formula": "N_opt = N_coef * C^a, D_opt = D_coef * C^b (C in FLOPs)",
            "target_compute": self.target_compute_, "at_target": self.predict(self.target_compute_),
            "envelope_sizes": sorted(float(n) for n in np.unique(self.envelope_["N"])), "warnings": self.warnings_,
            "bootstrap": self.bootstrap_.to_dict() if self.bootstrap_ is not None else None,
        })

    def summary(self) -> str:
        env = self.envelope_
        sizes = np.unique(env["N"])
        rows = []
        for n in sizes:
            m = env["N"] == n
            rows.append([fmt(n), f"[{fmt(env['C'][m].min())}, {fmt(env['C'][m].max())}]", int(m.sum())])
        t = format_table(["winning N (params)", "C range won (FLOPs)", "grid points"], rows,
                         title=f"Approach 1 (envelope of {self.n_curves_} training curves, {len(env['C'])} grid points)")
        lines = [t, *allocation_lines(self)]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()
