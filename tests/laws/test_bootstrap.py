"""Cluster bootstrap: whole runs resampled together; Epoch's 95% intervals reproduced."""

import json

import numpy as np
import pytest

from lmscale.laws import ChinchillaLaw, ScalingData, cluster_weights
from lmscale.laws.bootstrap import resample_indices

from .synth import chinchilla_grid


def test_rows_of_one_run_always_appear_together():
    run = np.array(["t0", "t0", "t0", "t1", "t1", "", "", "t2"], dtype=object)  # WSD branches share a trunk
    data = ScalingData.from_arrays(N=np.arange(1, 9) * 1e6, D=np.full(8, 1e9), loss=np.full(8, 3.0), run=run)
    cl = data.clusters()
    assert cl[0] == cl[1] == cl[2] and cl[3] == cl[4] and cl[5] != cl[6]  # empty run: its own cluster
    assert data.n_clusters == 5
    W = cluster_weights(cl, 500, np.random.default_rng(0))
    assert W.shape == (500, 8)
    for c in np.unique(cl):
        rows = np.flatnonzero(cl == c)
        assert (W[:, rows] == W[:, rows[:1]]).all()  # same count for every row of a run, every resample
    # Each resample draws as many runs as there are: total cluster draws = n_clusters.
    first = np.array([np.flatnonzero(cl == c)[0] for c in range(data.n_clusters)])
    assert (W[:, first].sum(1) == data.n_clusters).all()
    idx = resample_indices(W[0])
    assert len(idx) == W[0].sum()


def test_bootstrap_intervals_cover_truth_and_count_converged():
    data = chinchilla_grid(noise=3e-3, seed=1, runs=True)
    law = ChinchillaLaw(holdout="none").fit(data)
    boot = law.bootstrap(60, seed=0, target_compute=1e21, predict_at=(1e10, 2e11))
    assert boot.n_resamples == 60 and 50 <= boot.n_converged <= 60
    assert boot.n_clusters == 8
    lo, hi = boot.interval("alpha")
    assert lo < 0.33 < hi
    assert {"a", "b", "G", "N_opt", "D_opt", "tokens_per_param", "loss_opt", "loss_at"} <= set(boot.samples)
    # Derived samples agree with the parameter samples they come from.
    a = boot.samples["beta"] / (boot.samples["alpha"] + boot.samples["beta"])
    np.testing.assert_allclose(boot.samples["a"], a)
    d = json.loads(json.dumps(boot.to_dict(), allow_nan=False))
    assert d["n_converged"] == boot.n_converged and "alpha" in d["intervals"]
    assert "95%" in boot.summary()
    assert law.bootstrap_ is boot and "95% interval" in law.summary()


def test_epoch_bootstrap_intervals(epoch_law):
    """Epoch's 95% percentile CIs (4000 resamples): alpha (0.317, 0.373), beta (0.331, 0.415); ±10%."""
    boot = epoch_law.bootstrap(400, seed=0)
    assert boot.n_converged >= 390
    for name, (lo_ref, hi_ref) in {"alpha": (0.317, 0.373), "beta": (0.331, 0.415)}.items():
        lo, hi = boot.interval(name)
        assert lo == pytest.approx(lo_ref, rel=0.10), name
        assert hi == pytest.approx(hi_ref, rel=0.10), name
    lo, hi = boot.interval("E")
    assert lo == pytest.approx(1.769, rel=0.02) and hi == pytest.approx(1.871, rel=0.02)
    lo, hi = boot.interval("a")
    assert lo < 0.5139 < hi


def _correlated_runs(run_sd=3e-3, row_sd=1e-3, seed=0, n_sizes=8, n_tokens=6):
    """Chinchilla-law points whose noise is mostly shared by the rows of a run (one run per size,
    its checkpoints at six token counts): the situation the cluster bootstrap exists for."""
    from .synth import TRUE_CHINCHILLA, chinchilla_loss

    rng = np.random.default_rng(seed)
    N = np.repeat(np.geomspace(1e7, 3e9, n_sizes), n_tokens)
    D = np.tile(np.geomspace(2e8, 2e11, n_tokens), n_sizes)
    noise = np.repeat(rng.normal(0, run_sd, n_sizes), n_tokens) + rng.normal(0, row_sd, len(N))
    return ScalingData.from_arrays(N=N, D=D, loss=chinchilla_loss(TRUE_CHINCHILLA, N, D) * np.exp(noise),
                                   run=np.repeat([f"size{i}" for i in range(n_sizes)], n_tokens))


def test_bootstrap_resamples_whole_runs_so_correlated_runs_widen_the_interval():
    """The law's bootstrap is exactly the cluster resample of its runs at the seed (the same refits
    as `bootstrap_fit` given the run clusters), and on runs with shared noise its alpha interval is
    several times wider than a row-by-row resample's (measured: 0.055 against 0.014, 4x)."""
    from lmscale.laws.bootstrap import bootstrap_fit

    data = _correlated_runs()
    law = ChinchillaLaw(holdout="none").fit(data)
    boot = law.bootstrap(100, seed=0)
    assert boot.n_clusters == 8 and boot.n_converged >= 95

    def refit(clusters):
        return bootstrap_fit(lambda W: law._objective(law.data_, W), law.theta_, law.fit_result_.local_optima,
                             clusters, n_resamples=100, seed=0)

    theta_runs, _, conv_runs = refit(data.clusters())
    np.testing.assert_array_equal(boot.theta, theta_runs)
    np.testing.assert_array_equal(boot.converged, conv_runs)
    theta_rows, _, conv_rows = refit(np.arange(len(data)))
    lo, hi = boot.interval("alpha")
    r_lo, r_hi = np.percentile(theta_rows[conv_rows, 3], [2.5, 97.5])  # alpha is fit coordinate 3
    assert lo < law.params_["alpha"] < hi
    assert (hi - lo) > 2.5 * (r_hi - r_lo), ((lo, hi), (r_lo, r_hi))
