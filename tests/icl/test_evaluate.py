"""Evaluation: error curves of the learners hit their closed forms, the LSA report finds the GD
step exactly for the GD construction, and compare tables the model against each learner."""

import jax
import numpy as np

from lmscale.icl import model as M
from lmscale.icl.config import validate_icl_config
from lmscale.icl.evaluate import compare, error_curves, lsa_report, make_learners
from lmscale.model.icl import gd_construction

LEARNERS = [{"name": "least_squares"}, {"name": "zero"}, {"name": "knn", "args": {"k": 3}, "label": "3-NN"}]


def _cfg(tiny_raw, **kw):
    """The session's tiny model (d = 2, k = 4; its compiled predictions are shared) with other evaluation settings."""
    return validate_icl_config(tiny_raw | {"eval": {"prompts": 64, "bootstrap": 50, "learners": LEARNERS}} | kw)


def test_error_curves_closed_forms(tiny_raw):
    cfg = _cfg(tiny_raw)
    params = M.model_of(cfg).init(jax.random.key(0))
    c = error_curves(params, cfg)
    assert list(c.curves) == ["transformer", "least_squares", "zero", "3-NN"] and c.normalizer == 2.0
    ls = np.asarray(c.curves["least_squares"].mean)
    np.testing.assert_allclose(ls[2:], 0.0, atol=1e-6)  # exact once k >= d (noiseless)
    assert ls[1] > 0.1  # min-norm LS from one example in 2 dims recovers half the variance on average
    np.testing.assert_allclose(np.asarray(c.curves["zero"].mean), np.mean(c.ys**2, 0) / 2.0, rtol=1e-6)
    lo, hi = np.asarray(c.curves["zero"].low), np.asarray(c.curves["zero"].high)
    assert np.all(lo < np.asarray(c.curves["zero"].mean)) and np.all(hi > np.asarray(c.curves["zero"].mean))


def test_ood_queries_are_read_per_position(tiny_raw):
    cfg = _cfg(tiny_raw, eval={"prompts": 64, "bootstrap": 20, "learners": LEARNERS[:1],
                               "task_overrides": {"ood": {"kind": "random_quadrants"}}})
    params = M.model_of(cfg).init(jax.random.key(0))
    c = error_curves(params, cfg)
    np.testing.assert_allclose(np.asarray(c.curves["least_squares"].mean)[2:], 0.0, atol=1e-6)
    assert np.all(np.isfinite(np.asarray(c.curves["transformer"].mean)))


def test_dmmse_of_another_pool_size():
    cfg = validate_icl_config({"task": {"d": 3, "noise": 0.5}, "n_points": 6,
                               "eval": {"learners": [{"name": "dmmse", "args": {"pool_size": 4}}]}})
    (learner,) = make_learners(cfg).values()
    assert learner.pool.shape == (4, 3)


def test_lsa_report_of_the_gd_construction_is_exact():
    cfg = validate_icl_config({"task": {"d": 4, "x_dist": "uniform"}, "n_points": 5, "model": {"kind": "lsa", "depth": 1, "heads": 1}})
    rep = lsa_report(gd_construction(1.0, 4, 4), cfg, n=2000)
    eta = rep["eta_best"]
    rep2 = lsa_report(gd_construction(eta, 4, 4), cfg, n=2000)
    assert abs(rep2["relative_gap"]) < 1e-5 and rep2["model_vs_gd_msd"] < 1e-9
    assert rep["loss_model"] > rep2["loss_model"]  # eta = 1 is not the best step
    assert rep2["loss_ols"] < 1e-6 < rep2["loss_gd_best"] < rep2["loss_zero"]


def test_compare_rows(tiny_raw):
    cfg = _cfg(tiny_raw)
    params = M.model_of(cfg).init(jax.random.key(0))
    # A read-out scaled to ~0 makes the model predict about 0: the zero learner must be its best match.
    params["read_out"] = {k: 1e-4 * v for k, v in params["read_out"].items()}
    res = compare(params, cfg, ilwd_prompts=16)
    labels = [r["learner"] for r in res["rows"]]
    assert labels == ["least_squares", "zero", "3-NN"]
    assert res["best_match"] == "zero"
    zero = res["rows"][1]
    assert len(zero["spd"]) == 4 and len(zero["ilwd"]) == 3 and zero["mspd"] < res["rows"][0]["mspd"]
    assert zero["ilwd_mean"] < 1e-4 < res["rows"][0]["ilwd_mean"]
