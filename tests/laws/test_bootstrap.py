"""Cluster bootstrap: whole runs resampled together; Epoch's 95% intervals reproduced."""

import json

import numpy as np
import pytest

from lmscale.errors import LmscaleError
from lmscale.laws import ChinchillaLaw, EnvelopeAllocation, IsoFLOPAllocation, ScalingData, cluster_weights
from lmscale.laws.bootstrap import bootstrap, resample_indices
from lmscale.laws.summary import summary

from .synth import chinchilla_grid, isoflop_set, training_curves


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
    law = ChinchillaLaw().fit(data)
    boot = bootstrap(law, 60, seed=0, compute=1e21, predict_at=(1e10, 2e11))
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
    assert "95% interval" in summary(law, boot) and "95% interval" not in summary(law)
    assert not hasattr(law, "bootstrap_")  # nothing is stored on the estimator


def test_epoch_bootstrap_intervals(epoch_law):
    """Epoch's 95% percentile CIs (4000 resamples): alpha (0.317, 0.373), beta (0.331, 0.415); ±10%."""
    boot = bootstrap(epoch_law, 400, seed=0)
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
    law = ChinchillaLaw().fit(data)
    boot = bootstrap(law, 100, seed=0)
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


# -- the free function: the same numbers as the estimator methods it replaced -------------------------
# Pinned from `law.bootstrap(...)` / `est.bootstrap(...)` before the scikit-learn refactor (issue 12).
# rel 1e-6: the refits stop at L-BFGS's tolerance, so the last digits differ between CPUs (1e-8 seen);
# resampling points instead of runs, or another seed, moves these by more than 1e-2.

def test_free_bootstrap_pins_the_numbers_of_the_old_method():
    law = ChinchillaLaw().fit(chinchilla_grid(noise=3e-3, seed=1, runs=True))
    boot = bootstrap(law, 60, seed=0, compute=1e21, predict_at={"N": 1e10, "D": 2e11})
    assert boot.n_converged == 60 and boot.compute == 1e21 and boot.target_compute == 1e21
    assert boot.interval("alpha") == pytest.approx((0.3142753230933734, 0.3425689311629372), rel=1e-6)
    assert boot.interval("a") == pytest.approx((0.46487923997055974, 0.4883336109345618), rel=1e-6)
    assert boot.interval("N_opt") == pytest.approx((583042162.768777, 636306199.4125588), rel=1e-6)
    assert boot.interval("loss_at") == pytest.approx((2.600654279879112, 2.62841834926578), rel=1e-6)


def test_free_bootstrap_pins_epoch_intervals(epoch_law):
    boot = bootstrap(epoch_law, 400, seed=0, compute=5.88e23)
    assert boot.n_converged == 399
    assert boot.interval("alpha") == pytest.approx((0.31493942569109623, 0.3714394484107219), rel=1e-6)
    assert boot.interval("beta") == pytest.approx((0.336519540038472, 0.4200913878652293), rel=1e-6)
    assert boot.interval("E") == pytest.approx((1.772826003246951, 1.875352372305936), rel=1e-6)
    assert boot.interval("tokens_per_param") == pytest.approx((7.219664363464296, 33.58573357172557), rel=1e-6)


def test_free_bootstrap_pins_approaches_1_and_2():
    data, _ = isoflop_set(noise=2e-3, jitter=0.02, seed=3, n=9)
    # Approach 2 re-pinned (issue 12, robust vertices): its bootstrap is now stratified by budget and its default
    # vertex method "local" (the cluster bootstrap of whole-profile parabolas gave a (0.47606, 0.55422)).
    b2 = bootstrap(IsoFLOPAllocation(budget_rtol=0.1).fit(data), 200, seed=0, compute=1e22)
    assert b2.n_converged == 200 and b2.law == "approach 2 (IsoFLOP)" and b2.theta is None
    assert b2.interval("a") == pytest.approx((0.47575082155038434, 0.555542522702769), rel=1e-6)
    assert b2.interval("N_opt") == pytest.approx((34315886548.316055, 62139254171.46803), rel=1e-6)
    curves, _ = training_curves(alpha=0.3, beta=0.3)
    b1 = bootstrap(EnvelopeAllocation().fit(curves), 50, seed=0)
    assert b1.n_converged == 50 and b1.compute == pytest.approx(6e23)  # default: 10x the largest compute
    assert b1.interval("a") == pytest.approx((0.47988488407940433, 0.5020803613869691), rel=1e-6)
    assert b1.interval("tokens_per_param") == pytest.approx((0.9433468952642317, 1.9625978975568206), rel=1e-6)


def test_bootstrap_over_a_sequence_of_compute_gives_R_by_m_samples():
    law = ChinchillaLaw().fit(chinchilla_grid(noise=3e-3, seed=1, runs=True))
    Cs = [1e20, 1e21, 1e22]
    boot = bootstrap(law, 60, seed=0, compute=Cs)
    for k in ("N_opt", "D_opt", "tokens_per_param", "loss_opt"):
        assert boot.samples[k].shape == (60, 3), k
        lo, hi = boot.interval(k)
        assert lo.shape == hi.shape == (3,) and (lo < hi).all(), k
        assert np.asarray(boot.point[k]).shape == (3,)
    for k in ("alpha", "a", "b", "G"):
        assert boot.samples[k].shape == (60,) and isinstance(boot.interval(k)[0], float), k
    assert boot.target_compute is None
    # Column j is the scalar-compute bootstrap at Cs[j] (the same resamples at the same seed).
    one = bootstrap(law, 60, seed=0, compute=1e21)
    np.testing.assert_allclose(boot.samples["N_opt"][:, 1], one.samples["N_opt"], rtol=1e-12)
    assert boot.interval("N_opt")[0][1] == pytest.approx(one.interval("N_opt")[0], rel=1e-12)
    # 6 N D = C in every resample and column.
    np.testing.assert_allclose(6 * boot.samples["N_opt"] * boot.samples["D_opt"], np.broadcast_to(Cs, (60, 3)), rtol=1e-9)
    assert "N_opt at C=1.000e+22" in summary(boot) and "N_opt [params at target C] at C=1.000e+20" in summary(law, boot)
    d = json.loads(json.dumps(boot.to_dict(), allow_nan=False))
    assert len(d["intervals"]["N_opt"][0]) == 3 and d["compute"] == Cs
    # Approach 2 takes the same sequence.
    data, _ = isoflop_set(noise=2e-3, jitter=0.02, seed=3, n=9)
    b2 = bootstrap(IsoFLOPAllocation().fit(data), 20, seed=0, compute=Cs)
    assert b2.samples["N_opt"].shape == (20, 3) and b2.samples["a"].shape == (20,)


@pytest.mark.parametrize("kw, needle", [
    ({"n_resamples": 1}, "n_resamples=1; expected an integer of at least 2"),
    ({"confidence": 1.5}, "confidence=1.5; expected a fraction"),
    ({"compute": -1.0}, "compute=-1.0; expected a positive number of FLOPs"),
    ({"compute": [1e20, float("nan")]}, "expected a positive number of FLOPs"),
    ({"n_starts": 0}, "n_starts=0; expected a positive integer"),
    ({"seed": "zero"}, "seed='zero'; expected an integer"),
])
def test_bootstrap_refuses_bad_options_in_one_line(kw, needle):
    law = ChinchillaLaw().fit(chinchilla_grid(noise=1e-3, seed=0))
    with pytest.raises(LmscaleError, match=needle.replace("(", r"\(").replace("[", r"\[")):
        bootstrap(law, **{"n_resamples": 10, **kw})
    with pytest.raises(LmscaleError, match="not fitted"):
        bootstrap(ChinchillaLaw(), 10)


def test_at_compute_rederives_without_refitting_and_matches_a_fresh_bootstrap(monkeypatch):
    from lmscale.laws import bootstrap as bmod

    law = ChinchillaLaw().fit(chinchilla_grid(noise=3e-3, seed=1, runs=True))
    many = bootstrap(law, 40, seed=0, compute=[1e20, 1e21, 1e22])
    fresh = bootstrap(law, 40, seed=0, compute=1e22)

    def no_refit(*a, **k):
        raise AssertionError("at_compute refitted")

    monkeypatch.setattr(bmod, "_bootstrap_fit", no_refit)
    one = bmod.at_compute(law, many, 1e22)
    assert one.compute == 1e22 and one.target_compute == 1e22
    for k in ("a", "N_opt", "D_opt", "tokens_per_param", "alpha"):
        np.testing.assert_array_equal(one.samples[k], fresh.samples[k])
        assert one.interval(k) == fresh.interval(k)
    assert one.point["N_opt"] == fresh.point["N_opt"]
    assert many.samples["N_opt"].shape == (40, 3)  # the original is left as it was
