"""muP's parameter roles, init scales and forward multipliers (optimizer side: tests/train/test_optimizer.py)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lmscale.model.decoder import DecoderConfig
from lmscale.train.config import validate_config
from lmscale.errors import LmscaleError
from lmscale.model import parametrization
from tests.helpers import apply as _apply, apply_with_stats as _apply_with_stats, init_model


def cfg_(**kw):
    base = {"depth": 2, "width": 128, "heads": 2, "context": 16, "vocab_size": 37, "tie_embeddings": False}
    return DecoderConfig(**(base | kw))


# The configs shared by the forward tests (head_dim 64, so 8/d_head == 1/sqrt(d_head)); apply is
# jitted per config, so reusing them keeps XLA compilations few.
SP = cfg_()
MUP = cfg_(parametrization="mup", mup_base_width=128)
apply = jax.jit(_apply, static_argnums=2)
apply_with_stats = jax.jit(_apply_with_stats, static_argnums=2)
TOKENS = jax.random.randint(jax.random.key(2), (2, 16), 0, 37)


def flat(tree):
    return {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(tree)}


def axes_of(cfg):
    holder = {}

    def f():
        params, holder["axes"] = init_model(cfg, jax.random.key(0))
        return params

    jax.eval_shape(f)
    return holder["axes"]


def test_roles_table_covers_every_parameter():
    cfg = cfg_(activation="swiglu", bias=True, positions="learned")
    roles = flat(parametrization.param_roles(axes_of(cfg)))
    expected = {
        "['embed']['tokens']": "embedding",
        "['embed']['positions']": "embedding",
        "['unembed']['w']": "readout",
        "['blocks']['attn']['wqkv']": "hidden",
        "['blocks']['attn']['wo']": "hidden",
        "['blocks']['mlp']['w_in']": "hidden",
        "['blocks']['mlp']['w_gate']": "hidden",
        "['blocks']['mlp']['w_out']": "hidden",
        "['blocks']['attn']['bqkv']": "vector",  # heads x head_dim is one width-like dimension
        "['blocks']['attn']['bo']": "vector",
        "['blocks']['mlp']['b_in']": "vector",
        "['blocks']['mlp']['b_gate']": "vector",
        "['blocks']['mlp']['b_out']": "vector",
        "['blocks']['norm1']['scale']": "vector",
        "['blocks']['norm1']['bias']": "vector",
        "['blocks']['norm2']['scale']": "vector",
        "['blocks']['norm2']['bias']": "vector",
        "['final_norm']['scale']": "vector",
        "['final_norm']['bias']": "vector",
    }
    assert roles == expected


def test_mup_config_validation():
    with pytest.raises(LmscaleError, match="mup_base_width"):
        validate_config({"model": {"parametrization": "mup"}})
    with pytest.raises(LmscaleError, match="parametrization"):
        validate_config({"model": {"parametrization": "ntk"}})
    assert validate_config({"model": {"parametrization": "mup", "mup_base_width": 64}}).model.mup_base_width == 64


def test_init_scales_with_width_and_sp_init_is_unchanged():
    """Hidden matrices: std ∝ 1/sqrt(m); embeddings and gains as SP; the untied readout zero
    (unless mup_zero_readout=False). At m = 1 muP's init is SP's, array for array, but the readout."""
    p_sp, _ = init_model(SP, jax.random.key(0))
    p_mup, _ = init_model(MUP, jax.random.key(0))
    for k, v in flat(p_sp).items():
        expected = np.zeros_like(v) if k == "['unembed']['w']" else np.asarray(v)
        np.testing.assert_array_equal(np.asarray(flat(p_mup)[k]), expected, err_msg=k)
    p_sp_readout, _ = init_model(cfg_(parametrization="mup", mup_base_width=128, mup_zero_readout=False),
                                       jax.random.key(0))
    for k, v in flat(p_sp).items():  # mup_zero_readout=False keeps SP's readout init
        np.testing.assert_array_equal(np.asarray(flat(p_sp_readout)[k]), np.asarray(v), err_msg=k)
    p_wide, _ = init_model(cfg_(width=512, parametrization="mup", mup_base_width=128), jax.random.key(0))
    std, std_wide = ({k: float(jnp.std(v)) for k, v in flat(p).items()} for p in (p_mup, p_wide))
    for name in ("['blocks']['attn']['wqkv']", "['blocks']['attn']['wo']", "['blocks']['mlp']['w_in']",
                 "['blocks']['mlp']['w_out']"):
        assert std_wide[name] / std[name] == pytest.approx(1 / math.sqrt(4), rel=0.03), name
    assert std["['blocks']['attn']['wqkv']"] == pytest.approx(0.02, rel=0.03)
    assert std_wide["['embed']['positions']"] == pytest.approx(0.02, rel=0.03)
    np.testing.assert_array_equal(np.asarray(p_wide["unembed"]["w"]), 0.0)
    np.testing.assert_array_equal(np.asarray(p_wide["blocks"]["norm1"]["scale"]), 1.0)


def test_forward_at_base_width_equals_sp_when_head_dim_is_64():
    """m = 1, alphas 1, d_head = 64: muP's forward on the same params is bitwise SP's
    (8/64 == 1/sqrt(64) exactly; the multipliers are 1). Only the init differs (zero readout)."""
    params, _ = init_model(SP, jax.random.key(1))
    np.testing.assert_array_equal(np.asarray(apply(params, TOKENS, SP)), np.asarray(apply(params, TOKENS, MUP)))


def test_forward_at_base_width_differs_from_sp_only_by_attention_scale():
    """At d_head = 32 muP's scores are q·k·8/32 = (sqrt(2)·q)·k/sqrt(32): SP with W_q scaled by sqrt(2)."""
    sp, mup = cfg_(heads=4), cfg_(heads=4, parametrization="mup", mup_base_width=128)
    params, _ = init_model(sp, jax.random.key(1))
    c = 8 / 32 * math.sqrt(32)
    scaled = jax.tree.map(lambda x: x, params)
    scaled["blocks"]["attn"]["wqkv"] = params["blocks"]["attn"]["wqkv"].at[:, :, 0].multiply(c)
    out_mup = np.asarray(apply(params, TOKENS, mup))
    assert not np.allclose(out_mup, np.asarray(apply(params, TOKENS, sp)), rtol=1e-6, atol=0)
    np.testing.assert_allclose(out_mup, np.asarray(apply(scaled, TOKENS, sp)), rtol=1e-5, atol=1e-6)


def test_logit_and_input_multipliers():
    params, _ = init_model(SP, jax.random.key(1))  # SP init: a nonzero readout to look at
    ref = np.asarray(apply(params, TOKENS, MUP))
    # logits * alpha_out / m, here m = 128/64 = 2 and alpha_out = 3
    other = cfg_(parametrization="mup", mup_base_width=64, mup_output_alpha=3.0)
    np.testing.assert_allclose(np.asarray(apply(params, TOKENS, other)), ref * 3 / 2, rtol=1e-6)
    # apply_with_stats is apply plus activation sizes; alpha_in multiplies the embedding output
    logits, stats = apply_with_stats(params, TOKENS, SP)
    np.testing.assert_array_equal(np.asarray(logits), ref)
    assert set(stats) == {"embedding", "attn", "mlp", "residual", "logits"} and stats["attn"].shape == (SP.depth,)
    assert float(stats["logits"]) == pytest.approx(float(jnp.mean(jnp.abs(logits))), rel=1e-6)
    _, stats_in = apply_with_stats(params, TOKENS, cfg_(parametrization="mup", mup_base_width=128, mup_input_alpha=2.0))
    assert float(stats_in["embedding"]) == pytest.approx(2 * float(stats["embedding"]), rel=1e-6)
