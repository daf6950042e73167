"""Vector-token GPT: shapes, causality, parameter counts; LSA: the GD construction is one GD step."""

import jax
import jax.numpy as jnp
import numpy as np

from lmscale.icl import model as M
from lmscale.icl.config import validate_icl_config
from lmscale.icl.learners import make_learner
from lmscale.icl.tasks import sample_batch

# The shapes of the session's tiny run (tests/icl/conftest.py), with the default read-in/out init.
CFG = validate_icl_config({"task": {"d": 2}, "n_points": 4, "model": {"depth": 2, "width": 8, "heads": 1}})
# Eager forward passes compile op by op (slow); one jitted program per (model, shapes) instead.
_forward_hidden = jax.jit(lambda p, x, y: M.forward(p, x, y, CFG, capture_hidden=True))


def _batch(cfg, n=4, seed=0):
    return sample_batch(cfg.task, jax.random.key(seed), n, cfg.n_points)


def test_shapes_and_hidden_states():
    params, axes = M.init(CFG, jax.random.key(0))
    assert jax.tree.structure(params) == jax.tree.structure(axes, is_leaf=lambda a: isinstance(a, jax.sharding.PartitionSpec))
    b = _batch(CFG)
    f = _forward_hidden(params, b.xs, b.ys)
    assert f.pred.shape == (4, 4)
    assert f.hidden.shape == (3, 4, 8, 8)  # read-in output + 2 blocks, 2k tokens
    assert "tokens" not in params["embed"] and params["embed"]["positions"].shape == (8, 8)
    np.testing.assert_allclose(np.asarray(f.hidden[0][:, 1::2, :]),  # y tokens (y, 0): read-in of y_i e_1 + positions
                               np.asarray(b.ys[..., None] * params["read_in"]["w"][0] + params["read_in"]["b"]
                                          + params["embed"]["positions"][1::2]), rtol=1e-5, atol=1e-6)


def test_read_layers_use_torch_linear_init():
    # Garg's read-in/out are nn.Linear outside GPT2Model: U(+-1/sqrt(fan_in)), not N(0, 0.02).
    params, _ = M.init(CFG, jax.random.key(0))
    w_in, w_out = np.asarray(params["read_in"]["w"]), np.asarray(params["read_out"]["w"])
    assert w_in.shape == (2, 8) and np.abs(w_in).max() <= 1 / np.sqrt(2) and w_in.std() > 0.25
    assert np.abs(w_out).max() <= 1 / np.sqrt(8) and w_out.std() > 0.1 and np.abs(np.asarray(params["read_in"]["b"])).max() > 0.1
    normal, _ = M.init(CFG.model_copy(update={"model": CFG.model.model_copy(update={"read_init": "normal"})}), jax.random.key(0))
    assert np.asarray(normal["read_in"]["w"]).std() < 0.04 and not np.asarray(normal["read_in"]["b"]).any()


def test_prediction_at_x_i_ignores_later_tokens():
    params, _ = M.init(CFG, jax.random.key(1))
    b = _batch(CFG)
    base = np.asarray(_forward_hidden(params, b.xs, b.ys).pred)
    xs2 = b.xs.at[:, 3:].add(5.0)
    ys2 = b.ys.at[:, 2:].add(-3.0)  # y_2 comes after x_2: predictions 0..2 must not see it
    new = np.asarray(_forward_hidden(params, xs2, ys2).pred)
    np.testing.assert_array_equal(new[:, :3], base[:, :3])
    assert np.abs(new[:, 3:] - base[:, 3:]).min() > 0


def test_parameter_counts_both_conventions():
    cfg = validate_icl_config({"task": {"d": 20}, "n_points": 41, "model": {"depth": 3, "width": 64, "heads": 2}})
    c = M.count_params(cfg)
    D, L, T, d = 64, 3, 82, 20
    blocks = L * (4 * D + 3 * D * D + 3 * D + D * D + D + 4 * D * D + 4 * D + 4 * D * D + D)
    expect = blocks + 2 * D + T * D + (d * D + D) + (D + 1)
    assert c.total == expect
    assert c.garg_convention == expect + 50257 * D


def test_lsa_gd_construction_equals_one_gd_step():
    cfg = validate_icl_config({"task": {"d": 5, "x_dist": "uniform"}, "n_points": 9, "model": {"kind": "lsa", "depth": 1, "heads": 1}})
    b = _batch(cfg, n=64)
    eta = 0.83
    pred = np.asarray(M.predict_jit(cfg)(M.gd_construction(eta, 5, 8), b.xs, b.ys))
    xs, ys = np.asarray(b.xs), np.asarray(b.ys)
    ref = make_learner("gd", steps=1, lr=eta).predict(xs[:, :-1], ys[:, :-1], xs[:, -1:])
    np.testing.assert_allclose(pred, ref, rtol=1e-5, atol=1e-6)


def test_lsa_init_shapes():
    cfg = validate_icl_config({"task": {"d": 4}, "n_points": 5, "model": {"kind": "lsa", "depth": 2, "heads": 3, "lsa_key_size": 7}})
    p, _ = M.init(cfg, jax.random.key(0))
    assert p["wq"].shape == (2, 3, 5, 7) and p["proj"].shape == (2, 3, 5, 5)
    assert M.count_params(cfg).garg_convention == M.count_params(cfg).total
    b = _batch(cfg)
    pred = M.predict_jit(cfg)(p, b.xs, b.ys)
    assert pred.shape == (4, 1) and jnp.isfinite(pred).all() and jnp.abs(pred).max() > 0
