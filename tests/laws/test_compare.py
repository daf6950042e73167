"""Comparing two families' compute-optimal loss curves: crossing point and its bootstrap interval."""

import numpy as np
import pytest

from lmscale.laws import ChinchillaLaw, ScalingData, compare, compare_families
from lmscale.laws.compare import crossings

from .synth import chinchilla_loss


def _family(p, seed, noise=1e-3):
    rng = np.random.default_rng(seed)
    N = np.repeat(np.geomspace(1e7, 3e9, 7), 5)
    D = np.tile(np.geomspace(2e8, 2e11, 5), 7)
    return N, D, chinchilla_loss(p, N, D) * np.exp(rng.normal(0, noise, len(N)))


# Family "b" starts worse (larger A, B) but scales better (larger exponents): the curves cross.
PA = {"A": 400.0, "B": 1500.0, "E": 1.8, "alpha": 0.30, "beta": 0.30}
PB = {"A": 800.0, "B": 3000.0, "E": 1.8, "alpha": 0.34, "beta": 0.34}


def test_crossings_helper():
    C = np.geomspace(1, 100, 3)
    assert crossings(C, np.array([1.0, -1.0, -2.0]))[0] == pytest.approx(np.sqrt(10))
    assert len(crossings(C, np.array([1.0, 2.0, 3.0]))) == 0


def test_families_cross_where_the_true_curves_do():
    from lmscale.laws.frontier import chinchilla_allocation

    Cs = np.geomspace(1e15, 1e27, 2000)
    true_x = crossings(Cs, chinchilla_allocation(PA, Cs)["loss_opt"] - chinchilla_allocation(PB, Cs)["loss_opt"])
    assert len(true_x) == 1
    Na, Da, La = _family(PA, 0)
    Nb, Db, Lb = _family(PB, 1)
    fam = np.array(["a"] * len(Na) + ["b"] * len(Nb), dtype=object)
    data = ScalingData.from_arrays(N=np.r_[Na, Nb], D=np.r_[Da, Db], loss=np.r_[La, Lb], family=fam)
    res = compare_families(data, "a", "b", C_range=(1e15, 1e27), n_resamples=40, seed=0)
    assert res.crossing == pytest.approx(true_x[0], rel=1.0)  # within a factor 2 in compute
    assert res.lower_at_start == "a" and res.lower_at_end == "b"
    assert res.fraction_crossing > 0.8
    lo, hi = res.interval
    assert lo < res.crossing < hi
    assert "cross at C" in res.summary() and res.to_dict()["crossing"] == pytest.approx(res.crossing)


def test_no_crossing_is_reported_honestly():
    la = ChinchillaLaw().fit(ScalingData.from_arrays(*_family(PA, 0)))
    lb = ChinchillaLaw().fit(ScalingData.from_arrays(*_family({**PA, "E": 1.9}, 1)))
    res = compare(la, lb, labels=("good", "worse"), n_resamples=20, seed=0)
    assert res.crossings == [] and res.crossing is None
    assert res.message.startswith("no crossing in range: good has the lower compute-optimal loss throughout")
    assert res.fraction_crossing < 0.2
