"""Skill graphs: edge probabilities, level distributions, emergence scale and plateau heights (notes §1.6-1.7)."""

import numpy as np
import pytest
from scipy.stats import binom

from lmscale.errors import LmscaleError
from lmscale.theory.skills import (SkillParams, aggregate_accuracy, crossing, edge_probability, emergence_curves,
                                   emergence_scale_closed_form, level_distribution, level_giant_fractions,
                                   plateau_heights, skill_pair_probability, task_accuracy)

# A stand-in frontier with the optimum's texts per concept at large compute (T*/R* = 4.6, notes §1.4).
KAPPA = 4.6
N = np.geomspace(1e7, 1e14, 400)
R = N / 2e5
T = KAPPA * R


@pytest.fixture(scope="module")
def curves():
    """Accuracy along the model's own compute-optimal frontier (R*, T*), C = 1e4..1e18 model units."""
    from lmscale.theory.optimum import compute_optimal

    opt = compute_optimal(np.logspace(4, 18, 200))
    return emergence_curves(opt.R_star, opt.T_star, params_per_concept=opt.params.params_per_concept)


def test_level_constants():
    sp = SkillParams()
    assert sp.eta[0] == 1 and sp.eta[10] == 2 and sp.eta[-1] == 1097  # round(exp(7 l/100))
    assert sp.sigma[0] == 0 and sp.sigma[1] == 1 and sp.sigma[-1] == 7  # round(log2 l)
    np.testing.assert_array_equal(sp.n_values, [2, 3, 4, 5, 6, 7])


def test_skill_pair_probability_is_stable_for_large_R():
    # 1 - (1 - q)^T with q = (d_t/R)^2 = 3.6e-19: the naive form rounds to 0; the exact value is ~ T q.
    p = skill_pair_probability(1e10, 1e6)
    assert p == pytest.approx(1e6 * 36e-20 / 1e6, rel=1e-6)


def test_edge_probability_switches_on_where_the_mean_count_passes_eta():
    # M p_ss ~ T d_t^2 / (2 S^2): with R = 1e6 the mean count equals eta = 10 at T = 10 * 2e6 / 36.
    R0 = 1e6
    T_eta = 10 * 2 * 1e6 / 36
    for units in ("bits", "nats"):
        lo = edge_probability(R0, 0.5 * T_eta, 10, kl_units=units)
        hi = edge_probability(R0, 2.0 * T_eta, 10, kl_units=units)
        assert lo < 1e-6 and hi > 0.9
    # Bits put 1/ln 2 more in the exponent: 1 - exp(-K/ln 2) vs 1 - exp(-K).
    b = edge_probability(R0, 2 * T_eta, 10, kl_units="bits")
    n = edge_probability(R0, 2 * T_eta, 10, kl_units="nats")
    assert -np.log1p(-b) == pytest.approx(-np.log1p(-n) / np.log(2), rel=1e-9)
    assert edge_probability(10.0, 1e9, 100) == 0.0  # eta >= M = 45 concept pairs: impossible


def test_level_distributions_and_plateau_heights():
    uni = level_distribution("unimodal")
    assert uni.argmax() + 1 == 50 and uni.max() == pytest.approx(binom.pmf(50, 100, 0.5)) and uni.max() == pytest.approx(0.0796, abs=1e-4)
    multi = level_distribution("multimodal")
    assert multi.sum() == pytest.approx(1.0, abs=1e-8)
    peaks = {20: 0.4 * binom.pmf(20, 100, 0.2), 60: 0.4 * binom.pmf(60, 100, 0.6), 95: 0.2 * binom.pmf(95, 100, 0.95)}
    for lv, v in peaks.items():
        assert multi[lv - 1] == pytest.approx(v, rel=1e-3)
    np.testing.assert_allclose(plateau_heights("multimodal"), [0.4, 0.8, 1.0])
    with pytest.raises(LmscaleError, match="level distribution"):
        level_distribution("trimodal")


def test_single_level_emergence_at_five_billion(curves):
    n_half = crossing(curves.N, curves.single)
    assert curves.single_task == (11, 7)
    assert 4e9 < n_half < 6e9  # the paper's step at ~5e9 parameters
    assert curves.single[0] == 0.0 and curves.single[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("level", [11, 20, 50, 60, 95])
def test_emergence_scale_is_2p4e9_times_eta(curves, level):
    eta = SkillParams().eta[level - 1]
    n_half = crossing(curves.N, curves.gammas[level - 1])
    closed = emergence_scale_closed_form(level, KAPPA)
    assert closed == pytest.approx(2.415e9 * eta, rel=1e-3)
    assert n_half == pytest.approx(2.4e9 * eta, rel=0.05)  # measured: within 3% for these levels


def test_unimodal_sigmoid(curves):
    assert np.all(np.diff(curves.unimodal) >= -1e-12)
    assert 2e10 < crossing(curves.N, curves.unimodal, 0.01) < 5e10
    assert 1e11 < crossing(curves.N, curves.unimodal, 0.99) < 3e11


def test_multimodal_plateaus_at_cumulative_weights(curves):
    acc = curves.multimodal
    at = lambda n: float(np.interp(np.log(n), np.log(curves.N), acc))  # noqa: E731
    assert at(4e10) == pytest.approx(0.4, abs=0.005)
    assert at(7e11) == pytest.approx(0.8, abs=0.005)
    assert at(1e13) == pytest.approx(1.0, abs=1e-6)
    assert at(1e8) < 1e-6


def test_aggregate_accuracy_weights():
    sp = SkillParams(levels=2, n_min=2, n_max=3)
    g = np.array([[0.5], [1.0]])
    # q = (0.25, 0.75): 0.25 * mean(0.5^2, 0.5^3) + 0.75 * 1.
    assert aggregate_accuracy(g, [0.25, 0.75], sp)[0] == pytest.approx(0.25 * (0.25 + 0.125) / 2 + 0.75)
    assert task_accuracy(0.9, 7) == pytest.approx(0.9**7)


def test_prerequisite_modes():
    Rs, Ts = R[::20], T[::20]
    rel = level_giant_fractions(Rs, Ts, SkillParams())
    none = level_giant_fractions(Rs, Ts, SkillParams(prereq="none"))
    chained = level_giant_fractions(Rs, Ts, SkillParams(prereq="chained"))
    # Levels 1..11 never see prerequisites in the released code; prerequisites can only lower gamma.
    np.testing.assert_array_equal(rel[:11], none[:11])
    assert np.all(rel <= none + 1e-15) and np.all(chained <= none + 1e-15)


def test_invalid_params_are_one_line_errors():
    with pytest.raises(LmscaleError, match="d_t"):
        SkillParams.make(d_t=1.5)
    with pytest.raises(LmscaleError, match="n_max"):
        SkillParams.make(n_min=5, n_max=3)
    with pytest.raises(LmscaleError, match="positive"):
        skill_pair_probability(-1.0, 10.0)
