"""Scikit-learn conformance of every estimator (issue 12): __init__ stores, fit(data) returns self and sets
only `_` attributes in one multi-start fit, predict(N, D) is a loss everywhere, optimal_allocation(C) is
the same call on Approaches 1, 2 and 3."""

import numpy as np
import pytest

from lmscale.errors import LmscaleError
from lmscale.laws import (ChinchillaLaw, DataConstrainedLaw, EnvelopeAllocation, IsoFLOPAllocation, KaplanJointLaw,
                          KaplanLaw, ScalingData)
from lmscale.laws.forms import DataConstrainedForm

from .synth import TRUE_CHINCHILLA, chinchilla_grid, isoflop_set, training_curves

ALLOCATION_KEYS = {"C", "N_opt", "D_opt", "tokens_per_param", "loss_opt"}


def _dc_data():
    rng = np.random.default_rng(0)
    N = np.repeat(np.geomspace(1e7, 3e9, 8), 6)
    D = np.tile(np.geomspace(2e8, 2e11, 6), 8)
    U = np.full(len(N), 5e9)
    form = DataConstrainedForm()
    L = form.loss(form.theta_from(dict(TRUE_CHINCHILLA, R_D_star=15.4)), N=N, D=D, U=U) * np.exp(rng.normal(0, 1e-3, len(N)))
    return ScalingData.from_arrays(N=N, D=D, loss=L, U=U)


GRID = chinchilla_grid(noise=1e-3, seed=0)
CASES = {
    "chinchilla": (lambda: ChinchillaLaw(), lambda: GRID),
    "kaplan-n": (lambda: KaplanLaw("N"), lambda: GRID.subset(GRID.D == GRID.D.max())),
    "kaplan-d": (lambda: KaplanLaw("D", irreducible=False), lambda: GRID.subset(GRID.N == GRID.N.max())),
    "kaplan-c": (lambda: KaplanLaw("C"), lambda: GRID),
    "kaplan-joint": (lambda: KaplanJointLaw(), lambda: GRID),
    "data-constrained": (lambda: DataConstrainedLaw(), _dc_data),
    "approach-1": (lambda: EnvelopeAllocation(), lambda: training_curves(n_sizes=12, n_evals=40)[0]),
    "approach-2": (lambda: IsoFLOPAllocation(), lambda: isoflop_set(noise=1e-3)[0]),
}


@pytest.fixture(scope="module")
def fitted():
    return {name: make().fit(data()) for name, (make, data) in CASES.items()}


# -- __init__ stores only ------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CASES))
def test_init_stores_its_parameters_and_get_params_round_trips(name):
    est = CASES[name][0]()
    params = est.get_params()
    assert set(vars(est)) == set(params)  # nothing but the parameters: no form, no fitted state
    again = type(est)(**params)
    assert again.get_params() == params
    clone = est.clone()
    assert clone is not est and clone.get_params() == params and set(vars(clone)) == set(params)


@pytest.mark.parametrize("make, bad, needle", [
    (lambda: ChinchillaLaw(reduction="median"), "chinchilla", "reduction='median'; expected 'sum' or 'mean'"),
    (lambda: ChinchillaLaw(delta=-1.0), "chinchilla", "delta=-1.0; expected a positive Huber threshold"),
    (lambda: ChinchillaLaw(solver="adam"), "chinchilla", "solver='adam'; expected 'batched' or 'scipy'"),
    (lambda: ChinchillaLaw(max_iter=0), "chinchilla", "max_iter=0; expected a positive integer"),
    (lambda: KaplanLaw("X"), "chinchilla", "variable='X'; expected 'N', 'D' or 'C'"),
    (lambda: KaplanLaw("D", nonembedding=True), "chinchilla", "nonembedding=True applies to variable='N'"),
    (lambda: DataConstrainedLaw(unique_tokens=-5), "data-constrained", "unique_tokens=-5; expected None"),
    (lambda: IsoFLOPAllocation(min_points=2), "approach-2", "min_points=2; a parabola needs at least 3"),
    (lambda: IsoFLOPAllocation(budget_rtol=0.0), "approach-2", "budget_rtol=0.0; expected a relative tolerance"),
    (lambda: IsoFLOPAllocation(method="cubic"), "approach-2", "method='cubic'; expected one of 'local', 'akima'"),
    (lambda: IsoFLOPAllocation(window=-1.0), "approach-2", "window=-1.0; expected a positive half-width in ln N"),
    (lambda: EnvelopeAllocation(n_grid=1), "approach-1", "n_grid=1; expected an integer of at least 2"),
    (lambda: EnvelopeAllocation(smooth=-1.0), "approach-1", "smooth=-1.0; expected a Gaussian sigma"),
])
def test_an_invalid_parameter_is_refused_at_fit_not_at_construction(make, bad, needle):
    est = make()  # construction stores the bad value without complaint (scikit-learn's rule)
    before = dict(vars(est))
    with pytest.raises(LmscaleError, match=needle.replace("(", r"\(")) as err:
        est.fit(CASES[bad][1]())
    assert "\n" not in str(err.value)
    assert vars(est) == before  # refused before any fitted attribute was set


def test_clone_and_set_params_refuse_unknown_names():
    with pytest.raises(LmscaleError, match="unknown parameter 'holdout' for ChinchillaLaw"):
        ChinchillaLaw().clone(holdout="none")
    with pytest.raises(LmscaleError, match="unknown parameter 'target_compute'"):
        ChinchillaLaw().set_params(target_compute=1e21)
    with pytest.raises(TypeError):
        ChinchillaLaw(holdout="largest")  # gone from the estimators: the check is a free function
    law = ChinchillaLaw().set_params(delta=2e-3)
    assert law.get_params()["delta"] == 2e-3


# -- fit ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CASES))
def test_fit_returns_self_and_sets_only_underscore_attributes(name):
    make, data = CASES[name]
    est = make()
    before = {k: v for k, v in vars(est).items()}
    assert est.fit(data()) is est
    after = vars(est)
    new = set(after) - set(before)
    assert new and all(k.endswith("_") and not k.startswith("_") for k in new), sorted(new)
    for k, v in before.items():  # the parameters are untouched
        assert after[k] is v, k
    assert not {"bootstrap_", "extrapolation_", "extrapolation_note_", "target_compute_"} & set(after)


def test_fit_sets_the_documented_attributes(fitted):
    law = fitted["chinchilla"]
    for k in ("form_", "theta_", "params_", "A_", "B_", "E_", "alpha_", "beta_", "a_", "b_", "G_", "objective_",
              "converged_", "n_starts_", "data_"):
        assert hasattr(law, k), k
    iso = fitted["approach-2"]
    for k in ("a_", "b_", "N_coef_", "D_coef_", "a_se_", "b_se_", "warnings_", "budgets_", "data_"):
        assert hasattr(iso, k), k


@pytest.mark.parametrize("name", ["chinchilla", "kaplan-n", "data-constrained"])
def test_fit_runs_exactly_one_multistart(name, monkeypatch):
    import lmscale.laws.estimators as est_mod

    calls = []
    real = est_mod.fit_multistart

    def counting(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(est_mod, "fit_multistart", counting)
    make, data = CASES[name]
    make().fit(data())
    assert len(calls) == 1  # no hidden second fit (the extrapolation check is a free function)


# -- predict ---------------------------------------------------------------------------------------
def _chinchilla(p, N, D):
    return p["E"] + p["A"] / np.asarray(N, float) ** p["alpha"] + p["B"] / np.asarray(D, float) ** p["beta"]


def test_predict_N_D_on_every_law(fitted):
    N = np.geomspace(1e8, 1e10, 5)
    D = np.geomspace(1e9, 1e12, 5)
    for name in ("chinchilla", "kaplan-n", "kaplan-d", "kaplan-c", "kaplan-joint", "data-constrained"):
        law = fitted[name]
        y = law.predict(N, D)
        assert isinstance(y, np.ndarray) and y.shape == (5,) and np.isfinite(y).all(), name
        assert np.shape(law.predict(1e9, 1e11)) == (), name
        assert law.predict(N, 1e11).shape == (5,), name  # broadcasts
        assert law.predict(N[2], D[2]) == pytest.approx(y[2], rel=1e-12), name
    p = fitted["chinchilla"].params_
    np.testing.assert_allclose(fitted["chinchilla"].predict(N, D), _chinchilla(p, N, D), rtol=1e-12)
    # The single-variable Kaplan laws use the variable they were fitted on: N, D, or C = 6ND.
    kn, kd, kc = fitted["kaplan-n"], fitted["kaplan-d"], fitted["kaplan-c"]
    np.testing.assert_allclose(kn.predict(N, D), (kn.N_c_ / N) ** kn.alpha_N_ + kn.E_, rtol=1e-12)
    np.testing.assert_allclose(kn.predict(N, D), kn.predict(N), rtol=0)
    np.testing.assert_allclose(kd.predict(N, D), (kd.D_c_ / D) ** kd.alpha_D_, rtol=1e-12)
    np.testing.assert_allclose(kd.predict(N, D), kd.predict(D=D), rtol=0)
    C = 6 * N * D
    np.testing.assert_allclose(kc.predict(N, D), (kc.C_c_ / C) ** kc.alpha_C_ + kc.E_, rtol=1e-12)
    np.testing.assert_allclose(kc.predict(C=C), kc.predict(N, D), rtol=1e-12)
    with pytest.raises(LmscaleError, match=r"KaplanLaw\(variable='D'\) predicts from D \(tokens\); got N"):
        kd.predict(N)
    # A ScalingData is accepted too.
    law = fitted["chinchilla"]
    np.testing.assert_allclose(law.predict(law.data_), law.predict(law.data_.N, law.data_.D), rtol=0)
    dc = fitted["data-constrained"]
    U = np.full(5, 5e9)
    assert dc.predict(N, D, U=U).shape == (5,) and (dc.predict(N, D * 40, U=U) > dc.predict(N, D * 40)).all()
    with pytest.raises(LmscaleError, match="needs N \\(parameters\\) and D \\(tokens\\); got no D"):
        law.predict(N)


def test_approaches_1_and_2_have_no_predict(fitted):
    assert not hasattr(fitted["approach-1"], "predict") and not hasattr(fitted["approach-2"], "predict")


# -- optimal_allocation ------------------------------------------------------------------------------
def test_optimal_allocation_is_the_same_call_on_approaches_1_2_3(fitted):
    ests = {k: fitted[k] for k in ("approach-1", "approach-2", "chinchilla", "kaplan-joint", "data-constrained")}
    for name, est in ests.items():
        one = est.optimal_allocation(1e22)
        assert set(one) == ALLOCATION_KEYS, name
        assert all(isinstance(v, float) for v in one.values()), name
        assert one["C"] == 1e22 and one["tokens_per_param"] == pytest.approx(one["D_opt"] / one["N_opt"], rel=1e-12)
        many = est.optimal_allocation([1e20, 1e21, 1e22])
        assert set(many) == ALLOCATION_KEYS, name
        assert all(isinstance(v, np.ndarray) and v.shape == (3,) for v in many.values()), name
        assert many["N_opt"][2] == pytest.approx(one["N_opt"], rel=1e-9), name
        with pytest.raises(LmscaleError, match="expected positive compute in FLOPs"):
            est.optimal_allocation(-1.0)
    for name in ("approach-1", "approach-2"):  # power laws in C: no loss estimate
        est = ests[name]
        a = est.optimal_allocation(1e22)
        assert np.isnan(a["loss_opt"])
        assert a["N_opt"] == pytest.approx(est.N_coef_ * 1e22 ** est.a_, rel=1e-12)
        assert a["D_opt"] == pytest.approx(est.D_coef_ * 1e22 ** est.b_, rel=1e-12)
    law = ests["chinchilla"]
    a = law.optimal_allocation(1e22)
    assert 6 * a["N_opt"] * a["D_opt"] == pytest.approx(1e22, rel=1e-9)
    assert a["loss_opt"] == pytest.approx(float(law.predict(a["N_opt"], a["D_opt"])), rel=1e-12)
    with pytest.raises(LmscaleError, match="no compute-optimal allocation"):
        fitted["kaplan-n"].optimal_allocation(1e22)
