import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lmscale.config import ScheduleConfig, TrainConfig
from lmscale.model.decoder import DecoderConfig
from lmscale.model import parametrization
from tests.helpers import init_model
from lmscale.train.optimizer import build_optimizer, decay_mask, schedule_fn


def nanogpt_get_lr(it, lr=1e-3, warmup=100, decay_iters=2000, min_lr=1e-4):
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay_iters:
        return min_lr
    ratio = (it - warmup) / (decay_iters - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def test_cosine_matches_nanogpt():
    f = schedule_fn(ScheduleConfig(kind="cosine", warmup=100, min_lr=1e-4), 1e-3, 2000)
    for it in (0, 50, 99, 100, 500, 1000, 1999, 2000, 2500):
        assert float(f(it)) == pytest.approx(nanogpt_get_lr(it), rel=1e-5)


def test_wsd_shape():
    f = schedule_fn(ScheduleConfig(kind="wsd", warmup=10, min_lr=0.0, decay_fraction=0.2, decay_shape="linear"), 1.0, 100)
    assert float(f(50)) == 1.0 and float(f(79)) == 1.0
    assert float(f(80)) == pytest.approx(1.0) and float(f(90)) == pytest.approx(0.5)
    assert float(f(100)) == pytest.approx(0.0)
    g = schedule_fn(ScheduleConfig(kind="wsd", warmup=0, min_lr=0.0, decay_fraction=0.2, decay_shape="sqrt"), 1.0, 100)
    assert float(g(85)) == pytest.approx(1 - math.sqrt(0.25))


def test_constant_with_warmup():
    f = schedule_fn(ScheduleConfig(kind="constant", warmup=4), 2.0, 100)
    assert [round(float(f(i)), 6) for i in (0, 3, 4, 99)] == [0.4, 1.6, 2.0, 2.0]


def test_weight_decay_only_on_matrices_not_embeddings():
    cfg = DecoderConfig(depth=2, width=32, heads=2, context=8, vocab_size=11, tie_embeddings=False)
    _, axes = init_model(cfg, jax.random.key(0))
    mask = decay_mask(axes)
    assert mask["embed"]["tokens"] is False and mask["embed"]["positions"] is False
    assert mask["blocks"]["norm1"]["scale"] is False and mask["blocks"]["norm1"]["bias"] is False
    assert mask["blocks"]["attn"]["bqkv"] is False and mask["blocks"]["mlp"]["b_in"] is False
    assert mask["blocks"]["attn"]["wqkv"] is True and mask["blocks"]["mlp"]["w_out"] is True
    assert mask["unembed"]["w"] is True


# ----------------------------------------------------------------------------------------------
# muP (the role table itself: tests/model/test_parametrization.py)


def _tcfg(**opt):
    return TrainConfig(steps=10, optimizer={"lr": 1e-2, "grad_clip": None, "weight_decay": 0.0} | opt,
                       schedule={"kind": "constant", "warmup": 0})


def _mup(width, base, **kw):
    return DecoderConfig(depth=1, width=width, heads=2, context=16, vocab_size=23, tie_embeddings=False,
                       parametrization="mup", mup_base_width=base, **kw)


def _first_update(mcfg, tcfg, grads=None, seed=0):
    """(params, axes, first-step updates) with random params and (by default) random gradients.

    Host-side numpy values and one jitted update keep this cheap; Adam's first step depends on
    the gradients only through g/(|g| + eps), so random gradients exercise it fully."""
    holder = {}

    def f():
        params, holder["axes"] = init_model(mcfg, jax.random.key(0))
        return params

    shapes, axes = jax.eval_shape(f), None
    axes = holder["axes"]
    rng = np.random.default_rng(seed)
    params = jax.tree.map(lambda s: (0.02 * rng.standard_normal(s.shape)).astype(np.float32), shapes)
    if grads is None:
        grads = jax.tree.map(lambda s: (1e-3 * rng.standard_normal(s.shape)).astype(np.float32), shapes)
    opt = build_optimizer(tcfg, axes, mcfg)
    updates, _ = jax.jit(opt.update)(grads, opt.init(params), params)
    return params, axes, updates


def _decayed_by_rule(path) -> bool:
    """The project's rule, by name: weight matrices (w*, in blocks or the untied readout) decay;
    norm gains and biases, biases (b*) and embeddings (token and position) never do."""
    keys = [getattr(k, "key", None) for k in path]
    return keys[0] in ("blocks", "unembed") and keys[-1].startswith("w")


@pytest.mark.parametrize("variant", [
    {"tie_embeddings": False},  # gpt2 with biases, untied readout
    {"norm": "rmsnorm", "positions": "rope", "activation": "swiglu", "bias": False},  # tied, no biases
])
@pytest.mark.parametrize("parametrization", ["sp", "mup"])
def test_weight_decay_moves_exactly_the_weight_matrices(variant, parametrization):
    """With zero gradients only decay moves a parameter: by -lr * wd * p for every weight matrix,
    not at all for norms, biases and embeddings (the built optimizer, under SP and muP)."""
    mcfg = DecoderConfig(depth=1, width=64, heads=2, context=16, vocab_size=23, parametrization=parametrization,
                         mup_base_width=32, **variant)
    params, axes, _ = _first_update(mcfg, _tcfg())
    _, _, updates = _first_update(mcfg, _tcfg(weight_decay=0.1), grads=jax.tree.map(np.zeros_like, params))
    flat = jax.tree_util.tree_leaves_with_path(params)
    decayed = [_decayed_by_rule(path) for path, _ in flat]
    assert any(decayed) and not all(decayed)
    for (path, p), u, d in zip(flat, jax.tree.leaves(updates), decayed):
        want = -1e-2 * 0.1 * p if d else np.zeros_like(p)
        np.testing.assert_allclose(np.asarray(u), want, rtol=1e-6, atol=0, err_msg=jax.tree_util.keystr(path))


def test_sp_optimizer_is_plain_adamw_and_mup_at_base_width_matches_it():
    """With parametrization 'sp' (or none given) the chain is optax.adamw's; muP at m = 1 computes the same."""
    mup = _mup(64, 64)
    sp = mup.model_copy(update={"parametrization": "sp"})
    tcfg = _tcfg(weight_decay=0.1)
    params, axes, _ = _first_update(sp, tcfg)
    grads = jax.tree.map(lambda x: 0.01 + 0.1 * x, params)
    ref_opt = optax.adamw(learning_rate=1e-2, b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.1, mask=decay_mask(axes))
    ref, _ = ref_opt.update(grads, ref_opt.init(params), params)
    for model in (None, sp, mup):
        opt = build_optimizer(tcfg, axes, model)
        updates, _ = opt.update(grads, opt.init(params), params)
        for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(updates)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_mup_adam_update_size_per_role():
    """Adam's first step moves every entry by ~lr (the sign of its gradient); muP scales the
    hidden matrices' step by 1/m and leaves embeddings, readout and vector params at lr."""
    lr = 1e-2
    for width, m in ((64, 1), (256, 4)):
        _, axes, updates = _first_update(_mup(width, 64), _tcfg())
        roles = jax.tree.leaves(parametrization.param_roles(axes))
        seen = set()
        for (path, u), role in zip(jax.tree_util.tree_leaves_with_path(updates), roles):
            expected = lr / m if role == "hidden" else lr
            assert float(jnp.mean(jnp.abs(u))) == pytest.approx(expected, rel=1e-3), (jax.tree_util.keystr(path), role)
            seen.add(role)
        assert seen == {"embedding", "hidden", "readout", "vector"}


def test_mup_weight_decay_is_decoupled_from_the_lr_multiplier():
    """With zero gradients only decay moves params: -lr * wd * p for every decayed matrix, hidden or not."""
    mcfg = _mup(128, 32)
    zeros = lambda p: jax.tree.map(np.zeros_like, p)  # noqa: E731
    params, axes, _ = _first_update(mcfg, _tcfg())
    _, _, updates = _first_update(mcfg, _tcfg(weight_decay=0.1), grads=zeros(params))
    mask = decay_mask(axes)
    assert any(jax.tree.leaves(mask))
    for p, u, m in zip(jax.tree.leaves(params), jax.tree.leaves(updates), jax.tree.leaves(mask)):
        np.testing.assert_allclose(np.asarray(u), -1e-2 * 0.1 * p if m else 0.0, rtol=1e-6)


def test_mup_eps_is_scaled_by_width():
    """eps/m for every parameter: gradients that shrink as 1/m (as all of muP's do) see the same eps effect."""
    eps, m = 1e-3, 4
    mcfg = _mup(128, 32)
    assert parametrization.eps_multiplier(mcfg) == 1 / m
    params, _, _ = _first_update(mcfg, _tcfg())
    g = 1e-3 / m  # Adam's first step: g / (|g| + eps/m) = 1 / (1 + eps/1e-3), whatever m
    grads = jax.tree.map(lambda x: np.full_like(x, g), params)
    _, axes, updates = _first_update(mcfg, _tcfg(eps=eps), grads=grads)
    for u, role in zip(jax.tree.leaves(updates), jax.tree.leaves(parametrization.param_roles(axes))):
        expected = -1e-2 / (1 + eps / 1e-3) * (1 / m if role == "hidden" else 1)
        np.testing.assert_allclose(np.asarray(u), expected, rtol=1e-5)
