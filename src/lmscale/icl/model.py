"""Models that read prompts of vectors: a GPT-2 transformer with vector tokens, and linear self-attention.

**gpt** (Garg et al. 2022): a linear read-in R^{d_tok} -> R^width, learned absolute positions over
the 2k tokens, the foundation's pre-LN GPT-2 blocks (`lmscale.model.transformer.blocks_forward`,
GELU, dropout 0) and a scalar read-out Linear(width, 1) read at the x-token positions, so one
causal pass predicts y_i from the pairs before x_i for every prefix i. Parameters follow the
foundation's `init` conventions (a logical-axes `PartitionSpec` per parameter); the token
embedding is dropped, the vector read-in takes its place.

**lsa** (von Oswald et al. 2023): tokens e_j = (x_j, y_j) for the k-1 context pairs and a query
e_q = (x_q, 0); each layer e_i <- e_i + sum_h P_h V_h K_h^T q_i with V_h = W_V,h E, K_h = W_K,h E
over the context tokens, q_i = W_Q,h e_i; no softmax, no LayerNorm. The prediction is minus the
query's y entry (the sign of von Oswald's construction). `gd_construction(eta, d, n)` gives the
parameters of exactly one gradient step from w = 0 on (1/2n) sum (w.x_i - y_i)^2 with step eta.
"""

from __future__ import annotations

import json
import math
import zlib
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from lmscale.config import ModelConfig
from lmscale.icl.config import ICLConfig
from lmscale.model import transformer
from lmscale.model.ops import linear

GPT2_VOCAB = 50257  # Garg's counts include GPT-2's unused token embedding (50257 x width)


def foundation_config(cfg: ICLConfig) -> ModelConfig:
    """The foundation `ModelConfig` of the GPT blocks (positions over the 2k tokens of a prompt)."""
    m = cfg.model
    return ModelConfig(
        depth=m.depth, width=m.width, heads=m.heads, mlp_ratio=m.mlp_ratio, context=2 * cfg.n_points,
        vocab_size=1, init_std=m.init_std, dropout=0.0,
    )


def _normal(key, name: str, shape, std: float):
    return std * jax.random.normal(jax.random.fold_in(key, zlib.crc32(name.encode())), shape, jnp.float32)


def _read_layer(key, name: str, fan_in: int, fan_out: int, m) -> dict:
    """The read-in/read-out Linear. 'torch' (default) is nn.Linear's U(+-1/sqrt(fan_in)), as in Garg's
    code, where these layers sit outside GPT2Model's N(0, 0.02) init: the read-in's weights are then
    ~13x larger at d = 5, and with N(0, 0.02) the inputs start buried under the position embeddings.
    Measured (configs/icl/garg-linear.yaml, seed 0, 20k steps): normalised error at k = 2d 0.041
    with 'torch', 0.102 with 'normal'."""
    if m.read_init == "normal":
        return {"w": _normal(key, f"{name}.w", (fan_in, fan_out), m.init_std), "b": jnp.zeros((fan_out,))}
    bound = 1.0 / math.sqrt(fan_in)
    return {
        k: jax.random.uniform(jax.random.fold_in(key, zlib.crc32(f"{name}.{k}".encode())), shape, jnp.float32, -bound, bound)
        for k, shape in (("w", (fan_in, fan_out)), ("b", (fan_out,)))
    }


def init(cfg: ICLConfig, key: jax.Array) -> tuple[dict, dict]:
    """(params, logical axes) for `cfg.model.kind`."""
    from lmscale.icl.prompts import token_dim

    m = cfg.model
    if m.kind == "lsa":
        return _init_lsa(cfg, key)
    params, axes = transformer.init(foundation_config(cfg), key)
    del params["embed"]["tokens"], axes["embed"]["tokens"]
    d_tok = token_dim(cfg.task.d, cfg.format)
    params["read_in"] = _read_layer(key, "read_in", d_tok, m.width, m)
    axes["read_in"] = {"w": P("vocab", "embed"), "b": P("embed")}
    params["read_out"] = _read_layer(key, "read_out", m.width, 1, m)
    axes["read_out"] = {"w": P("embed", "vocab"), "b": P("vocab")}
    return params, axes


def param_axes(cfg: ICLConfig) -> dict:
    """The logical axes of `init(cfg)`'s parameters, from tracing alone (nothing is drawn or compiled)."""
    box: dict = {}

    def build(key):
        params, box["axes"] = init(cfg, key)
        return params

    jax.eval_shape(build, jax.random.key(0))
    return box["axes"]


def _init_lsa(cfg: ICLConfig, key) -> tuple[dict, dict]:
    m, e = cfg.model, cfg.task.d + 1
    dk = m.lsa_key_size or e
    std = m.lsa_init_std / m.depth
    L, H = m.depth, m.heads
    params = {
        "wq": _normal(key, "lsa.wq", (L, H, e, dk), std),
        "wk": _normal(key, "lsa.wk", (L, H, e, dk), std),
        "wv": _normal(key, "lsa.wv", (L, H, e, e), std),
        "proj": _normal(key, "lsa.proj", (L, H, e, e), std),
    }
    spec = P("layers", "heads", "embed", "head_dim")
    return params, {k: spec for k in params}


class Forward(NamedTuple):
    pred: jax.Array  # (B, k): the prediction for y_i from pairs before x_i
    hidden: jax.Array | None  # gpt: (depth + 1, B, 2k, width) residual streams (read-in output first)


def forward(params: dict, xs, ys, cfg: ICLConfig, capture_hidden: bool = False) -> Forward:
    """Predictions for every prefix of prompts (xs (B, k, d), ys (B, k)); optionally hidden states."""
    if cfg.model.kind == "lsa":
        return Forward(lsa_predict(params, xs[:, :-1], ys[:, :-1], xs[:, -1]), None)
    from lmscale.icl.prompts import encode, x_positions

    tokens = encode(xs, ys, cfg.format)
    T = tokens.shape[1]
    h0 = linear(tokens, params["read_in"]["w"]) + params["read_in"]["b"] + params["embed"]["positions"][:T]
    h, _, streams = transformer.blocks_forward(params, h0, foundation_config(cfg), capture_hidden=capture_hidden)
    out = linear(h, params["read_out"]["w"])[..., 0] + params["read_out"]["b"][0]
    pred = out[:, jnp.asarray(x_positions(xs.shape[1]))]
    hidden = jnp.concatenate([h0[None], streams], axis=0) if capture_hidden else None
    return Forward(pred, hidden)


def predict(params: dict, xs, ys, cfg: ICLConfig):
    """(B, k) predictions (gpt: every prefix; lsa: (B, 1), the query's)."""
    return forward(params, xs, ys, cfg).pred


_COMPILED: dict[tuple, Any] = {}


def model_key(cfg: ICLConfig) -> str:
    """What fixes the model's function (not its data or training): model section, format, k, d."""
    return json.dumps({"model": cfg.model.model_dump(mode="json"), "format": cfg.format, "n": cfg.n_points, "d": cfg.task.d},
                      sort_keys=True)


def compiled(key: tuple, make: Callable[[], Callable]) -> Callable:
    """`jax.jit(make())`, once per `key` in this process: evaluation, ILWD, probes and sweeps call
    the same model many times, and a fresh jitted closure per call would recompile every time."""
    if key not in _COMPILED:
        _COMPILED[key] = jax.jit(make())
    return _COMPILED[key]


def predict_jit(cfg: ICLConfig) -> Callable:
    """The compiled `predict(params, xs, ys)` of `cfg`'s model (shared by every config with its `model_key`)."""
    return compiled(("predict", model_key(cfg)), lambda: lambda p, x, y: predict(p, x, y, cfg))


# ----------------------------------------------------------------------------------------------
# Linear self-attention (von Oswald et al. 2023)


def lsa_layer(p: dict, e, n_ctx: int):
    """One LSA layer on tokens e (B, n_ctx + 1, d+1); keys and values from the context tokens."""
    ctx = e[:, :n_ctx]
    q = jnp.einsum("bie,hek->bhik", e, p["wq"])
    k = jnp.einsum("bje,hek->bhjk", ctx, p["wk"])
    v = jnp.einsum("bje,hef->bhjf", ctx, p["wv"])
    scores = jnp.einsum("bhik,bhjk->bhij", q, k)  # linear: no softmax
    out = jnp.einsum("bhij,bhjf->bhif", scores, v)
    return e + jnp.einsum("bhif,hfe->bie", out, p["proj"])


def lsa_tokens(ctx_xs, ctx_ys, query_xs):
    ctx = jnp.concatenate([ctx_xs, ctx_ys[..., None]], axis=-1)
    q = jnp.concatenate([query_xs, jnp.zeros(query_xs.shape[:-1] + (1,), query_xs.dtype)], axis=-1)
    return jnp.concatenate([ctx, q[:, None]], axis=1)


def lsa_predict(params: dict, ctx_xs, ctx_ys, query_xs):
    """(B, 1): minus the query token's y entry after the layers of `params` (leading axis)."""
    e = lsa_tokens(ctx_xs, ctx_ys, query_xs)
    n_ctx = ctx_xs.shape[1]
    for layer in range(params["wq"].shape[0]):  # the params' depth (indexing past it would clamp)
        e = lsa_layer(jax.tree.map(lambda a: a[layer], params), e, n_ctx)
    return -e[:, -1:, -1]


def gd_construction(eta: float, d: int, n: int) -> dict:
    """One-layer, one-head LSA parameters computing one GD step from w = 0 with step `eta` on
    (1/2n) sum_i (w.x_i - y_i)^2, i.e. y_hat = (eta/n) sum_i y_i x_i.x_q (von Oswald Prop. 1:
    W_K = W_Q = [[I, 0], [0, 0]], W_V = [[0, 0], [0, -1]], P = (eta/n) I)."""
    e = d + 1
    wkq = jnp.zeros((e, e)).at[:d, :d].set(jnp.eye(d))
    wv = jnp.zeros((e, e)).at[d, d].set(-1.0)
    proj = (eta / n) * jnp.eye(e)
    return {k: v[None, None] for k, v in {"wq": wkq, "wk": wkq, "wv": wv, "proj": proj}.items()}


# ----------------------------------------------------------------------------------------------
# Sizes


class ICLParamCount(NamedTuple):
    total: int  # every parameter of this model
    garg_convention: int  # + GPT-2's unused token embedding (50257 x width), as Garg et al. count


def count_params(cfg: ICLConfig) -> ICLParamCount:
    shapes = jax.eval_shape(lambda: init(cfg, jax.random.key(0))[0])
    total = sum(math.prod(s.shape) for s in jax.tree.leaves(shapes))
    extra = GPT2_VOCAB * cfg.model.width if cfg.model.kind == "gpt" else 0
    return ICLParamCount(total, total + extra)
