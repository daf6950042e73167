"""Functional forms: analytic gradients, parametrisation round trips, forward/loss agreement."""

import numpy as np
import pytest

from lmscale.laws.forms import ChinchillaForm, DataConstrainedForm, KaplanForm, KaplanJointForm
from lmscale.laws.objective import HuberLogObjective, huber

rng = np.random.default_rng(0)
N = np.geomspace(1e7, 3e9, 12)
D = np.geomspace(3e8, 3e11, 12)[::-1].copy()
U = np.full(12, 3e10)  # some points repeat data (D > U)

CASES = [
    (ChinchillaForm(), {"N": N, "D": D}, np.array([[6.0, 7.0, 0.5, 0.34, 0.28], [5.0, 8.0, 0.6, 0.3, 0.4]])),
    (KaplanForm("N", True), {"N": N}, np.array([[2.0, 0.08, 0.3], [3.0, 0.1, 0.5]])),
    (KaplanForm("C", False), {"C": 6 * N * D}, np.array([[4.0, 0.05], [3.0, 0.04]])),
    (KaplanJointForm(), {"N": N, "D": D}, np.array([[25.0, 30.0, 0.74, 0.1], [20.0, 25.0, 1.0, 0.2]])),
    (DataConstrainedForm(), {"N": N, "D": D, "U": U}, np.array([[6.0, 7.0, 0.5, 0.34, 0.28, 2.7]])),
    (DataConstrainedForm(True), {"N": N, "D": D, "U": U}, np.array([[6.0, 7.0, 0.5, 0.34, 0.28, 2.7, 1.7]])),
]


@pytest.mark.parametrize("form, cols, theta", CASES, ids=lambda c: getattr(c, "name", ""))
def test_gradient_matches_finite_differences(form, cols, theta):
    X = form.features(**cols)
    loss = form.loss(theta[0], **cols) * np.exp(rng.normal(0, 0.01, 12))  # residuals on both Huber branches
    obj = HuberLogObjective(form, X, loss, delta=1e-3)
    f, g = obj(theta)
    for j in range(theta.shape[1]):
        h = 1e-6
        tp, tm = theta.copy(), theta.copy()
        tp[:, j] += h
        tm[:, j] -= h
        fd = (obj(tp)[0] - obj(tm)[0]) / (2 * h)
        np.testing.assert_allclose(g[:, j], fd, rtol=2e-4, atol=1e-9)


@pytest.mark.parametrize("form, cols, theta", CASES, ids=lambda c: getattr(c, "name", ""))
def test_forward_agrees_with_loss_and_params_round_trip(form, cols, theta):
    X = form.features(**cols)
    np.testing.assert_allclose(np.exp(form.forward(theta, X)[0]), form.loss(theta[:, None, :], **cols), rtol=1e-12)
    for t in theta:
        np.testing.assert_allclose(form.theta_from({k: float(v) for k, v in form.params(t).items()}), t, rtol=1e-10)


def test_chinchilla_form_values():
    p = {"A": 406.4, "B": 410.7, "E": 1.69, "alpha": 0.34, "beta": 0.28}
    f = ChinchillaForm()
    L = f.loss(f.theta_from(p), N=7e10, D=1.4e12)
    assert L == pytest.approx(1.69 + 406.4 / 7e10 ** 0.34 + 410.7 / 1.4e12 ** 0.28)


def test_kaplan_published_values():
    # L(N) = (N_c/N)^alpha_N with Kaplan's alpha_N = 0.076, N_c = 8.8e13 non-embedding params.
    f = KaplanForm("N", irreducible=False)
    th = f.theta_from({"alpha_N": 0.076, "N_c": 8.8e13})
    assert f.loss(th, N=1e9) == pytest.approx((8.8e13 / 1e9) ** 0.076)
    j = KaplanJointForm()
    th = j.theta_from({"alpha_N": 0.076, "alpha_D": 0.103, "N_c": 6.4e13, "D_c": 1.8e13})
    expect = ((6.4e13 / 1e9) ** (0.076 / 0.103) + 1.8e13 / 1e10) ** 0.103
    assert j.loss(th, N=1e9, D=1e10) == pytest.approx(expect)


def test_data_constrained_effective_data():
    f = DataConstrainedForm()
    p = {"A": 400.0, "B": 1500.0, "E": 1.8, "alpha": 0.33, "beta": 0.3, "R_D_star": 15.4}
    th = f.theta_from(p)
    chin = ChinchillaForm().theta_from({k: p[k] for k in ("A", "B", "E", "alpha", "beta")})
    # No repetition (D <= U): identical to Chinchilla.
    assert f.loss(th, N=1e9, D=1e10, U=1e11) == pytest.approx(ChinchillaForm().loss(chin, N=1e9, D=1e10))
    # 4 epochs (R_D = 3 repeats): D' = U + U R* (1 - exp(-3/R*)) < D, so the loss is higher than with fresh data.
    Dp = 1e10 + 1e10 * 15.4 * (1 - np.exp(-3 / 15.4))
    assert f.loss(th, N=1e9, D=4e10, U=1e10) == pytest.approx(ChinchillaForm().loss(chin, N=1e9, D=Dp))
    assert f.loss(th, N=1e9, D=4e10, U=1e10) > ChinchillaForm().loss(chin, N=1e9, D=4e10)


def test_huber():
    r = np.array([-0.01, -1e-3, 0.0, 5e-4, 0.02])
    d = 1e-3
    expect = np.where(np.abs(r) <= d, 0.5 * r * r, d * (np.abs(r) - 0.5 * d))
    np.testing.assert_allclose(huber(r, d), expect)


def _huber_by_hand(r, delta):
    return sum(0.5 * x * x if abs(x) <= delta else delta * (abs(x) - 0.5 * delta) for x in r)


def test_objective_is_the_sum_of_huber_terms_not_their_mean():
    """Four points, residuals on both branches of Huber(1e-3): the objective is their sum (weighted
    by how often each point was drawn), the gradient the sum's; `reduction='mean'` divides both by n
    (or by the resample's total weight)."""
    form = ChinchillaForm()
    N, D = np.array([1e7, 1e8, 1e9, 1e10]), np.array([1e9, 3e9, 1e11, 1e12])
    p = {"A": 400.0, "B": 1500.0, "E": 1.8, "alpha": 0.33, "beta": 0.3}
    theta = form.theta_from(p)
    true = form.loss(theta, N=N, D=D)
    loss = true * np.exp([5e-4, -2e-3, 4e-3, -1e-4])  # |r| below and above delta
    r = np.log(true) - np.log(loss)
    X = form.features(N=N, D=D)
    f, g = HuberLogObjective(form, X, loss, delta=1e-3).single(theta)
    assert f == pytest.approx(_huber_by_hand(r, 1e-3), rel=1e-12)
    fm, gm = HuberLogObjective(form, X, loss, delta=1e-3, reduction="mean").single(theta)
    assert fm == pytest.approx(f / 4, rel=1e-12)
    np.testing.assert_allclose(gm, g / 4, rtol=1e-12)
    W = np.array([[2.0, 0.0, 1.0, 1.0]])
    fw, _ = HuberLogObjective(form, X, loss, delta=1e-3, weights=W).single(theta, row=0)
    assert fw == pytest.approx(2 * _huber_by_hand(r[:1], 1e-3) + _huber_by_hand(r[2:], 1e-3), rel=1e-12)
    fwm, _ = HuberLogObjective(form, X, loss, delta=1e-3, weights=W, reduction="mean").single(theta, row=0)
    assert fwm == pytest.approx(fw / 4, rel=1e-12)
