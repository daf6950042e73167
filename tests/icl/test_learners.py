"""Reference learners against closed forms (lmscale.icl.learners)."""

from __future__ import annotations

import numpy as np
import pytest

from lmscale.errors import LmscaleError
from lmscale.icl.learners import LEARNERS, best_gd_lr, make_learner
from lmscale.icl.tasks import TaskConfig


def linear_prompts(b, k, d, noise=0.0, tau=1.0, seed=0):
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((b, k, d))
    w = tau * rng.standard_normal((b, d))
    ys = np.einsum("bkd,bd->bk", xs, w) + noise * rng.standard_normal((b, k))
    return xs, ys, w


@pytest.mark.parametrize("k", [3, 9])  # k < d (min-norm) and k >= d
def test_ridge_at_zero_lambda_is_min_norm_least_squares(k):
    xs, ys, _ = linear_prompts(20, k, 6, noise=0.3)
    pinv = np.einsum("bdk,bk->bd", np.linalg.pinv(xs), ys)
    ls = make_learner("least_squares").weights(xs, ys)
    np.testing.assert_allclose(ls, pinv, atol=1e-9)
    np.testing.assert_allclose(make_learner("ridge", lam=1e-9).weights(xs, ys), pinv, atol=1e-5)
    np.testing.assert_allclose(make_learner("ridge", lam=0).weights(xs, ys), pinv, atol=1e-9)
    # Every prefix too: pairs 0..i-1 only.
    pw = make_learner("least_squares").prefix_weights(xs, ys)
    for i in range(k + 1):
        want = np.einsum("bdk,bk->bd", np.linalg.pinv(xs[:, :i]), ys[:, :i]) if i else np.zeros((20, 6))
        np.testing.assert_allclose(pw[:, i], want, atol=1e-8)


def test_least_squares_min_norm_with_degenerate_inputs():
    xs, ys, _ = linear_prompts(10, 8, 5)
    xs[..., 3:] = 0  # curriculum-zeroed coordinates
    xs[:, 4] = xs[:, 1]  # a repeated point
    ys[:, 4] = ys[:, 1]
    pw = make_learner("least_squares").prefix_weights(xs, ys)
    for i in range(1, 9):
        np.testing.assert_allclose(pw[:, i], np.einsum("bdk,bk->bd", np.linalg.pinv(xs[:, :i]), ys[:, :i]), atol=1e-8)


def test_least_squares_curve_at_d5():
    # E err(i)/d = (d - i)/d for the min-norm interpolant of Gaussian data: 1, .8, .6, .4, .2, 0, ...
    xs, ys, _ = linear_prompts(4000, 8, 5)
    pred = make_learner("least_squares").predict_prefixes(xs, ys)
    err = ((pred - ys) ** 2).mean(0) / 5
    np.testing.assert_allclose(err[:5], [1, 0.8, 0.6, 0.4, 0.2], atol=0.05)
    assert np.all(err[5:] < 1e-12)  # exact once k >= d, noiseless


def test_one_gd_step_is_the_linear_attention_construction():
    xs, ys, _ = linear_prompts(7, 6, 4)
    eta = 0.7
    pred = make_learner("gd", steps=1, lr=eta).predict_prefixes(xs, ys)
    for i in range(1, 6):
        want = eta / i * np.einsum("bj,bjd,bd->b", ys[:, :i], xs[:, :i], xs[:, i])
        np.testing.assert_allclose(pred[:, i], want, rtol=1e-12)
    assert np.all(pred[:, 0] == 0)
    ak = make_learner("gd", steps=1, lr=0.05, convention="akyurek").weights(xs, ys)
    np.testing.assert_allclose(ak, 2 * 0.05 * np.einsum("bk,bkd->bd", ys, xs), rtol=1e-12)


def test_many_gd_steps_reach_least_squares():
    xs, ys, _ = linear_prompts(5, 12, 3)
    gd = make_learner("gd", steps=300, lr=0.5).weights(xs, ys)
    np.testing.assert_allclose(gd, make_learner("least_squares").weights(xs, ys), atol=1e-8)


def test_sgd_one_pass_recursion():
    xs, ys, _ = linear_prompts(4, 3, 2)
    lr, lam = 0.1, 0.05
    w = np.zeros((4, 2))
    for i in range(3):
        x = xs[:, i]
        w = w - 2 * lr * (x * (np.einsum("bd,bd->b", x, w) - ys[:, i])[:, None] + lam * w)
    np.testing.assert_allclose(make_learner("sgd", lr=lr, lam=lam).weights(xs, ys), w, rtol=1e-12)


def test_dmmse_one_task_pool_returns_it():
    xs, ys, w = linear_prompts(1, 6, 4)
    xs = np.repeat(xs, 3, 0)
    ys = np.repeat(ys, 3, 0) + np.array([[0.0], [0.1], [-0.2]])  # noisy labels do not matter: one task
    for noise in (0.0, 0.5):
        learner = make_learner("dmmse", pool=w, noise=noise)
        np.testing.assert_allclose(learner.prefix_weights(xs, ys), np.broadcast_to(w, (3, 7, 4)), atol=1e-12)
        np.testing.assert_allclose(learner.predict_prefixes(xs, ys), np.einsum("bkd,d->bk", xs, w[0]), atol=1e-12)


def test_dmmse_pool_mean_at_zero_and_posterior():
    pool = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    xs = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    ys = np.array([[0.5, 1.0]])
    noise = 0.7
    pw = make_learner("dmmse", pool=pool, noise=noise).prefix_weights(xs, ys)
    np.testing.assert_allclose(pw[0, 0], pool.mean(0))
    sse = ((ys[0, :1, None] - xs[0, :1] @ pool.T) ** 2).sum(0)
    post = np.exp(-sse / (2 * noise**2))
    np.testing.assert_allclose(pw[0, 1], (post / post.sum()) @ pool, rtol=1e-12)
    # noiseless limit: the task that fits exactly wins
    xs2 = np.array([[[1.0, 1.0]]])
    hard = make_learner("dmmse", pool=pool, noise=0.0).prefix_weights(xs2, np.array([[2.0]]))
    np.testing.assert_allclose(hard[0, 1], pool[1], atol=1e-12)


def test_dmmse_from_task_config():
    task = TaskConfig(d=3, pool_size=5, noise=0.5)
    learner = make_learner("dmmse", task=task)
    assert learner.pool.shape == (5, 3) and learner.noise == 0.5
    with pytest.raises(LmscaleError, match="pool_size is null"):
        make_learner("dmmse", task=TaskConfig(d=3))


def test_bayes_ridge_wins_on_akyurek_diagonal():
    ratios = [1 / 16, 1 / 9, 1 / 4, 4 / 9]
    settings = [(0.25, 1.0), (0.5, 1.5), (0.5, 1.0), (0.5, 0.75)]  # (sigma, tau), Akyürek Fig. 2
    for (sigma, tau), ratio in zip(settings, ratios):
        assert sigma**2 / tau**2 == pytest.approx(ratio)
        xs, ys, _ = linear_prompts(10_000, 8, 8, noise=sigma, tau=tau, seed=1)
        task = TaskConfig(d=8, noise=sigma, tau=tau)
        mse = {"ols": ((make_learner("least_squares").predict_prefixes(xs, ys) - ys) ** 2).mean()}
        for lam in ratios:
            mse[lam] = ((make_learner("ridge", lam=lam).predict_prefixes(xs, ys) - ys) ** 2).mean()
        bayes = ((make_learner("ridge", lam="bayes", task=task).predict_prefixes(xs, ys) - ys) ** 2).mean()
        assert bayes == mse[ratio] and min(mse, key=mse.get) == ratio, (ratio, mse)


def test_averaging_and_3nn_at_d5_k10():
    # notes §6 (numpy, 20k prompts): averaging .61 and 3-NN .62 at k = 10; both 1.0 at k = 0.
    xs, ys, _ = linear_prompts(20_000, 11, 5)
    avg = ((make_learner("averaging").predict_prefixes(xs, ys) - ys) ** 2).mean(0) / 5
    knn = ((make_learner("knn", k=3).predict_prefixes(xs, ys) - ys) ** 2).mean(0) / 5
    assert avg[10] == pytest.approx(0.61, abs=0.03) and knn[10] == pytest.approx(0.62, abs=0.03)
    assert avg[1] == pytest.approx(6.0, rel=0.1) and knn[1] == pytest.approx(2.0, rel=0.1)
    assert avg[0] == knn[0] == pytest.approx(1.0, abs=0.03)


def test_knn_small_example():
    xs = np.array([[[0.0], [1.0], [3.0], [10.0], [2.0]]])
    ys = np.array([[1.0, 2.0, 4.0, 8.0, 0.0]])
    uni = make_learner("knn", k=3).predict_prefixes(xs, ys)[0]
    np.testing.assert_allclose(uni, [0, 1, 1.5, 7 / 3, 7 / 3])
    wtd = make_learner("knn", k=2, weighting="inverse_square").predict(xs[:, :4], ys[:, :4], np.array([[[2.0], [3.0]]]))[0]
    np.testing.assert_allclose(wtd, [(2 * 1 + 4 * 1) / 2, 4.0])  # equidistant; exact match takes all


def test_lasso_recovers_sparse_w_and_closed_form():
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((30, 30, 10))
    w = np.zeros((30, 10))
    w[:, :2] = rng.standard_normal((30, 2)) + 2 * np.sign(rng.standard_normal((30, 2)))
    ys = np.einsum("bkd,bd->bk", xs, w)
    lasso = make_learner("lasso", alpha=1e-3)
    est = lasso.weights(xs, ys)
    assert np.abs(est - w).max() < 0.02 and np.abs(est[:, 2:]).max() < 0.01
    ls = make_learner("least_squares").predict_prefixes(xs, ys)
    lp = lasso.predict_prefixes(xs, ys)
    assert ((lp - ys) ** 2)[:, 6:10].mean() < 0.2 * ((ls - ys) ** 2)[:, 6:10].mean()  # beats OLS for k < d
    # d = 1: w = S(X^T y, N alpha) / X^T X exactly.
    x1, y1 = rng.standard_normal((50, 7, 1)), rng.standard_normal((50, 7))
    b, g = (x1[..., 0] * y1).sum(1), (x1[..., 0] ** 2).sum(1)
    want = np.sign(b) * np.maximum(np.abs(b) - 7 * 0.3, 0) / g
    np.testing.assert_allclose(make_learner("lasso", alpha=0.3).weights(x1, y1)[:, 0], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, kw", [
    ("zero", {}), ("least_squares", {}), ("ridge", {"lam": 0.5}), ("gd", {"steps": 2, "lr": 0.3}),
    ("sgd", {"lr": 0.05}), ("knn", {"k": 2}), ("averaging", {}), ("lasso", {"alpha": 0.05}),
    ("dmmse", {"pool": np.eye(3), "noise": 0.5}),
])
def test_predict_matches_predict_prefixes(name, kw):
    xs, ys, _ = linear_prompts(6, 5, 3)
    learner = make_learner(name, **kw)
    pref = learner.predict_prefixes(xs, ys)
    for i in range(1, 5):
        np.testing.assert_allclose(learner.predict(xs[:, :i], ys[:, :i], xs[:, i : i + 1])[:, 0], pref[:, i], atol=1e-5)
    q = np.random.default_rng(9).standard_normal((6, 5, 3))
    np.testing.assert_allclose(learner.predict_prefixes(xs, ys, q)[:, 3], learner.predict(xs[:, :3], ys[:, :3], q[:, 3:4])[:, 0], atol=1e-5)
    if learner.linear:
        np.testing.assert_allclose(learner.weights(xs, ys), learner.prefix_weights(xs, ys)[:, -1])


def test_best_gd_lr_is_optimal():
    xs, ys, _ = linear_prompts(3000, 11, 10, seed=2)
    ctx, cy, q, qy = xs[:, :10], ys[:, :10], xs[:, 10:], ys[:, 10:]
    eta = best_gd_lr(ctx, cy, q, qy)
    loss = lambda e: ((make_learner("gd", lr=e).predict(ctx, cy, q) - qy) ** 2).mean()  # noqa: E731
    assert loss(eta) < loss(0.9 * eta) and loss(eta) < loss(1.1 * eta)


def test_learner_errors():
    xs, ys, _ = linear_prompts(2, 3, 2)
    assert set(LEARNERS) >= {"zero", "least_squares", "ridge", "gd", "sgd", "knn", "averaging", "lasso", "dmmse"}
    with pytest.raises(LmscaleError, match="unknown learner 'svm'"):
        make_learner("svm")
    with pytest.raises(LmscaleError, match="bad arguments"):
        make_learner("knn", neighbours=3)
    with pytest.raises(LmscaleError, match="lam=-1"):
        make_learner("ridge", lam=-1)
    with pytest.raises(LmscaleError, match="needs the task"):
        make_learner("ridge", lam="bayes")
    with pytest.raises(LmscaleError, match="query_xs"):
        make_learner("least_squares").predict(xs, ys, np.zeros((2, 1, 3)))
    with pytest.raises(LmscaleError, match="dmmse pool has d=3"):
        make_learner("dmmse", pool=np.eye(3), noise=0.1).predict_prefixes(xs, ys)
    with pytest.raises(LmscaleError, match="not linear"):
        make_learner("knn").weights(xs, ys)


@pytest.mark.parametrize("lam", [0.25, 1.7])
def test_ridge_is_the_closed_form_with_lambda_once(lam):
    """(X^T X + lam I)^{-1} X^T y with sums (Akyürek), for the whole prompt and for every prefix."""
    xs, ys, _ = linear_prompts(7, 5, 3, noise=0.4, seed=2)
    r = make_learner("ridge", lam=lam)
    want = np.stack([np.linalg.solve(x.T @ x + lam * np.eye(3), x.T @ y) for x, y in zip(xs, ys)])
    np.testing.assert_allclose(r.weights(xs, ys), want, rtol=1e-10, atol=1e-12)
    pw = r.prefix_weights(xs, ys)
    for i in range(6):
        x, y = xs[:, :i], ys[:, :i]
        want_i = np.stack([np.linalg.solve(a.T @ a + lam * np.eye(3), a.T @ b) for a, b in zip(x, y)])
        np.testing.assert_allclose(pw[:, i], want_i, rtol=1e-10, atol=1e-12)
    # Bayes: lam = sigma^2 / tau^2 exactly.
    assert make_learner("ridge", lam="bayes", task=TaskConfig(d=3, noise=0.5, tau=2.0)).lam == pytest.approx(0.0625)
