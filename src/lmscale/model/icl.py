"""Models that read prompts of vectors (the in-context-learning lab's): a GPT-2 transformer with
vector tokens (``model.kind: icl_gpt``) and linear self-attention (``model.kind: icl_lsa``).

**icl_gpt** (Garg et al. 2022): a linear read-in R^{d_tok} -> R^width, learned absolute positions
over the 2k tokens, the pre-LN GPT-2 blocks of `lmscale.model.transformer` (GELU, dropout 0,
causal mask) and a scalar read-out Linear(width, 1) read at the x-token positions, so one causal
pass predicts y_i from the pairs before x_i for every prefix i. There is no token embedding: the
vector read-in takes its place.

**icl_lsa** (von Oswald et al. 2023): tokens e_j = (x_j, y_j) for the k-1 context pairs and a
query e_q = (x_q, 0); each layer e_i <- e_i + sum_h P_h V_h K_h^T q_i with V_h = W_V,h E,
K_h = W_K,h E over the context tokens, q_i = W_Q,h e_i; no softmax, no LayerNorm. The prediction
is minus the query's y entry (the sign of von Oswald's construction). `gd_construction(eta, d, n)`
gives the parameters of exactly one gradient step from w = 0 on (1/2n) sum (w.x_i - y_i)^2.

Batches are ``{"xs": (B, k, d), "ys": (B, k), "mask": (B, k)}`` (the mask optional): the GPT's
loss is the mask-weighted mean squared error over the predicted positions (a curriculum masks
the prefixes beyond its current number of points), the LSA's the squared error at the query.

Prompt token formats (Garg's and Akyürek's: `encode`, `x_positions`, `token_dim`) live here, as
the GPT reads them; `lmscale.icl.prompts` re-exports them with the rest of the lab's prompt code.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
from pydantic import Field, model_validator

from lmscale.config import MAX_CONTEXT, MAX_DEPTH, MAX_HEADS, MAX_WIDTH
from lmscale.errors import LmscaleError
from lmscale.model.base import Init, Model, ModelSpec, Param, Params
from lmscale.model.decoder import DecoderConfig
from lmscale.model.ops import linear
from lmscale.model.registry import register
from lmscale.model.sizing import FLOP_CONVENTION, FlopCount, ParamCount
from lmscale.model.transformer import blocks_forward, causal_mask, declare_blocks, declare_norm

GPT2_VOCAB = 50257  # Garg's counts include GPT-2's unused token embedding (50257 x width)

# ----------------------------------------------------------------------------------------------
# Prompt token formats

FORMATS = ("garg", "akyurek")


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise LmscaleError(f"prompt format {fmt!r}; expected one of {', '.join(FORMATS)}")


def token_dim(d: int, fmt: str) -> int:
    """Width of one token for inputs of dimension d."""
    _check_format(fmt)
    if d < 1:
        raise LmscaleError(f"d={d}; expected an input dimension >= 1")
    return d if fmt == "garg" else d + 1


def y_channel(fmt: str) -> int:
    """The channel of a y-token that holds y (both formats put it first)."""
    _check_format(fmt)
    return 0


def x_positions(k: int):
    """Token indices of x_1..x_k in a prompt of k pairs: 0, 2, ..., 2k-2."""
    import numpy as np

    if k < 1:
        raise LmscaleError(f"k={k}; expected k >= 1 examples per prompt")
    return np.arange(0, 2 * k, 2)


def y_positions(k: int):
    """Token indices of y_1..y_k: 1, 3, ..., 2k-1."""
    return x_positions(k) + 1


def _namespace(a: Any):
    import numpy as np

    return np if isinstance(a, np.ndarray) else jnp


def encode(xs, ys, fmt: Literal["garg", "akyurek"] = "garg"):
    """Interleave x- and y-tokens: (B, k, d), (B, k) -> (B, 2k, token_dim(d, fmt)). NumPy in,
    NumPy out; JAX in, JAX out (inside jit too)."""
    _check_format(fmt)
    if xs.ndim != 3 or ys.ndim != 2 or xs.shape[:2] != ys.shape:
        raise LmscaleError(
            f"encode: xs {tuple(xs.shape)} and ys {tuple(ys.shape)}; expected xs (B, k, d) and ys (B, k)"
        )
    xp = _namespace(xs)
    b, k, d = xs.shape
    dtype = xs.dtype
    ys = ys.astype(dtype)
    if fmt == "garg":
        x_tok = xs
        y_tok = xp.concatenate([ys[..., None], xp.zeros((b, k, d - 1), dtype)], axis=-1)
    else:
        x_tok = xp.concatenate([xp.zeros((b, k, 1), dtype), xs], axis=-1)
        y_tok = xp.concatenate([ys[..., None], xp.zeros((b, k, d), dtype)], axis=-1)
    return xp.stack([x_tok, y_tok], axis=2).reshape(b, 2 * k, x_tok.shape[-1])


def decode(tokens, fmt: Literal["garg", "akyurek"] = "garg"):
    """Inverse of `encode`: (B, 2k, token_dim) -> (xs (B, k, d), ys (B, k))."""
    _check_format(fmt)
    if tokens.ndim != 3 or tokens.shape[1] % 2:
        raise LmscaleError(f"decode: tokens {tuple(tokens.shape)}; expected (B, 2k, token_dim)")
    x_tok, y_tok = tokens[:, 0::2], tokens[:, 1::2]
    xs = x_tok if fmt == "garg" else x_tok[..., 1:]
    return xs, y_tok[..., y_channel(fmt)]


def _prompt(inputs) -> tuple[Any, Any]:
    """(xs, ys) of a batch mapping or an (xs, ys) pair."""
    if isinstance(inputs, dict):
        return inputs["xs"], inputs["ys"]
    return inputs


class Forward(NamedTuple):
    pred: jax.Array  # (B, k) for the GPT (prediction for y_i from the pairs before x_i); (B, 1) for the LSA
    hidden: jax.Array | None  # GPT with capture_hidden: (depth + 1, B, 2k, width) residual streams (read-in output first)


# ----------------------------------------------------------------------------------------------
# Parameter draws


class StableInit(Init):
    """`Init` whose normal draws round the same jitted and eager: ``std * z`` with the standard normal
    z behind an optimization barrier. Without it XLA folds std into the sampler's own constant
    multiply under jit (``z * sqrt(2) * std``), which moves about a third of the entries by one ulp
    (measured: jit(init) vs init at std 0.02); the training core jits init, the lab's models were
    initialised eagerly, and with the barrier both are bitwise the lab's inits of before the port."""

    def normal(self, name: str, shape, axes, std: float) -> Param:
        z = jax.lax.optimization_barrier(jax.random.normal(self._key(name), tuple(shape), jnp.float32))
        return Param(std * z, axes)


# ----------------------------------------------------------------------------------------------
# The vector-token GPT (Garg et al. 2022)


class ICLGPTConfig(ModelSpec):
    """The vector-token GPT: GPT-2 blocks between a linear read-in and a scalar read-out."""

    kind: Literal["icl_gpt"] = "icl_gpt"
    depth: int = Field(3, gt=0, le=MAX_DEPTH, description="transformer blocks")
    width: int = Field(64, gt=0, le=MAX_WIDTH, description="residual width (n_embd)")
    heads: int = Field(2, gt=0, le=MAX_HEADS, description="attention heads; width must divide by it")
    mlp_ratio: float = Field(4.0, gt=0, le=64)
    init_std: float = Field(0.02, gt=0, description="N(0, init_std) init of the GPT-2 blocks and positions")
    read_init: Literal["torch", "normal"] = Field(
        "torch",
        description="read-in/read-out init: 'torch' U(+-1/sqrt(fan_in)) weights and biases, 'normal' N(0, init_std), zero biases"
    )
    format: Literal["garg", "akyurek"] = Field("garg", description="prompt token format")
    d: int = Field(..., gt=0, le=MAX_WIDTH, description="input dimension of the x's")
    n_points: int = Field(..., gt=0, le=MAX_CONTEXT // 2, description="examples per prompt k (positions cover 2k tokens)")

    @model_validator(mode="after")
    def _consistent(self) -> "ICLGPTConfig":
        if self.width % self.heads:
            raise ValueError(f"model.width={self.width} is not divisible by model.heads={self.heads}")
        if int(round(self.width * self.mlp_ratio)) < 1:
            raise ValueError(f"model.mlp_ratio={self.mlp_ratio} gives an empty MLP; expected width*mlp_ratio >= 1")
        return self

    @property
    def token_dim(self) -> int:
        return token_dim(self.d, self.format)

    @property
    def context(self) -> int:
        return 2 * self.n_points

    def blocks_shape(self) -> DecoderConfig:
        """The shape of the GPT-2 blocks (LayerNorm, GELU, biases, no dropout, SP), as a decoder config."""
        return DecoderConfig(depth=self.depth, width=self.width, heads=self.heads, mlp_ratio=self.mlp_ratio,
                             context=self.context, vocab_size=1, init_std=self.init_std, dropout=0.0)


def _read_layer(init: Init, name: str, fan_in: int, fan_out: int, cfg: ICLGPTConfig, axes) -> dict:
    """The read-in/read-out Linear. 'torch' (default) is nn.Linear's U(+-1/sqrt(fan_in)), as in Garg's
    code, where these layers sit outside GPT2Model's N(0, 0.02) init: the read-in's weights are then
    ~13x larger at d = 5, and with N(0, 0.02) the inputs start buried under the position embeddings.
    Measured (configs/icl/garg-linear.yaml, seed 0, 20k steps): normalised error at k = 2d 0.041
    with 'torch', 0.102 with 'normal'."""
    w_axes, b_axes = axes
    if cfg.read_init == "normal":
        return {"w": init.normal(f"{name}.w", (fan_in, fan_out), w_axes, cfg.init_std), "b": Init.zeros((fan_out,), b_axes)}
    bound = 1.0 / math.sqrt(fan_in)
    return {"w": init.uniform(f"{name}.w", (fan_in, fan_out), w_axes, -bound, bound),
            "b": init.uniform(f"{name}.b", (fan_out,), b_axes, -bound, bound)}


@register
class ICLGPT(Model):
    kind = "icl_gpt"
    Config = ICLGPTConfig

    def __init__(self, cfg: ICLGPTConfig, execution=None):
        super().__init__(cfg, execution)
        self.shape = cfg.blocks_shape()

    def declare(self, key: jax.Array) -> dict:
        cfg, shape = self.cfg, self.shape
        init = StableInit(key)
        D = cfg.width
        return {
            "embed": {"positions": init.normal("embed.positions", (cfg.context, D), ("context", "embed"), cfg.init_std)},
            "blocks": declare_blocks(init, shape),
            "final_norm": declare_norm(shape, stacked=False),
            "read_in": _read_layer(init, "read_in", cfg.token_dim, D, cfg, (("vocab", "embed"), ("embed",))),
            "read_out": _read_layer(init, "read_out", D, 1, cfg, (("embed", "vocab"), ("vocab",))),
        }

    def forward(self, params: Params, xs, ys, capture_hidden: bool = False) -> Forward:
        """Predictions for every prefix of prompts (xs (B, k, d), ys (B, k)); optionally the residual streams."""
        cfg, ex = self.cfg, self.execution
        fast = ex.cpu_kernels
        tokens = encode(xs, ys, cfg.format)
        T = tokens.shape[1]
        if T > cfg.context:
            raise ValueError(f"prompts of {T // 2} points exceed model.n_points={cfg.n_points}")
        h0 = linear(tokens, params["read_in"]["w"], cpu_kernels=fast) + params["read_in"]["b"] + params["embed"]["positions"][:T]
        h, _, streams = blocks_forward(params, h0, self.shape, causal_mask(T), ex, capture_hidden=capture_hidden)
        out = linear(h, params["read_out"]["w"].astype(h.dtype), cpu_kernels=fast)[..., 0].astype(jnp.float32)
        out = out + params["read_out"]["b"][0]
        pred = out[:, jnp.asarray(x_positions(xs.shape[1]))]
        hidden = jnp.concatenate([h0[None], streams], axis=0) if capture_hidden else None
        return Forward(pred, hidden)

    def apply(self, params: Params, inputs, *, rng=None):
        """(B, k) predictions for prompts ``{"xs", "ys"}`` (or an (xs, ys) pair): y_i from the pairs before x_i."""
        del rng  # no dropout
        xs, ys = _prompt(inputs)
        return self.forward(params, xs, ys).pred

    def loss(self, params: Params, batch, rng=None):
        """Mean squared error (y units²) over the predicted positions, weighted by ``batch["mask"]``."""
        err = jnp.square(self.apply(params, batch) - batch["ys"])
        mask = batch.get("mask") if isinstance(batch, dict) else None
        if mask is None:
            return err.mean(), {}
        return jnp.sum(err * mask) / jnp.sum(mask), {}

    def param_count(self) -> ParamCount:
        cfg = self.cfg
        L, D, F, T, d_tok = cfg.depth, cfg.width, self.shape.mlp_hidden, cfg.context, cfg.token_dim
        norm = 2 * D  # LayerNorm scale + bias
        blocks = L * (2 * norm + 4 * D * D + 4 * D + 2 * D * F + F + D)
        read = (d_tok * D + D) + (D + 1)
        non_embedding = blocks + norm + read
        return ParamCount(total=non_embedding + T * D, non_embedding=non_embedding, embedding=T * D)

    def param_count_garg(self) -> int:
        """Garg et al.'s convention: every parameter plus GPT-2's unused token embedding (50257 x width)."""
        return self.param_count().total + GPT2_VOCAB * self.cfg.width

    def flop_count(self, seq_len: int | None = None) -> FlopCount:
        """Per token of the 2k-token prompt: 6 x the matmul parameters (blocks, read-in, read-out) plus attention."""
        cfg = self.cfg
        T = seq_len or cfg.context
        D, F, d_tok = cfg.width, self.shape.mlp_hidden, cfg.token_dim
        matmul = cfg.depth * (4 * D * D + 2 * D * F) + d_tok * D + D
        attention = 12.0 * cfg.depth * T * D
        return FlopCount(per_token=6.0 * matmul + attention, per_token_causal=6.0 * matmul + attention / 2,
                         matmul_params=matmul, attention=attention, convention=FLOP_CONVENTION)


# ----------------------------------------------------------------------------------------------
# Linear self-attention (von Oswald et al. 2023)


class ICLLSAConfig(ModelSpec):
    """von Oswald's linear self-attention on tokens (x, y) of dimension d + 1."""

    kind: Literal["icl_lsa"] = "icl_lsa"
    d: int = Field(..., gt=0, le=MAX_WIDTH, description="input dimension of the x's (tokens have d + 1 entries)")
    depth: int = Field(1, gt=0, le=MAX_DEPTH, description="LSA layers")
    heads: int = Field(1, gt=0, le=MAX_HEADS, description="attention heads per layer")
    init_std: float = Field(0.002, gt=0, description="N(0, init_std / depth) init (von Oswald: 0.002/L)")
    key_size: int | None = Field(None, gt=0, le=MAX_WIDTH, description="key/query size (default: the token size d + 1)")

    @property
    def token_size(self) -> int:
        return self.d + 1

    @property
    def key_dim(self) -> int:
        return self.key_size or self.token_size


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


@register
class ICLLSA(Model):
    kind = "icl_lsa"
    Config = ICLLSAConfig

    def declare(self, key: jax.Array) -> dict:
        cfg = self.cfg
        init = StableInit(key)
        L, H, e, dk = cfg.depth, cfg.heads, cfg.token_size, cfg.key_dim
        std = cfg.init_std / cfg.depth
        axes = ("layers", "heads", "embed", "head_dim")
        return {
            "wq": init.normal("lsa.wq", (L, H, e, dk), axes, std),
            "wk": init.normal("lsa.wk", (L, H, e, dk), axes, std),
            "wv": init.normal("lsa.wv", (L, H, e, e), axes, std),
            "proj": init.normal("lsa.proj", (L, H, e, e), axes, std),
        }

    def forward(self, params: Params, xs, ys, capture_hidden: bool = False) -> Forward:
        """The query's prediction (B, 1) for prompts whose last pair is the query (its y unused)."""
        if capture_hidden:
            raise LmscaleError("hidden states are read from the GPT's residual stream; expected model.kind='gpt'")
        return Forward(lsa_predict(params, xs[:, :-1], ys[:, :-1], xs[:, -1]), None)

    def apply(self, params: Params, inputs, *, rng=None):
        """(B, 1): the prediction for the last x of each prompt from the pairs before it."""
        del rng
        xs, ys = _prompt(inputs)
        return self.forward(params, xs, ys).pred

    def loss(self, params: Params, batch, rng=None):
        """Squared error (y units²) at the query, averaged over the prompts (the mask is not used)."""
        pred = self.apply(params, batch)
        return jnp.mean(jnp.square(pred[:, 0] - batch["ys"][:, -1])), {}

    def param_count(self) -> ParamCount:
        cfg = self.cfg
        e, dk = cfg.token_size, cfg.key_dim
        total = cfg.depth * cfg.heads * (2 * e * dk + 2 * e * e)
        return ParamCount(total=total, non_embedding=total, embedding=0)

    def param_count_garg(self) -> int:
        """No token embedding to add: the same as the total."""
        return self.param_count().total

    def flop_count(self, seq_len: int | None = None) -> FlopCount:
        """6 x the parameters per token (every weight is a matmul); the linear attention's k x k
        score products are not counted."""
        n = self.param_count().total
        return FlopCount(per_token=6.0 * n, per_token_causal=6.0 * n, matmul_params=n, attention=0.0,
                         convention="6*N per token (weight matrices only; linear attention's score products not counted)")
