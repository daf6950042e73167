"""Vector-token GPT: shapes, causality, parameter counts; LSA: the GD construction is one GD step.
Both are registered models: the registry finds them, their closed-form counts hold, their inits,
predictions and losses are bitwise those of the lab's models before the platform port."""

import hashlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lmscale.icl import model as M
from lmscale.icl.config import validate_icl_config
from lmscale.icl.learners import make_learner
from lmscale.icl.tasks import sample_batch
from lmscale.icl.train import batch_for_step, icl_trainer
from lmscale.model.icl import ICLGPT, ICLLSA, ICLGPTConfig, ICLLSAConfig, gd_construction
from lmscale.model.registry import get_model, kinds, model_class, validate_model_spec
from lmscale.train.step import member_keys, seed_keys

# The shapes of the session's tiny run (tests/icl/conftest.py), with the default read-in/out init.
CFG = validate_icl_config({"task": {"d": 2}, "n_points": 4, "model": {"depth": 2, "width": 8, "heads": 1}})
# Eager forward passes compile op by op (slow); one jitted program per (model, shapes) instead.
_forward_hidden = jax.jit(lambda p, x, y: M.forward(p, x, y, CFG, capture_hidden=True))


def _batch(cfg, n=4, seed=0):
    return sample_batch(cfg.task, jax.random.key(seed), n, cfg.n_points)


def _init(cfg, key):
    model = M.model_of(cfg)
    return model.init(key), model.axes


def test_shapes_and_hidden_states():
    params, axes = _init(CFG, jax.random.key(0))
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
    params, _ = _init(CFG, jax.random.key(0))
    w_in, w_out = np.asarray(params["read_in"]["w"]), np.asarray(params["read_out"]["w"])
    assert w_in.shape == (2, 8) and np.abs(w_in).max() <= 1 / np.sqrt(2) and w_in.std() > 0.25
    assert np.abs(w_out).max() <= 1 / np.sqrt(8) and w_out.std() > 0.1 and np.abs(np.asarray(params["read_in"]["b"])).max() > 0.1
    normal, _ = _init(CFG.model_copy(update={"model": CFG.model.model_copy(update={"read_init": "normal"})}), jax.random.key(0))
    assert np.asarray(normal["read_in"]["w"]).std() < 0.04 and not np.asarray(normal["read_in"]["b"]).any()


def test_prediction_at_x_i_ignores_later_tokens():
    params, _ = _init(CFG, jax.random.key(1))
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
    pred = np.asarray(M.predict_jit(cfg)(gd_construction(eta, 5, 8), b.xs, b.ys))
    xs, ys = np.asarray(b.xs), np.asarray(b.ys)
    ref = make_learner("gd", steps=1, lr=eta).predict(xs[:, :-1], ys[:, :-1], xs[:, -1:])
    np.testing.assert_allclose(pred, ref, rtol=1e-5, atol=1e-6)


def test_lsa_init_shapes():
    cfg = validate_icl_config({"task": {"d": 4}, "n_points": 5, "model": {"kind": "lsa", "depth": 2, "heads": 3, "lsa_key_size": 7}})
    p, _ = _init(cfg, jax.random.key(0))
    assert p["wq"].shape == (2, 3, 5, 7) and p["proj"].shape == (2, 3, 5, 5)
    assert M.count_params(cfg).garg_convention == M.count_params(cfg).total
    b = _batch(cfg)
    pred = M.predict_jit(cfg)(p, b.xs, b.ys)
    assert pred.shape == (4, 1) and jnp.isfinite(pred).all() and jnp.abs(pred).max() > 0


# ----------------------------------------------------------------------------------------------
# The registered models


def test_registry_finds_both_models():
    assert {"icl_gpt", "icl_lsa"} <= set(kinds())
    assert model_class("icl_gpt") is ICLGPT and model_class("icl_lsa") is ICLLSA
    spec = validate_model_spec({"kind": "icl_gpt", "d": 3, "n_points": 5, "width": 16, "heads": 2})
    assert isinstance(spec, ICLGPTConfig) and isinstance(get_model(spec), ICLGPT)
    assert isinstance(validate_model_spec({"kind": "icl_lsa", "d": 3}), ICLLSAConfig)
    # The lab's model sections map onto them.
    assert isinstance(M.model_of(CFG), ICLGPT)
    assert M.model_spec(validate_icl_config({"task": {"d": 4}, "n_points": 5, "model": {"kind": "lsa"}})).kind == "icl_lsa"
    with pytest.raises(ValueError, match="width=10 is not divisible by model.heads=4"):
        validate_model_spec({"kind": "icl_gpt", "d": 3, "n_points": 5, "width": 10, "heads": 4})


@pytest.mark.parametrize("spec", [
    ICLGPTConfig(d=2, n_points=4, depth=2, width=8, heads=1),
    ICLGPTConfig(d=5, n_points=11, depth=3, width=64, heads=2),
    ICLGPTConfig(d=3, n_points=6, depth=1, width=12, heads=3, mlp_ratio=2.5, format="akyurek", read_init="normal"),
    ICLGPTConfig(d=20, n_points=41, depth=12, width=256, heads=8),
    ICLLSAConfig(d=10),
    ICLLSAConfig(d=4, depth=3, heads=2, key_size=7),
    ICLLSAConfig(d=1, depth=2, heads=4),
])
def test_check_counts(spec):
    model = get_model(spec)
    model.check_counts()  # the closed form equals the shapes of init
    flops = model.flop_count()
    assert 0 < flops.matmul_params <= model.param_count().total and flops.per_token >= 6 * flops.matmul_params


def test_loss_is_the_mask_weighted_squared_error():
    model = M.model_of(CFG)
    params = model.init(jax.random.key(0))
    b = _batch(CFG, n=8)
    err = np.square(np.asarray(model.apply(params, {"xs": b.xs, "ys": b.ys})) - np.asarray(b.ys))
    mask = np.zeros((8, 4), np.float32)
    mask[:, :3] = 1.0  # a curriculum at 3 of 4 points
    full = float(model.loss(params, {"xs": b.xs, "ys": b.ys, "mask": np.ones_like(mask)})[0])
    part = float(model.loss(params, {"xs": b.xs, "ys": b.ys, "mask": mask})[0])
    np.testing.assert_allclose(full, err.mean(), rtol=1e-6)
    np.testing.assert_allclose(part, err[:, :3].mean(), rtol=1e-6)
    lsa_cfg = validate_icl_config({"task": {"d": 3}, "n_points": 4, "model": {"kind": "lsa", "lsa_init_std": 0.5}})
    lsa = M.model_of(lsa_cfg)
    p = lsa.init(jax.random.key(0))
    b = _batch(lsa_cfg, n=8)
    pred = np.asarray(lsa.apply(p, {"xs": b.xs, "ys": b.ys}))[:, 0]
    np.testing.assert_allclose(float(lsa.loss(p, {"xs": b.xs, "ys": b.ys, "mask": mask})[0]),
                               np.mean(np.square(pred - np.asarray(b.ys)[:, -1])), rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Bitwise the models of before the port: values computed with the lab's own model code
# (lmscale.icl.model.init/predict and lmscale.icl.train.loss_fn at commit af44d82), hard-coded.

CASES = {
    "tiny_torch": {"task": {"d": 2}, "n_points": 4, "model": {"depth": 2, "width": 8, "heads": 1}},
    "tiny_normal": {"task": {"d": 2}, "n_points": 4,
                    "model": {"depth": 2, "width": 8, "heads": 1, "init_std": 0.5, "read_init": "normal"}},
    "garg_linear": {"task": {"d": 5}, "n_points": 11, "model": {"depth": 3, "width": 64, "heads": 2}},
    "akyurek": {"task": {"d": 3}, "format": "akyurek", "n_points": 6,
                "model": {"depth": 2, "width": 16, "heads": 2, "mlp_ratio": 2.0}},
    "lsa": {"task": {"d": 10}, "n_points": 11, "model": {"kind": "lsa", "depth": 1, "heads": 1}},
    "lsa_deep": {"task": {"d": 4}, "n_points": 5,
                 "model": {"kind": "lsa", "depth": 2, "heads": 3, "lsa_key_size": 7, "lsa_init_std": 0.2}},
}
# sha256 (first 16 hex digits) over (key path, bytes) of every leaf: init from key(0) and from seed 3's init key.
OLD_INIT = {
    "tiny_torch": ("aa24815d65e9a4cf", "d38253c17b60fe0c"),
    "tiny_normal": ("3d431d260dc8ec65", "c7c78d8136c78615"),
    "garg_linear": ("bfbadd05b5e600bd", "72bd6ad754d9d8e8"),
    "akyurek": ("bff3d77c19796fe1", "81b81109e558dd6d"),
    "lsa": ("1a0d62aad1cbf582", "feacbc399f990bc1"),
    "lsa_deep": ("457c95de486e4ec3", "a8d5647cfcf48b88"),
}
# The first 4 predictions and the loss on batch_for_step(cfg, seed=5, step=3) from the key(0) init.
OLD_OUT = {
    "tiny_torch": ([0.32768139243125916, -0.14967571198940277, -0.10574750602245331, 0.04385770484805107], 1.602487325668335),
    "garg_linear": ([0.4587428867816925, 0.5784722566604614, 0.10437777638435364, 0.18661533296108246], 4.82476806640625),
    "akyurek": ([-0.06026947498321533, 0.12010768055915833, 1.0618557929992676, 0.753728449344635], 2.9525134563446045),
    "lsa": ([-1.262157489634319e-08, -1.2771025126312452e-08, 3.020934258302077e-08, 2.3983744767974713e-08], 12.500706672668457),
}
OLD_CURRICULUM_LOSS = 5.077156066894531  # garg_linear with the first 7 of 11 positions (loss_fn(..., n_active=7))


def _digest(tree) -> str:
    h = hashlib.sha256()
    for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
        h.update(jax.tree_util.keystr(path).encode())
        h.update(np.asarray(x).tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(CASES))
def test_init_is_bitwise_the_old_init(name):
    cfg = validate_icl_config(CASES[name])
    model = M.model_of(cfg)
    assert (_digest(model.init(jax.random.key(0))), _digest(model.init(seed_keys(3)[0]))) == OLD_INIT[name]
    # Training inits under jit (the core's init_state), alone and vmapped over members: the same bits.
    assert _digest(jax.jit(model.init)(jax.random.key(0))) == OLD_INIT[name][0]
    if name in ("garg_linear", "lsa"):
        assert _digest(icl_trainer(cfg).init_state(member_keys([3])[0])["params"]) == OLD_INIT[name][1]
        stacked = icl_trainer(cfg, members=2).init_state(member_keys([3, 4])[0])["params"]
        assert _digest(jax.tree.map(lambda x: x[0], stacked)) == OLD_INIT[name][1]


@pytest.mark.parametrize("name", sorted(OLD_OUT))
def test_predictions_and_loss_are_the_old_ones(name):
    cfg = validate_icl_config(CASES[name])
    model = M.model_of(cfg)
    params = model.init(jax.random.key(0))
    b = batch_for_step(cfg, 5, 3)
    pred = np.asarray(M.predict_jit(cfg)(params, b.xs, b.ys)).ravel()[:4]
    loss = jax.jit(lambda p, batch: model.loss(p, batch)[0])
    ones = jnp.ones(b.ys.shape)
    want_pred, want_loss = OLD_OUT[name]
    np.testing.assert_array_equal(pred, np.float32(want_pred))
    assert float(loss(params, {"xs": b.xs, "ys": b.ys, "mask": ones})) == want_loss
    if name == "garg_linear":
        mask = (jnp.arange(11) < 7).astype(jnp.float32) * ones
        assert float(loss(params, {"xs": b.xs, "ys": b.ys, "mask": mask})) == OLD_CURRICULUM_LOSS
