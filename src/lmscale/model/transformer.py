"""Transformer layers shared by the registered models: declarations and pure functions.

`shape` arguments are any config with the decoder's shape fields (depth, width, heads, head_dim,
mlp_hidden, norm, positions, activation, bias, dropout, norm_eps, rope_theta, parametrization):
`lmscale.model.decoder.DecoderConfig`, or one a model builds for its blocks (the ICL models).

Blocks are pre-norm (``x = x + attn(norm1(x)); x = x + mlp(norm2(x))``), stacked along a leading
'layers' axis and applied with `lax.scan`. Attention takes its mask as an argument (causal for
the decoder; prefix-LM and padding masks are other masks), so no mask is hard-coded here.
Matmuls run in the execution's compute dtype; norms, softmax and the residual stream stay
float32. Activations are pinned at block boundaries by logical names
('activation_batch', 'activation_length', 'activation_embed', 'activation_heads',
'activation_mlp'), which the sharding rules map to mesh axes.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from lmscale.model import parametrization
from lmscale.model.base import Execution, Init, Param
from lmscale.model.ops import gelu, linear

RESIDUAL = ("activation_batch", "activation_length", "activation_embed")


# ----------------------------------------------------------------------------------------------
# Declarations


def declare_norm(shape, stacked: bool) -> dict[str, Param]:
    lead, names = ((shape.depth,), ("layers",)) if stacked else ((), ())
    D = shape.width
    p = {"scale": Init.ones(lead + (D,), names + ("embed",))}
    if shape.norm == "layernorm" and shape.bias:
        p["bias"] = Init.zeros(lead + (D,), names + ("embed",))
    return p


def declare_blocks(init: Init, shape) -> dict:
    """The stacked blocks: GPT-2 init, N(0, init_std) matrices with residual projections scaled by
    1/sqrt(2L). Names are the RNG streams ("attn.wqkv", ...): keep them to keep inits bitwise."""
    L, D, H, Dh, F = shape.depth, shape.width, shape.heads, shape.head_dim, shape.mlp_hidden
    std, std_out = shape.init_std, shape.init_std / math.sqrt(2 * L)
    attn = {
        "wqkv": init.normal("attn.wqkv", (L, D, 3, H, Dh), ("layers", "embed", "qkv", "heads", "head_dim"), std),
        "wo": init.normal("attn.wo", (L, H, Dh, D), ("layers", "heads", "head_dim", "embed"), std_out),
    }
    mlp = {
        "w_in": init.normal("mlp.w_in", (L, D, F), ("layers", "embed", "mlp"), std),
        "w_out": init.normal("mlp.w_out", (L, F, D), ("layers", "mlp", "embed"), std_out),
    }
    if shape.activation == "swiglu":
        mlp["w_gate"] = init.normal("mlp.w_gate", (L, D, F), ("layers", "embed", "mlp"), std)
    if shape.bias:
        attn["bqkv"] = Init.zeros((L, 3, H, Dh), ("layers", "qkv", "heads", "head_dim"))
        attn["bo"] = Init.zeros((L, D), ("layers", "embed"))
        mlp["b_in"] = Init.zeros((L, F), ("layers", "mlp"))
        mlp["b_out"] = Init.zeros((L, D), ("layers", "embed"))
        if shape.activation == "swiglu":
            mlp["b_gate"] = Init.zeros((L, F), ("layers", "mlp"))
    return {"norm1": declare_norm(shape, True), "attn": attn, "norm2": declare_norm(shape, True), "mlp": mlp}


# ----------------------------------------------------------------------------------------------
# Layers


def norm(p: dict, x, shape):
    x32 = x.astype(jnp.float32)
    if shape.norm == "layernorm":
        x32 = x32 - x32.mean(-1, keepdims=True)
    var = jnp.mean(jnp.square(x32), -1, keepdims=True)
    y = x32 * jax.lax.rsqrt(var + shape.norm_eps) * p["scale"]
    if "bias" in p:
        y = y + p["bias"]
    return y.astype(x.dtype)


def rope(x, theta: float):
    """Rotary embedding on (B, T, H, Dh), rotating pairs (i, i + Dh/2) as in GPT-NeoX/Llama."""
    T, Dh = x.shape[1], x.shape[-1]
    freqs = theta ** (-jnp.arange(0, Dh // 2, dtype=jnp.float32) * 2.0 / Dh)
    ang = jnp.arange(T, dtype=jnp.float32)[:, None] * freqs[None, :]
    cos, sin = jnp.cos(ang)[None, :, None, :], jnp.sin(ang)[None, :, None, :]
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x.dtype)


def dropout(x, rate: float, key):
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


def causal_mask(T: int):
    """(T, T) booleans: query i attends to keys j <= i."""
    return jnp.tril(jnp.ones((T, T), dtype=bool))


def attention(p: dict, x, shape, mask, key, ex: Execution):
    """Multi-head self-attention on (B, T, D); `mask` broadcasts to (B, H, T, T), True = attend."""
    dt, fast = ex.compute_dtype, ex.use_cpu_kernels
    qkv = linear(x, p["wqkv"].astype(dt), cpu_kernels=fast)  # (B, T, 3, H, Dh)
    if "bqkv" in p:
        qkv = qkv + p["bqkv"].astype(dt)
    heads = ("activation_batch", "activation_length", "activation_heads", None)
    q, k, v = (ex.shard(qkv[:, :, i], *heads) for i in range(3))
    if shape.positions == "rope":
        q, k = rope(q, shape.rope_theta), rope(k, shape.rope_theta)
    scores = jnp.einsum("bqhe,bkhe->bhqk", q, k).astype(jnp.float32)
    if shape.parametrization == "mup":
        scores = scores * parametrization.attention_scale(shape)  # 8/d_head
    else:
        scores = scores / math.sqrt(shape.head_dim)
    scores = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1)
    k_attn = None if key is None else jax.random.fold_in(key, 1)
    probs = dropout(probs, shape.dropout, k_attn).astype(dt)
    out = ex.shard(jnp.einsum("bhqk,bkhe->bqhe", probs, v), *heads)
    y = linear(out, p["wo"].astype(dt), in_dims=2, cpu_kernels=fast)
    if "bo" in p:
        y = y + p["bo"].astype(dt)
    return y


def mlp(p: dict, x, shape, ex: Execution):
    dt, fast = ex.compute_dtype, ex.use_cpu_kernels
    hidden = ("activation_batch", "activation_length", "activation_mlp")
    h = linear(x, p["w_in"].astype(dt), cpu_kernels=fast)
    if "b_in" in p:
        h = h + p["b_in"].astype(dt)
    if shape.activation == "swiglu":
        g = linear(x, p["w_gate"].astype(dt), cpu_kernels=fast)
        if "b_gate" in p:
            g = g + p["b_gate"].astype(dt)
        h = jax.nn.silu(g) * h
    else:
        h = gelu(h, cpu_kernels=fast)
    h = ex.shard(h, *hidden)
    y = linear(h, p["w_out"].astype(dt), cpu_kernels=fast)
    if "b_out" in p:
        y = y + p["b_out"].astype(dt)
    return y


def mean_abs(x):
    return jnp.mean(jnp.abs(x.astype(jnp.float32)))


def blocks_forward(params, x, shape, mask, ex: Execution, *, dropout_key=None, capture: bool = False,
                   capture_hidden: bool = False):
    """The block stack and final norm on float32 inputs `x` (B, T, D); `params` holds 'blocks' and
    'final_norm'.

    Returns (final-norm hidden states in the compute dtype, per-block activation sizes or None,
    residual streams or None). With `capture`, the mean |x| of each block's attention output,
    MLP output and residual stream, each of shape (depth,) (the muP coordinate check's
    coordinates). With `capture_hidden`, the residual stream after each block, (depth, B, T, D):
    what probes read.
    """
    use_dropout = dropout_key is not None and shape.dropout > 0
    dt = ex.compute_dtype

    def block(x, layer):
        # The residual stream stays float32; only the matmul inputs are cast to the compute dtype.
        p, idx = layer
        k = jax.random.fold_in(dropout_key, idx + 1) if use_dropout else None
        x = ex.shard(x, *RESIDUAL)
        h_attn = attention(p["attn"], norm(p["norm1"], x, shape).astype(dt), shape, mask, k, ex)
        x = x + dropout(h_attn, shape.dropout, None if k is None else jax.random.fold_in(k, 2)).astype(jnp.float32)
        h_mlp = mlp(p["mlp"], norm(p["norm2"], x, shape).astype(dt), shape, ex)
        x = x + dropout(h_mlp, shape.dropout, None if k is None else jax.random.fold_in(k, 3)).astype(jnp.float32)
        ys = {"attn": mean_abs(h_attn), "mlp": mean_abs(h_mlp), "residual": mean_abs(x)} if capture else None
        return x, (ys, x if capture_hidden else None)

    # Fully unrolled scan: one trace per block type (fast compiles), unrolled code (fast steps
    # on CPU, where the per-iteration overhead of a rolled loop is visible at small widths).
    x, (per_block, streams) = jax.lax.scan(block, x, (params["blocks"], jnp.arange(shape.depth)), unroll=True)
    x = ex.shard(x, *RESIDUAL)
    return norm(params["final_norm"], x, shape).astype(dt), per_block, streams
