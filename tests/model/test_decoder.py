import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from lmscale.model.decoder import DecoderConfig
from lmscale.model import count_params, transformer
from lmscale.model.registry import get_model
from tests.helpers import apply, init_model, loss_fn

VARIANTS = {
    "gpt2": {},
    "llama-like": {"norm": "rmsnorm", "positions": "rope", "activation": "swiglu", "tie_embeddings": False, "bias": False},
    "untied-bias": {"tie_embeddings": False},
    "dropout": {"dropout": 0.1},
}


def small(**kw):
    return DecoderConfig(**{"depth": 2, "width": 32, "heads": 4, "context": 16, "vocab_size": 37, **kw})


@pytest.mark.parametrize("name", list(VARIANTS))
def test_shapes_axes_and_param_count(name):
    cfg = small(**VARIANTS[name])
    params, axes = init_model(cfg, jax.random.key(0))
    flat_p = jax.tree_util.tree_leaves_with_path(params)
    flat_a = jax.tree_util.tree_leaves(axes, is_leaf=lambda x: isinstance(x, P))
    assert len(flat_p) == len(flat_a)
    known = {"layers", "vocab", "embed", "heads", "head_dim", "mlp", "qkv", "context"}
    for (path, x), spec in zip(flat_p, flat_a):
        assert len(spec) == x.ndim, jax.tree_util.keystr(path)
        assert set(spec) <= known
    total = sum(x.size for _, x in flat_p)
    assert total == count_params(cfg).total
    get_model(cfg).check_counts()
    # Axes come from the same declarations as the params: traced, nothing drawn.
    assert jax.tree.structure(axes, is_leaf=lambda x: isinstance(x, P)) == jax.tree.structure(
        jax.tree.map(lambda _: P(), params))
    logits = apply(params, jnp.zeros((3, 16), jnp.int32), cfg)
    assert logits.shape == (3, 16, 37) and logits.dtype == jnp.float32


@pytest.mark.parametrize("name", list(VARIANTS))
def test_causality(name):
    """Changing token t must not change logits at positions < t."""
    cfg = small(**VARIANTS[name])
    params, _ = init_model(cfg, jax.random.key(1))
    x = jax.random.randint(jax.random.key(2), (2, 16), 0, 37)
    y = x.at[:, 9].set((x[:, 9] + 1) % 37)
    la = apply(params, x, cfg)
    lb = apply(params, y, cfg)
    np.testing.assert_array_equal(np.asarray(la[:, :9]), np.asarray(lb[:, :9]))
    assert not np.allclose(np.asarray(la[:, 9:]), np.asarray(lb[:, 9:]))


def test_initial_loss_is_log_vocab():
    cfg = small(vocab_size=101)
    params, _ = init_model(cfg, jax.random.key(0))
    batch = jax.random.randint(jax.random.key(3), (8, 17), 0, 101)
    loss = float(loss_fn(params, batch, cfg))
    assert loss == pytest.approx(math.log(101), abs=0.05)


def test_loss_matches_reference_cross_entropy():
    cfg = small()
    params, _ = init_model(cfg, jax.random.key(0))
    batch = jax.random.randint(jax.random.key(4), (2, 17), 0, 37)
    logits = apply(params, batch[:, :-1], cfg)
    logp = jax.nn.log_softmax(logits, -1)
    ref = -jnp.take_along_axis(logp, batch[:, 1:, None], -1).mean()
    assert float(loss_fn(params, batch, cfg)) == pytest.approx(float(ref), rel=1e-6)


def test_dropout_is_keyed_and_off_in_eval():
    cfg = small(dropout=0.5)
    params, _ = init_model(cfg, jax.random.key(0))
    x = jnp.zeros((1, 16), jnp.int32)
    ev1 = apply(params, x, cfg)
    ev2 = apply(params, x, cfg)
    np.testing.assert_array_equal(np.asarray(ev1), np.asarray(ev2))
    t1 = apply(params, x, cfg, dropout_key=jax.random.key(5))
    t2 = apply(params, x, cfg, dropout_key=jax.random.key(5))
    t3 = apply(params, x, cfg, dropout_key=jax.random.key(6))
    np.testing.assert_array_equal(np.asarray(t1), np.asarray(t2))
    assert not np.allclose(np.asarray(t1), np.asarray(t3))


def test_gpt2_init_statistics():
    cfg = DecoderConfig(depth=4, width=256, heads=4, context=32, vocab_size=500)
    params, _ = init_model(cfg, jax.random.key(0))
    assert float(jnp.std(params["embed"]["tokens"])) == pytest.approx(0.02, rel=0.02)
    # residual output projections are scaled by 1/sqrt(2 * depth)
    assert float(jnp.std(params["blocks"]["mlp"]["w_out"])) == pytest.approx(0.02 / math.sqrt(8), rel=0.03)
    np.testing.assert_array_equal(np.asarray(params["blocks"]["norm1"]["scale"]), 1.0)


def test_bfloat16_compute_close_to_float32():
    cfg = small()
    params, _ = init_model(cfg, jax.random.key(0))
    batch = jax.random.randint(jax.random.key(4), (4, 17), 0, 37)
    l32 = float(loss_fn(params, batch, cfg))
    l16 = float(loss_fn(params, batch, cfg, compute_dtype=jnp.bfloat16))
    assert l16 == pytest.approx(l32, abs=0.02)


def test_rope_is_relative():
    """With RoPE and no learned positions, q.k depends only on the offset between positions."""
    x = jax.random.normal(jax.random.key(0), (1, 8, 1, 16))
    same = jnp.broadcast_to(x[:, :1], x.shape)  # identical vectors at every position
    r = transformer.rope(same, 10000.0)[0, :, 0]
    dots = r @ r.T
    np.testing.assert_allclose(np.diag(dots, 1), np.diag(dots, 1)[0], rtol=1e-5)
    np.testing.assert_allclose(np.diag(dots, 3), np.diag(dots, 3)[0], rtol=1e-5)
