"""A decoder-only transformer as pure functions over a params pytree.

``init(cfg, key) -> (params, axes)``: params are nested dicts of float32 arrays; ``axes`` has the
same structure with a `PartitionSpec` of *logical* axis names per parameter ('layers', 'vocab',
'embed', 'heads', 'head_dim', 'mlp', 'qkv', 'context'), which `lmscale.parallel` maps to mesh
axes. Blocks are stacked along a leading 'layers' axis and applied with `lax.scan`.

``apply(params, tokens, cfg, ...) -> logits``: pre-norm blocks (LayerNorm or RMSNorm), causal
self-attention with learned or rotary positions, GELU or SwiGLU MLP, tied or untied readout,
optional dropout. Matmuls run in `compute_dtype`; norms, softmax and the loss stay in float32.

``cfg.parametrization`` picks SP (GPT-2, the default) or muP; what muP changes — init scales,
the embedding/logit multipliers and the attention scale — is tabulated in
`lmscale.model.parametrization`. Under SP the computation is exactly the one without muP.
"""

from __future__ import annotations

import math
import zlib

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from lmscale.config import ModelConfig
from lmscale.model import parametrization
from lmscale.model.ops import gelu, linear

Params = dict
INIT_STREAM = 0x1417  # parameter init keys: fold_in(key(seed), INIT_STREAM)


def _normal(key, name: str, shape, std: float):
    k = jax.random.fold_in(key, zlib.crc32(name.encode()))
    return std * jax.random.normal(k, shape, jnp.float32)


def init(cfg: ModelConfig, key: jax.Array) -> tuple[Params, dict]:
    """GPT-2 initialisation: N(0, init_std) matrices, residual projections scaled by 1/sqrt(2L).

    Under muP the same draws are then rescaled once by role (hidden matrices by 1/sqrt(m), the
    untied readout to zero unless `mup_zero_readout` is false; `parametrization.rescale_init`).
    """
    if cfg.vocab_size is None:
        raise ValueError("model.vocab_size must be resolved (from the tokenizer) before init")
    L, D, H, Dh, F, V, T = cfg.depth, cfg.width, cfg.heads, cfg.head_dim, cfg.mlp_hidden, cfg.vocab_size, cfg.context
    std, std_out = cfg.init_std, cfg.init_std / math.sqrt(2 * L)
    zeros, ones = jnp.zeros, jnp.ones
    params: dict = {"embed": {"tokens": _normal(key, "embed.tokens", (V, D), std)}}
    axes: dict = {"embed": {"tokens": P("vocab", "embed")}}
    if cfg.positions == "learned":
        params["embed"]["positions"] = _normal(key, "embed.positions", (T, D), std)
        axes["embed"]["positions"] = P("context", "embed")

    def norm(stacked: bool):
        lead = (L,) if stacked else ()
        lax_ = ("layers",) if stacked else ()
        p = {"scale": ones(lead + (D,))}
        a = {"scale": P(*lax_, "embed")}
        if cfg.norm == "layernorm" and cfg.bias:
            p["bias"], a["bias"] = zeros(lead + (D,)), P(*lax_, "embed")
        return p, a

    attn = {
        "wqkv": _normal(key, "attn.wqkv", (L, D, 3, H, Dh), std),
        "wo": _normal(key, "attn.wo", (L, H, Dh, D), std_out),
    }
    attn_axes = {"wqkv": P("layers", "embed", "qkv", "heads", "head_dim"), "wo": P("layers", "heads", "head_dim", "embed")}
    mlp = {"w_in": _normal(key, "mlp.w_in", (L, D, F), std), "w_out": _normal(key, "mlp.w_out", (L, F, D), std_out)}
    mlp_axes = {"w_in": P("layers", "embed", "mlp"), "w_out": P("layers", "mlp", "embed")}
    if cfg.activation == "swiglu":
        mlp["w_gate"], mlp_axes["w_gate"] = _normal(key, "mlp.w_gate", (L, D, F), std), P("layers", "embed", "mlp")
    if cfg.bias:
        attn["bqkv"], attn_axes["bqkv"] = zeros((L, 3, H, Dh)), P("layers", "qkv", "heads", "head_dim")
        attn["bo"], attn_axes["bo"] = zeros((L, D)), P("layers", "embed")
        mlp["b_in"], mlp_axes["b_in"] = zeros((L, F)), P("layers", "mlp")
        mlp["b_out"], mlp_axes["b_out"] = zeros((L, D)), P("layers", "embed")
        if cfg.activation == "swiglu":
            mlp["b_gate"], mlp_axes["b_gate"] = zeros((L, F)), P("layers", "mlp")
    n1, n1a = norm(True)
    n2, n2a = norm(True)
    params["blocks"] = {"norm1": n1, "attn": attn, "norm2": n2, "mlp": mlp}
    axes["blocks"] = {"norm1": n1a, "attn": attn_axes, "norm2": n2a, "mlp": mlp_axes}
    params["final_norm"], axes["final_norm"] = norm(False)
    if not cfg.tie_embeddings:
        params["unembed"] = {"w": _normal(key, "unembed.w", (D, V), std)}
        axes["unembed"] = {"w": P("embed", "vocab")}
    return parametrization.rescale_init(params, axes, cfg), axes


# ----------------------------------------------------------------------------------------------
# Forward pass


def _norm(p: dict, x, cfg: ModelConfig):
    x32 = x.astype(jnp.float32)
    if cfg.norm == "layernorm":
        mean = x32.mean(-1, keepdims=True)
        x32 = x32 - mean
    var = jnp.mean(jnp.square(x32), -1, keepdims=True)
    y = x32 * jax.lax.rsqrt(var + cfg.norm_eps) * p["scale"]
    if "bias" in p:
        y = y + p["bias"]
    return y.astype(x.dtype)


def _rope(x, theta: float):
    """Rotary embedding on (B, T, H, Dh), rotating pairs (i, i + Dh/2) as in GPT-NeoX/Llama."""
    T, Dh = x.shape[1], x.shape[-1]
    freqs = theta ** (-jnp.arange(0, Dh // 2, dtype=jnp.float32) * 2.0 / Dh)
    ang = jnp.arange(T, dtype=jnp.float32)[:, None] * freqs[None, :]
    cos, sin = jnp.cos(ang)[None, :, None, :], jnp.sin(ang)[None, :, None, :]
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x.dtype)


def _dropout(x, rate: float, key):
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


def _attention(p: dict, x, cfg: ModelConfig, key, dtype):
    qkv = linear(x, p["wqkv"].astype(dtype))  # (B, T, 3, H, Dh)
    if "bqkv" in p:
        qkv = qkv + p["bqkv"].astype(dtype)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    if cfg.positions == "rope":
        q, k = _rope(q, cfg.rope_theta), _rope(k, cfg.rope_theta)
    T = x.shape[1]
    scores = jnp.einsum("bqhe,bkhe->bhqk", q, k).astype(jnp.float32)
    if cfg.parametrization == "mup":
        scores = scores * parametrization.attention_scale(cfg)  # 8/d_head
    else:
        scores = scores / math.sqrt(cfg.head_dim)
    causal = jnp.tril(jnp.ones((T, T), dtype=bool))
    scores = jnp.where(causal, scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1)
    k_attn = None if key is None else jax.random.fold_in(key, 1)
    probs = _dropout(probs, cfg.dropout, k_attn).astype(dtype)
    out = jnp.einsum("bhqk,bkhe->bqhe", probs, v)
    y = linear(out, p["wo"].astype(dtype), in_dims=2)
    if "bo" in p:
        y = y + p["bo"].astype(dtype)
    return y


def _mlp(p: dict, x, cfg: ModelConfig, dtype):
    h = linear(x, p["w_in"].astype(dtype))
    if "b_in" in p:
        h = h + p["b_in"].astype(dtype)
    if cfg.activation == "swiglu":
        g = linear(x, p["w_gate"].astype(dtype))
        if "b_gate" in p:
            g = g + p["b_gate"].astype(dtype)
        h = jax.nn.silu(g) * h
    else:
        h = gelu(h)
    y = linear(h, p["w_out"].astype(dtype))
    if "b_out" in p:
        y = y + p["b_out"].astype(dtype)
    return y


def hidden_states(params: Params, tokens, cfg: ModelConfig, *, dropout_key=None, compute_dtype=jnp.float32):
    """Final-norm hidden states (B, T, D). `dropout_key=None` means evaluation mode."""
    return _forward(params, tokens, cfg, dropout_key, compute_dtype, capture=False)[0]


def _mean_abs(x):
    return jnp.mean(jnp.abs(x.astype(jnp.float32)))


def _forward(params: Params, tokens, cfg: ModelConfig, dropout_key, compute_dtype, capture: bool):
    """(final-norm hidden states, activation sizes or None). With `capture`, also the mean |x| of
    the embedding output and, per block, of the attention output, the MLP output and the residual
    stream (shape (depth,)): the coordinates `lmscale.model.coord_check` follows across widths."""
    T = tokens.shape[1]
    if T > cfg.context:
        raise ValueError(f"sequence length {T} exceeds model.context={cfg.context}")
    use_dropout = dropout_key is not None and cfg.dropout > 0
    x = jnp.take(params["embed"]["tokens"], tokens, axis=0)
    if cfg.positions == "learned":
        x = x + params["embed"]["positions"][:T]
    alpha_in = parametrization.input_multiplier(cfg)
    if alpha_in is not None:
        x = x * alpha_in
    x = _dropout(x, cfg.dropout, jax.random.fold_in(dropout_key, 0) if use_dropout else None)
    stats = {"embedding": _mean_abs(x)} if capture else None
    h, per_block, _ = blocks_forward(params, x, cfg, dropout_key=dropout_key, compute_dtype=compute_dtype, capture=capture)
    if capture:
        stats.update(per_block)
    return h, stats


def blocks_forward(
    params: Params, x, cfg: ModelConfig, *, dropout_key=None, compute_dtype=jnp.float32, capture: bool = False,
    capture_hidden: bool = False,
):
    """The block stack and final norm on given float32 embeddings `x` (B, T, D).

    Returns (final-norm hidden states, per-block activation sizes or None, residual streams or
    None). With `capture_hidden`, the residual stream after each block, shape (depth, B, T, D):
    what probes read (lmscale.icl feeds vector embeddings here instead of token embeddings).
    """
    use_dropout = dropout_key is not None and cfg.dropout > 0
    dt = compute_dtype

    def block(x, layer):
        # The residual stream stays float32; only the matmul inputs are cast to `compute_dtype`.
        p, idx = layer
        k = jax.random.fold_in(dropout_key, idx + 1) if use_dropout else None
        h_attn = _attention(p["attn"], _norm(p["norm1"], x, cfg).astype(dt), cfg, k, dt)
        x = x + _dropout(h_attn, cfg.dropout, None if k is None else jax.random.fold_in(k, 2)).astype(jnp.float32)
        h_mlp = _mlp(p["mlp"], _norm(p["norm2"], x, cfg).astype(dt), cfg, dt)
        x = x + _dropout(h_mlp, cfg.dropout, None if k is None else jax.random.fold_in(k, 3)).astype(jnp.float32)
        ys = {"attn": _mean_abs(h_attn), "mlp": _mean_abs(h_mlp), "residual": _mean_abs(x)} if capture else None
        return x, (ys, x if capture_hidden else None)

    # Fully unrolled scan: one trace per block type (fast compiles), unrolled code (fast steps
    # on CPU, where the per-iteration overhead of a rolled loop is visible at small widths).
    x, (per_block, streams) = jax.lax.scan(block, x, (params["blocks"], jnp.arange(cfg.depth)), unroll=True)
    return _norm(params["final_norm"], x, cfg).astype(dt), per_block, streams


def readout(params: Params, h, cfg: ModelConfig):
    w = params["embed"]["tokens"].T if cfg.tie_embeddings else params["unembed"]["w"]
    logits = linear(h, w.astype(h.dtype)).astype(jnp.float32)
    mult = parametrization.logit_multiplier(cfg)  # muP: alpha_out / m, in float32 after the matmul
    return logits if mult is None else logits * mult


def apply(params: Params, tokens, cfg: ModelConfig, *, dropout_key=None, compute_dtype=jnp.float32):
    """Logits (B, T, vocab) in float32 for integer `tokens` (B, T)."""
    return readout(params, hidden_states(params, tokens, cfg, dropout_key=dropout_key, compute_dtype=compute_dtype), cfg)


def apply_with_stats(params: Params, tokens, cfg: ModelConfig, *, compute_dtype=jnp.float32):
    """(logits, activation sizes): `apply` in evaluation mode that also returns the mean |x| of each
    activation type (see `_forward`), plus 'logits'. Used by the muP coordinate check."""
    h, stats = _forward(params, tokens, cfg, None, compute_dtype, capture=True)
    logits = readout(params, h, cfg)
    return logits, stats | {"logits": _mean_abs(logits)}


def token_losses(params: Params, batch, cfg: ModelConfig, *, dropout_key=None, compute_dtype=jnp.float32):
    """Per-token cross-entropy in nats, shape (B, T), for windows `batch` of shape (B, T+1)."""
    inputs, targets = batch[:, :-1], batch[:, 1:]
    logits = apply(params, inputs, cfg, dropout_key=dropout_key, compute_dtype=compute_dtype)
    logz = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return logz - picked


def loss_fn(params: Params, batch, cfg: ModelConfig, *, dropout_key=None, compute_dtype=jnp.float32):
    """Mean next-token cross-entropy in nats/token."""
    return token_losses(params, batch, cfg, dropout_key=dropout_key, compute_dtype=compute_dtype).mean()
