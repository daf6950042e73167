import numpy as np
import pytest

from lmscale.errors import LmscaleError
from lmscale.theory.ensemble import NVParams
from lmscale.theory.finite_length import concepts_learned
from lmscale.theory.optimum import compute_optimal, fit_tokens_per_text, predicted_allocation

BUDGETS = np.array([1e3, 1e6, 1e12, 1e16, 1e20])


@pytest.fixture(scope="module")
def published():
    return compute_optimal(BUDGETS, NVParams())


def test_ratio_rises_from_0_40_to_0_47(published):
    r = published.ratio
    assert r[1] == pytest.approx(0.40, abs=0.005)  # C = 1e6
    assert r[2] == pytest.approx(0.465, abs=0.005)  # C = 1e12
    assert r[3] == pytest.approx(0.47, abs=0.005) and r[4] == pytest.approx(0.47, abs=0.005)
    assert abs(r[4] - r[2]) < 0.006  # flat from 1e12 to 1e20
    # T*/R*: 6.3 (1e6) -> 4.6 (1e12) -> 4.53 (1e20), notes §1.4.
    kappa = published.T_star / published.R_star
    assert kappa[1] == pytest.approx(6.3, abs=0.05)
    assert kappa[2] == pytest.approx(4.6, abs=0.05)
    assert kappa[4] == pytest.approx(4.53, abs=0.01)


def test_eps_bp_approaches_eps_from_above(published):
    gap = published.eps_bp[1:] - 0.5
    assert np.all(gap > 0) and np.all(np.diff(gap) < 0)
    assert gap[-1] < 1e-4


def test_small_budget_hits_the_bracket_edge(published):
    assert published.at_edge.tolist() == [True, False, False, False, False]
    assert published.ratio[0] == pytest.approx(0.6)


def test_released_code_variant_reproduces_authors_output():
    # Authors' notebook (notes §1.4): 0.41 (5e4), 0.38 (4e5), 0.39 (3e6), 0.44 (2e9), 0.46 (1e11), 0.47 (1e20).
    C = np.array([5e4, 4e5, 3e6, 2e9, 1e11, 1e20])
    s = compute_optimal(C, NVParams(alpha_variant="released-code"))
    np.testing.assert_allclose(s.ratio, [0.41, 0.38, 0.39, 0.44, 0.46, 0.47], atol=0.0065)


def test_chinchilla_anchor():
    a = predicted_allocation(5.73e23)
    assert a.N_star[0] == pytest.approx(7e10, rel=0.05)
    assert a.D_star[0] == pytest.approx(1.3e12, rel=0.05)
    assert a.tokens_per_param[0] == pytest.approx(18.5, abs=0.5)
    assert a.C_flops[0] == pytest.approx(5.73e23)
    assert 6 * a.N_star[0] * a.D_star[0] == pytest.approx(5.73e23, rel=1e-12)


def test_square_root_scaling_exponents():
    """README: N* and D* scale as C^0.506 and C^0.494 (the figures' sweep, C = 3e4..3e18 model
    units); nearer 0.5 at larger budgets (C = 1e8..1e20: 0.5019)."""
    from lmscale.theory.figures import default_sweep

    a_n, a_d = default_sweep(NVParams()).exponents()
    assert a_n == pytest.approx(0.506, abs=5e-4) and a_d == pytest.approx(0.494, abs=5e-4)
    s = compute_optimal(np.logspace(8, 20, 13))
    a_n, a_d = s.exponents()
    assert a_n == pytest.approx(0.5019, abs=2e-4) and a_d == pytest.approx(0.4981, abs=2e-4)
    assert a_n + a_d == pytest.approx(1.0, abs=1e-9)  # N* D* = C_FLOPs / 6 exactly


def test_optimum_is_a_maximum(published):
    for i in (1, 2, 4):
        C, R = published.C[i], published.R_star[i]
        d0 = published.delta[i]
        for f in (0.999, 1.001):
            w = concepts_learned(R * f, C / (R * f))
            # R_learnt(R') - R_learnt(R*) = (R' - R*) - (R' delta' - R* delta*), without cancellation.
            assert (R * f - R) - (R * f * w.delta - R * d0) < 0


def test_binomial_and_poisson_agree_at_1e20():
    b = compute_optimal([1e20])
    p = compute_optimal([1e20], NVParams(limit="poisson"))
    assert b.ratio[0] == pytest.approx(p.ratio[0], rel=1e-6)


def test_fit_tokens_per_text_inverts_predicted_allocation():
    ratio = predicted_allocation(5.73e23).tokens_per_param[0]
    assert fit_tokens_per_text(ratio, 5.73e23) == pytest.approx(8e5, rel=1e-5)
    tau = fit_tokens_per_text(20.0, 5.73e23)
    again = predicted_allocation(5.73e23, NVParams(tokens_per_text=tau))
    assert again.tokens_per_param[0] == pytest.approx(20.0, rel=1e-6)


def test_columns_and_errors(published):
    cols = published.columns()
    assert set(cols) >= {"C_flops", "N_star_parameters", "D_star_tokens", "tokens_per_parameter"}
    assert all(len(v) == len(BUDGETS) for v in cols.values())
    with pytest.raises(LmscaleError, match="positive"):
        compute_optimal([1e6, -1.0])
    with pytest.raises(LmscaleError, match="too small"):
        compute_optimal(100.0)
    with pytest.raises(LmscaleError, match="bracket"):
        compute_optimal(1e6, bracket=(0.6, 0.2))
    with pytest.raises(LmscaleError, match="tokens_per_param"):
        fit_tokens_per_text(-3.0, 1e22)
