"""Profiling the irreducible loss E: the fixed-E form, profile_E and the identification rule."""

import dataclasses
import json

import numpy as np
import pytest

from lmscale.errors import LmscaleError
from lmscale.laws.data import ScalingData
from lmscale.laws.fit import fit_multistart
from lmscale.laws.forms import ChinchillaFixedEForm, ChinchillaForm
from lmscale.laws.objective import HuberLogObjective
from lmscale.laws.profile import default_E_grid, identification, identified, lr_scale, profile_E

from .synth import TRUE_CHINCHILLA, chinchilla_grid, chinchilla_loss, objective_and_checked_gradient


def _fit(form, data):
    X = form.features(N=data.N, D=data.D)
    obj = HuberLogObjective(form, X, data.loss)
    return fit_multistart(obj, form.start_grid(X, obj.logL)), obj


@pytest.fixture(scope="module")
def identifying():
    """8 sizes x 6 token counts, N 1e7-3e9, D 2e8-2e11, 0.1% noise: the smallest loss 2.71 vs E = 1.8."""
    data = chinchilla_grid(seed=3)
    return data, profile_E(data, compute=[1e21, 1e23])


@pytest.fixture(scope="module")
def data_limited():
    """Small models on few tokens (N 1e6-4e6, D 5e6-2e7, 0.3% noise): losses 14-30 nats... far above E = 1.8."""
    rng = np.random.default_rng(0)
    N = np.repeat(np.geomspace(1e6, 4e6, 4), 4)
    D = np.tile(np.geomspace(5e6, 2e7, 4), 4)
    L = chinchilla_loss(TRUE_CHINCHILLA, N, D) * np.exp(rng.normal(0, 3e-3, len(N)))
    data = ScalingData.from_arrays(N=N, D=D, loss=L)
    return data, profile_E(data, default_E_grid(data, n=13))


def test_fixed_E_form_gradient_matches_finite_differences():
    form = ChinchillaFixedEForm(1.8)
    th = np.array([[6.0, 7.3, 0.33, 0.3], [5.5, 7.0, 0.3, 0.28]])
    objective_and_checked_gradient(form, th)
    assert form.params(th[0])["E"] == pytest.approx(1.8)
    np.testing.assert_allclose(form.theta_from(form.params(th[0])), th[0])


def test_fixed_E_at_the_true_E_recovers_the_law_and_the_free_fit():
    data = chinchilla_grid(noise=0.0)  # exact losses: the free fit and the fixed-E fit both land on the truth
    free, _ = _fit(ChinchillaForm(), data)
    fixed, _ = _fit(ChinchillaFixedEForm(TRUE_CHINCHILLA["E"]), data)
    pf = ChinchillaForm().params(free.theta)
    px = ChinchillaFixedEForm(TRUE_CHINCHILLA["E"]).params(fixed.theta)
    for k in ("A", "B", "alpha", "beta"):
        assert px[k] == pytest.approx(TRUE_CHINCHILLA[k], rel=1e-4), k
        assert px[k] == pytest.approx(pf[k], rel=1e-4), k


def test_fixed_E_at_the_free_E_reproduces_the_free_fit_on_noisy_data():
    data = chinchilla_grid(seed=1)
    free, _ = _fit(ChinchillaForm(), data)
    pf = ChinchillaForm().params(free.theta)
    fixed, _ = _fit(ChinchillaFixedEForm(float(pf["E"])), data)
    px = ChinchillaFixedEForm(float(pf["E"])).params(fixed.theta)
    for k in ("A", "B", "alpha", "beta"):
        assert px[k] == pytest.approx(pf[k], rel=1e-4), k
    assert fixed.objective == pytest.approx(free.objective, rel=1e-6)


def test_identifying_design_minimum_at_true_E(identifying):
    data, res = identifying
    ident = identification(res)
    # Tolerance: 0.03 nats/token, 5 standard deviations of the free fit's E on this design (0.006
    # over 20 noise seeds) and a quarter of the default grid's spacing (0.11).
    assert abs(ident.E_hat - TRUE_CHINCHILLA["E"]) < 0.03, ident.message
    assert abs(res.E[np.argmin(res.objective)] - TRUE_CHINCHILLA["E"]) <= res.E[1] - res.E[0]  # grid minimum too
    assert identified(res) and ident.interior_minimum and ident.lower_bounded and ident.upper_bounded
    lo, hi = ident.interval
    assert lo < TRUE_CHINCHILLA["E"] < hi and hi - lo < 0.1, ident.interval
    assert "E is identified" in res.summary()


def test_identifying_design_records_exponent_and_allocation(identifying):
    data, res = identifying
    i = int(np.argmin(np.abs(res.E - TRUE_CHINCHILLA["E"])))
    p = {k: v[i] for k, v in res.params.items()}
    assert res.a[i] == pytest.approx(p["beta"] / (p["alpha"] + p["beta"]))
    assert res.tokens_per_param.shape == (len(res.E), 2)
    from lmscale.laws.frontier import chinchilla_allocation

    alloc = chinchilla_allocation(p, np.array([1e21, 1e23]))
    np.testing.assert_allclose(res.tokens_per_param[i], alloc["tokens_per_param"], rtol=1e-12)
    np.testing.assert_allclose(6 * res.N_opt[i] * res.D_opt[i], [1e21, 1e23], rtol=1e-9)
    # E is a real confounder of the allocation: a and tokens/param move with E along the profile.
    assert np.ptp(res.a) > 0.1
    d = res.to_dict()
    json.dumps(d)
    assert d["identification"]["identified"] is True and len(d["rows"]) == len(res.E)
    assert d["rows"][i]["at_compute"][1]["C"] == 1e23


def test_data_limited_design_is_not_identified(data_limited):
    data, res = data_limited
    assert data.loss.min() > 7 * TRUE_CHINCHILLA["E"]
    ident = identification(res)
    assert not identified(res) and not ident
    assert not ident.lower_bounded  # the profile is flat down to E ~ 0: any small E fits as well
    assert res.free["params"]["E"] < res.E[0]  # the free fit runs to the bound, like the demo's E = 6.6e-36
    text = res.summary()
    assert "E is NOT identified" in text and "E at its bound: not an estimate" in text


def _rows(res, keep):
    return dataclasses.replace(res, E=res.E[keep], objective=res.objective[keep], theta=res.theta[keep],
                               params={k: v[keep] for k, v in res.params.items()}, converged=res.converged[keep],
                               a=res.a[keep], N_opt=res.N_opt[keep], D_opt=res.D_opt[keep],
                               tokens_per_param=res.tokens_per_param[keep])


def test_identification_rule_needs_a_bounded_interval_and_an_interior_minimum(identifying):
    _, res = identifying
    assert identified(res)
    # A residual scale 1e4 times larger (kappa 1e-4 times): the profile is as flat as the
    # threshold, the interval reaches both ends of the range, E is not identified.
    flat = identification(dataclasses.replace(res, kappa=res.kappa * 1e-4))
    assert not flat and not flat.lower_bounded and not flat.upper_bounded
    # Only the grid values below the truth: the minimum sits at the top of the range.
    below = identification(_rows(res, res.E < 1.6))
    assert not below and not below.interior_minimum and "top of the range" in below.message
    # Fewer than 3 values: not judged.
    assert not identified(_rows(res, np.arange(2)))


def test_lr_scale_limits():
    rng = np.random.default_rng(0)
    r = rng.normal(0, 1e-4, 2000)  # every residual inside delta: the Gaussian LR, 1/sigma^2
    k, method = lr_scale(r, 1e-3, 5)
    assert k == pytest.approx(1e8, rel=0.1) and "empirical" in method
    # Residual scale = delta: E[psi'] = P(|Z| < 1) = 0.6827, E[psi^2] = 0.5161 delta^2, kappa = 1.3227/delta^2
    # (the Laplace/Gaussian mixture the Huber LR interpolates; 1/sigma^2 = 1/delta^2 would be 32% too small).
    r = rng.normal(0, 1e-3, 20000)
    k, method = lr_scale(r, 1e-3, 5)
    assert k == pytest.approx(1.3227e6, rel=0.03) and "empirical" in method
    # Few residuals inside delta: the Gaussian-model estimate, with the robust scale 1.4826 MAD.
    r = rng.normal(0, 1e-1, 200)
    k2, method2 = lr_scale(r, 1e-3, 5)
    assert "Gaussian model" in method2 and (np.abs(r) < 1e-3).sum() < 5
    sigma = 0.1
    c = 1e-3 / sigma
    from scipy.stats import norm

    expected = (2 * norm.cdf(c) - 1) / (sigma ** 2 * (2 * norm.cdf(c) - 1 - 2 * c * norm.pdf(c) + 2 * c * c * norm.sf(c)))
    assert k2 == pytest.approx(expected, rel=0.25)


@pytest.mark.parametrize("E_values, needle", [
    ([1.0, 3.0], "3.0 >= the smallest observed loss"),
    ([], "E_values is empty"),
    ([1.0, float("nan")], "non-finite"),
    ([1.0, float("inf")], "non-finite"),
    ([0.0, 1.0], "expected positive"),
    (["x"], "expected numbers"),
])
def test_bad_E_grid_is_one_line_error(E_values, needle):
    data = chinchilla_grid()
    with pytest.raises(LmscaleError) as err:
        profile_E(data, E_values)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg


@pytest.mark.parametrize("kw, needle", [
    ({"delta": 0.0}, "delta=0.0"),
    ({"compute": [-1.0]}, "compute=[-1.0]"),
    ({"compute": []}, "compute=[]"),
])
def test_bad_options_are_one_line_errors(kw, needle):
    with pytest.raises(LmscaleError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        profile_E(chinchilla_grid(), [1.0, 1.5], **kw)


def test_bad_data_is_one_line_error():
    with pytest.raises(LmscaleError, match="expects a ScalingData"):
        profile_E({"N": [1]}, [1.0])
    small = chinchilla_grid().subset(np.arange(4))
    with pytest.raises(LmscaleError, match="needs at least 6"):
        profile_E(small, [1.0])
    with pytest.raises(LmscaleError, match="E=0.0"):
        ChinchillaFixedEForm(0.0)


def test_a_fitted_free_law_is_reused_not_refitted(monkeypatch):
    from lmscale.laws import profile as pmod
    from lmscale.laws.estimators import ChinchillaLaw

    data = chinchilla_grid(seed=3)
    grid = default_E_grid(data, n=7)
    law = ChinchillaLaw().fit(data)
    own = profile_E(data, grid)
    calls = []
    real = pmod.fit_multistart
    monkeypatch.setattr(pmod, "fit_multistart", lambda obj, st, **kw: calls.append(len(st)) or real(obj, st, **kw))
    reused = profile_E(data, grid, free=law)
    assert len(calls) == len(grid)  # one fit per fixed E, none for the free law
    assert reused.free["params"]["E"] == pytest.approx(law.E_, rel=1e-12)
    assert reused.free["objective"] == pytest.approx(own.free["objective"], rel=1e-9)
    np.testing.assert_allclose(reused.objective, own.objective, rtol=1e-9)
    mine, theirs = identification(reused).to_dict(), identification(own).to_dict()
    assert mine["identified"] is theirs["identified"] is True
    assert mine["interval"] == pytest.approx(theirs["interval"], rel=1e-6)
    with pytest.raises(LmscaleError, match=r"free=.*expected a ChinchillaLaw fitted to these"):
        profile_E(data, grid, free=ChinchillaLaw(delta=1e-2).fit(data))
