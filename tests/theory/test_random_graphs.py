"""Erdős–Rényi giant component: the Lambert-W formula against its defining equation, series and Monte Carlo."""

import numpy as np
import pytest

from lmscale.errors import LmscaleError
from lmscale.theory.random_graphs import giant_fraction, giant_fraction_mc, largest_component_fraction, sample_er_edges


def test_giant_fraction_solves_fixed_point():
    c = np.array([1 + 1e-6, 1.01, 1.5, 2.0, 3.0, 10.0, 40.0, 1e4])
    g = giant_fraction(c)
    np.testing.assert_allclose(g, -np.expm1(-c * g), rtol=1e-13, atol=0)
    assert np.all(np.diff(g) >= 0) and np.all(np.diff(g[:-2]) > 0) and g[-1] == 1.0
    # Known values: c = 2 -> 0.7968121300200202 (root of g = 1 - exp(-2g)).
    assert giant_fraction(2.0) == pytest.approx(0.7968121300200202, rel=1e-14)


def test_no_giant_component_at_or_below_threshold():
    np.testing.assert_array_equal(giant_fraction([0.0, 0.3, 0.999999, 1.0]), 0.0)


def test_near_threshold_series_is_accurate():
    # gamma = 2d - 8d^2/3 + O(d^3) for c = 1 + d; Lambert W alone loses half the digits here.
    for d in (1e-9, 1e-7, 1e-5):
        c = 1.0 + d
        d_exact = c - 1.0
        g = float(giant_fraction(c))
        assert g == pytest.approx(2 * d_exact - 8 * d_exact**2 / 3, rel=10 * d_exact)


def test_huge_mean_degree_is_one_without_warnings():
    with np.errstate(all="raise"):
        assert giant_fraction(800.0) == 1.0


def test_negative_degree_is_an_error():
    with pytest.raises(LmscaleError, match="mean degree"):
        giant_fraction(-1.0)


def test_sampler_edges_are_distinct_and_sparse():
    rng = np.random.default_rng(0)
    e = sample_er_edges(10_000, 3.0, rng)
    assert np.all(e[:, 0] < e[:, 1])
    assert len(np.unique(e[:, 0] * 10_000 + e[:, 1])) == len(e)
    # Edge count ~ Binomial(S(S-1)/2, c/S): mean 14998.5, sd ~122.
    assert abs(len(e) - 3.0 * 9999 / 2) < 5 * 122


def test_largest_component_of_a_path_and_isolated_vertices():
    edges = np.array([[0, 1], [1, 2], [2, 3]])
    assert largest_component_fraction(10, edges) == pytest.approx(0.4)


@pytest.mark.parametrize("c", [1.5, 2.0, 3.0])
def test_monte_carlo_matches_lambert_w(c):
    """README: giant components match Lambert W within |z| < 1 (8 graphs of 20k vertices, seed 1:
    z = 0.72, 0.98, 0.55). z is a sampling statistic (about N(0, 1)): other seeds give |z| > 1 about
    a third of the time, so a 12x larger sample at another seed is also held to |z| < 3 (its standard
    error is about 0.0009: a formula off by 1% would show as |z| > 6)."""
    r = giant_fraction_mc(c, n_vertices=20_000, n_graphs=8, seed=1)
    assert r.theory == pytest.approx(float(giant_fraction(c)))
    assert r.stderr < 0.004
    assert abs(r.z) < 1, r
    big = giant_fraction_mc(c, n_vertices=20_000, n_graphs=96, seed=100)
    assert abs(big.z) < 3 and abs(big.mean - big.theory) < 0.002, big
