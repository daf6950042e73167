"""Function classes, OOD transforms and config errors of lmscale.icl.tasks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lmscale.errors import LmscaleError
from lmscale.icl.tasks import (
    TaskConfig,
    _draw_params,
    evaluate,
    ood_covariance_factor,
    pool_weights,
    sample_batch,
    task_config,
)

KEY = jax.random.key(0)


def step_key(seed, step):
    return jax.random.fold_in(jax.random.key(seed), step)


def test_same_key_same_batch_and_steps_differ():
    cfg = TaskConfig(kind="linear", d=4, noise=0.1)
    a, b = sample_batch(cfg, step_key(3, 7), 8, 5), sample_batch(cfg, step_key(3, 7), 8, 5)
    np.testing.assert_array_equal(np.asarray(a.xs), np.asarray(b.xs))
    np.testing.assert_array_equal(np.asarray(a.ys), np.asarray(b.ys))
    c = sample_batch(cfg, step_key(3, 8), 8, 5)
    assert not np.allclose(np.asarray(a.xs), np.asarray(c.xs))
    assert not np.allclose(np.asarray(a.w), np.asarray(c.w))


@pytest.mark.parametrize("kind", ["linear", "sparse_linear", "relu2nn", "decision_tree"])
def test_shapes_and_dtypes(kind):
    b = sample_batch(TaskConfig(kind=kind, d=6), KEY, 3, 7)
    assert b.xs.shape == (3, 7, 6) and b.ys.shape == (3, 7)
    assert b.xs.dtype == jnp.float32 and b.ys.dtype == jnp.float32
    assert (b.w is not None) == (kind in ("linear", "sparse_linear"))
    assert b.query_xs is None and b.query_ys is None


def test_linear_labels_and_noise():
    clean = sample_batch(TaskConfig(d=5, tau=2.0), KEY, 4000, 6)
    np.testing.assert_allclose(np.asarray(clean.ys), np.einsum("bkd,bd->bk", clean.xs, clean.w), atol=1e-4)
    assert np.std(np.asarray(clean.w)) == pytest.approx(2.0, rel=0.05)  # w ~ N(0, tau^2)
    noisy = sample_batch(TaskConfig(d=5, noise=0.5), KEY, 4000, 6)
    resid = np.asarray(noisy.ys) - np.einsum("bkd,bd->bk", noisy.xs, noisy.w)
    assert np.std(resid) == pytest.approx(0.5, rel=0.05)


def test_uniform_inputs_in_range():
    b = sample_batch(TaskConfig(d=3, x_dist="uniform", x_scale=1.0), KEY, 500, 10)
    xs = np.asarray(b.xs)
    assert xs.min() >= -1 and xs.max() <= 1 and np.var(xs) == pytest.approx(1 / 3, rel=0.05)


def test_curriculum_d_active_traced():
    cfg = TaskConfig(kind="sparse_linear", d=8, sparsity=3)
    fn = jax.jit(lambda k, da: sample_batch(cfg, k, 200, 5, da))
    b = fn(KEY, 4)
    xs, w = np.asarray(b.xs), np.asarray(b.w)
    assert np.all(xs[..., 4:] == 0) and np.all(w[:, 4:] == 0) and np.all(xs[..., :4] != 0)
    assert np.all((w != 0).sum(1) == 3)  # s nonzero coordinates, all among the active ones
    b2 = fn(KEY, 2)
    assert np.all((np.asarray(b2.w) != 0).sum(1) == 2)  # fewer active coordinates than s


def test_pool_tasks_come_from_the_pool():
    cfg = TaskConfig(d=3, pool_size=4, pool_seed=5, noise=0.25)
    pool = pool_weights(cfg)
    assert pool.shape == (4, 3)
    w = np.asarray(sample_batch(cfg, KEY, 64, 4).w)
    dist = np.abs(w[:, None, :] - pool[None]).max(-1).min(-1)
    assert np.all(dist < 1e-6) and len({tuple(r) for r in np.round(w, 5)}) == 4
    # The pool depends on pool_seed, not on noise or evaluation settings.
    np.testing.assert_array_equal(pool, pool_weights(cfg.model_copy(update={"noise": 0.0})))
    assert not np.allclose(pool, pool_weights(cfg.model_copy(update={"pool_seed": 6})))


def test_decision_tree_takes_leaf_values():
    cfg = TaskConfig(kind="decision_tree", d=4, depth=2)
    params = _draw_params(cfg, KEY, 5, 4)
    xs = jax.random.normal(jax.random.key(1), (5, 200, 4))
    ys = np.asarray(evaluate(cfg, params, xs))
    leaves = np.asarray(params["leaves"])[:, 3:7]  # depth 2: heap nodes 3..6 are the leaves
    for b in range(5):
        assert set(np.round(ys[b], 6)) <= set(np.round(leaves[b], 6))
    # Root split: the sign of x[coords[0]] decides the subtree.
    c0 = int(params["coords"][0, 0])
    right = np.asarray(xs[0, :, c0]) > 0
    assert set(np.round(ys[0][right], 6)) <= set(np.round(leaves[0][2:], 6))


def test_relu2nn_is_positively_homogeneous():
    cfg = TaskConfig(kind="relu2nn", d=3, hidden=16)
    params = _draw_params(cfg, KEY, 2, 3)
    xs = jax.random.normal(jax.random.key(1), (2, 9, 3))
    np.testing.assert_allclose(evaluate(cfg, params, 2.5 * xs), 2.5 * evaluate(cfg, params, xs), rtol=1e-5)
    h = np.maximum(np.einsum("bkd,bdh->bkh", xs, params["w1"]), 0)
    ref = np.sqrt(2 / 16) * np.einsum("bkh,bh->bk", h, params["w2"])
    np.testing.assert_allclose(evaluate(cfg, params, xs), ref, rtol=1e-5, atol=1e-5)


def test_skewed_covariance_eigenvalues():
    cfg = TaskConfig(d=4, ood={"kind": "skewed"})
    a = np.asarray(ood_covariance_factor(cfg), np.float64)
    eig = np.sort(np.linalg.eigvalsh(a @ a.T))[::-1]
    want = 1 / np.arange(1, 5) ** 2
    np.testing.assert_allclose(eig, want * 4 / want.sum(), rtol=1e-4)
    xs = np.asarray(sample_batch(cfg, KEY, 20000, 4).xs).reshape(-1, 4)
    emp = np.sort(np.linalg.eigvalsh(np.cov(xs.T)))[::-1]
    np.testing.assert_allclose(emp, want * 4 / want.sum(), rtol=0.05)


def test_half_subspace_rank():
    xs = np.asarray(sample_batch(TaskConfig(d=6, ood={"kind": "half_subspace"}), KEY, 500, 8).xs).reshape(-1, 6)
    s = np.linalg.svd(xs, compute_uv=False)
    assert s[2] > 1e3 * s[3]  # rank d // 2 = 3
    assert np.mean((xs**2).sum(1)) == pytest.approx(6, rel=0.05)


def test_random_quadrants_context_in_one_orthant():
    b = sample_batch(TaskConfig(d=5, ood={"kind": "random_quadrants"}), KEY, 300, 12)
    signs = np.sign(np.asarray(b.xs))
    assert np.all(signs == signs[:, :1])  # all context points of a prompt share an orthant
    q_signs = np.sign(np.asarray(b.query_xs))
    assert np.mean(np.all(q_signs == signs[:, :1], -1)) < 0.1  # queries are unconstrained
    np.testing.assert_allclose(np.asarray(b.query_ys), np.einsum("bkd,bd->bk", b.query_xs, b.w), atol=1e-4)
    np.testing.assert_allclose(np.abs(np.asarray(b.query_xs)), np.abs(np.asarray(b.xs)), atol=1e-6)


def test_orthogonal_queries():
    b = sample_batch(TaskConfig(d=6, ood={"kind": "orthogonal"}), KEY, 50, 6)
    xs, q = np.asarray(b.xs, np.float64), np.asarray(b.query_xs, np.float64)
    for i in range(6):
        if i:
            assert np.abs(np.einsum("bjd,bd->bj", xs[:, :i], q[:, i])).max() < 1e-4
        np.testing.assert_allclose(np.linalg.norm(q[:, i], axis=-1), np.linalg.norm(xs[:, i], axis=-1), rtol=1e-4)


def test_overlapping_queries_repeat_earlier_points():
    b = sample_batch(TaskConfig(d=3, ood={"kind": "overlapping"}), KEY, 40, 7)
    xs, q = np.asarray(b.xs), np.asarray(b.query_xs)
    for i in range(1, 7):
        match = np.abs(xs[:, :i] - q[:, i : i + 1]).max(-1).min(-1)
        assert np.all(match == 0)


def test_scale_x_scale_y_and_eval_noise():
    base = sample_batch(TaskConfig(d=4), KEY, 2000, 5)
    shifted = sample_batch(TaskConfig(d=4, ood={"scale_y": 3.0, "scale_x": 0.5, "noise": 1.0}), KEY, 2000, 5)
    np.testing.assert_allclose(np.asarray(shifted.xs), 0.5 * np.asarray(base.xs), rtol=1e-6)
    resid = np.asarray(shifted.ys) - 1.5 * np.asarray(base.ys)  # f scaled by 3 at half the x
    assert np.std(resid) == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize(
    "raw, needle",
    [
        ({"d": 0}, "d=0"),
        ({"d": 3, "noise": -1}, "noise=-1"),
        ({"d": 3, "tau": 0}, "tau=0"),
        ({"d": 2, "kind": "sparse_linear", "sparsity": 3}, "sparsity=3 exceeds task.d=2"),
        ({"d": 3, "kind": "quadratic"}, "kind="),
        ({"d": 3, "pool_size": 0}, "pool_size=0"),
        ({"d": 3, "bogus": 1}, "unknown key 'bogus'"),
    ],
)
def test_bad_configs_give_one_line_errors(raw, needle):
    with pytest.raises(LmscaleError) as err:
        task_config(raw)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_bad_prompt_requests():
    cfg = TaskConfig(d=3)
    with pytest.raises(LmscaleError, match="n_points=0"):
        sample_batch(cfg, KEY, 2, 0)
    with pytest.raises(LmscaleError, match="d_active=4"):
        sample_batch(cfg, KEY, 2, 3, d_active=4)
    with pytest.raises(LmscaleError, match="orthogonal"):
        sample_batch(TaskConfig(d=3, ood={"kind": "orthogonal"}), KEY, 2, 4)
    with pytest.raises(LmscaleError, match="pool_size is null"):
        pool_weights(cfg)
