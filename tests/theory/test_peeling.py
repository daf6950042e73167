import numpy as np
import pytest

from lmscale.errors import LmscaleError
from lmscale.theory.density_evolution import asymptotic_bit_erasure, bp_threshold
from lmscale.theory.ensemble import ConceptTextEnsemble, RegularEnsemble
from lmscale.theory.finite_length import BETA_REGULAR_3_6, waterfall
from lmscale.theory.peeling import (
    ErasedGraph,
    compare_with_theory,
    peel,
    sample_concept_text,
    sample_regular,
    simulate,
    texts_for_z,
)


def _graph(n_var, n_chk, edges):
    edges = sorted(edges)
    var = np.array([v for v, _ in edges], dtype=np.int64)
    chk = np.array([c for _, c in edges], dtype=np.int64)
    return ErasedGraph(n_var, n_chk, var, chk, n_var)


def test_peeling_resolves_a_chain_and_stops_on_a_stopping_set():
    # Chain: check 0 sees v0; check 1 sees v0, v1; check 2 sees v1, v2 -> all learned in 3 rounds.
    assert peel(_graph(3, 3, [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2)])) == 0
    # v0, v1 both in checks 0 and 1 only: every check has 2 unknowns -> a stopping set of size 2.
    assert peel(_graph(2, 2, [(0, 0), (0, 1), (1, 0), (1, 1)])) == 2
    # Stopping set plus a decodable extra variable.
    assert peel(_graph(3, 3, [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2)])) == 2
    assert peel(_graph(0, 4, [])) == 0


def test_concept_text_sampler_statistics_and_determinism():
    e = ConceptTextEnsemble(R=500.0, T=2500.0)
    g = sample_concept_text(e, np.random.default_rng(7))
    g2 = sample_concept_text(e, np.random.default_rng(7))
    assert np.array_equal(g.var, g2.var) and np.array_equal(g.chk, g2.chk)
    assert g.pool == 1000 and np.all(np.diff(g.var) >= 0)
    pairs = g.var * g.n_chk + g.chk
    assert np.unique(pairs).size == pairs.size  # no repeated (concept, text) pair
    # E ~ Bin(K T, p): mean K T p, sd ~ sqrt(K T p).
    mean = g.n_var * 2500 * e.p
    assert abs(g.n_edges - mean) < 5 * np.sqrt(mean)
    assert abs(g.n_var - 500) < 5 * np.sqrt(250)


def test_regular_sampler_degrees():
    e = RegularEnsemble(3, 6, 0.99999, n=600)
    g = sample_regular(e, np.random.default_rng(1))
    assert g.n_chk == 300
    if g.n_var == 600:  # all erased (probability ~0.994)
        assert np.all(np.bincount(g.var, minlength=600) == 3)
        assert np.all(np.bincount(g.chk, minlength=300) == 6)
    with pytest.raises(LmscaleError, match="divisible"):
        sample_regular(RegularEnsemble(3, 6, 0.4, n=601), np.random.default_rng(0))


def test_regular_3_6_near_threshold_matches_shifted_waterfall():
    # n = 2000 at eps = 0.43 (just above eps_BP = 0.4294): Amraoui's formula with beta = 0.6169.
    e = RegularEnsemble(3, 6, 0.43, n=2000)
    mc = simulate(e, trials=200, seed=1)
    theory = waterfall(e, beta=BETA_REGULAR_3_6).P_B
    assert abs(mc.P_B - theory) < 3 * mc.P_B_se
    # Without the shift the formula underestimates P_B at this size (the published N-V choice).
    assert waterfall(e).P_B < theory


def test_concept_text_far_from_threshold_at_R_1e5():
    R = 1e5
    # T/R = 4.0: eps_BP ~ 0.48 < eps = 0.5, peeling stalls at the DE fixed point for every graph.
    above = ConceptTextEnsemble(R=R, T=4.0 * R)
    assert bp_threshold(above).eps_bp < 0.49
    mc = simulate(above, trials=2, seed=0)
    assert mc.P_B == 1.0
    de = float(asymptotic_bit_erasure(above))
    # Fluctuations of the residual fraction are O(1/sqrt(n)) ~ 2e-3 at n = 2e5.
    assert mc.P_b == pytest.approx(de, abs=5e-3)


def test_concept_text_below_threshold_decodes():
    e = ConceptTextEnsemble(R=2e4, T=5.5 * 2e4)  # z ~ 6.7: P_B ~ 1e-11
    assert waterfall(e).z > 5
    mc = simulate(e, trials=3, seed=2)
    assert mc.P_B == 0.0 and mc.P_b == 0.0


def test_concept_text_near_threshold_within_sampling_error():
    # R = 3e3 at z = 1.3: P_B = Q(z) ~ 0.097 within a few standard errors of 80 graphs.
    e = ConceptTextEnsemble(R=3e3, T=float(round(texts_for_z(3e3, 1.3))))
    w = waterfall(e)
    mc = simulate(e, trials=80, seed=4)
    assert 0.05 < mc.P_B < 0.25
    assert abs(mc.P_B - w.P_B) < 3 * np.sqrt(w.P_B * (1 - w.P_B) / 80)


def test_simulate_errors():
    with pytest.raises(LmscaleError, match="trials"):
        simulate(ConceptTextEnsemble(R=100.0, T=500.0), trials=0)
    with pytest.raises(LmscaleError, match="n"):
        simulate(RegularEnsemble(3, 6, 0.4), trials=1)


def test_texts_for_z_and_compare_with_theory():
    T = texts_for_z(1e3, 1.0)
    assert waterfall(ConceptTextEnsemble(R=1e3, T=T)).z == pytest.approx(1.0, abs=1e-8)
    (row,) = compare_with_theory((1e3,), (-4.0,), trials=20, seed=5)
    assert row.z == pytest.approx(-4.0, abs=0.01)  # T is rounded to whole texts
    assert row.P_B_mc == 1.0
    # Above threshold every graph stalls at the DE fixed point: P_b agrees with eps L(y_inf).
    assert abs(row.P_b_mc - row.P_b_de) < 4 * row.P_b_se + 2e-3
