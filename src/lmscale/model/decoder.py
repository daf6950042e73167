"""The decoder-only transformer (``model.kind: decoder``, the default): GPT-2 and its variants.

Token embedding (plus learned positions, or rotary positions in attention), the pre-norm blocks of
`lmscale.model.transformer` under a causal mask, a final norm and a tied or untied readout.
Options: LayerNorm or RMSNorm, GELU or SwiGLU, biases, dropout, and the standard (SP) or
maximal-update (muP) parametrisation, whose changes (init scales, embedding/logit multipliers,
attention scale) are tabulated in `lmscale.model.parametrization`; under SP the computation is
exactly the one without muP.

Batches are token windows (B, T + 1) (inputs [:, :-1], targets [:, 1:]), as an array or as
``{"tokens": windows}`` with an optional ``"loss_mask"`` (B, T) of target weights (the loss is then
the mask-weighted mean).
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import jax.numpy as jnp
from pydantic import Field, model_validator

from lmscale.config import MAX_CONTEXT, MAX_DEPTH, MAX_HEADS, MAX_VOCAB, MAX_WIDTH
from lmscale.model import parametrization
from lmscale.model.base import Init, Model, ModelSpec, Params
from lmscale.model.ops import linear
from lmscale.model.registry import register
from lmscale.model.sizing import FLOP_CONVENTION, FlopCount, ParamCount
from lmscale.model.transformer import blocks_forward, causal_mask, declare_blocks, declare_norm, dropout, mean_abs

INIT_STREAM = 0x1417  # parameter init keys: fold_in(key(seed), INIT_STREAM)


class DecoderConfig(ModelSpec):
    """Decoder-only transformer shape. Defaults follow GPT-2 small (124M)."""

    kind: Literal["decoder"] = "decoder"
    # Upper bounds: lmscale.config's absolute caps (what this machine holds is checked separately).
    depth: int = Field(12, gt=0, le=MAX_DEPTH, description="number of transformer blocks (n_layer)")
    width: int = Field(768, gt=0, le=MAX_WIDTH, description="residual stream width d_model (n_embd)")
    heads: int = Field(12, gt=0, le=MAX_HEADS, description="attention heads; width must divide by it")
    mlp_ratio: float = Field(4.0, gt=0, le=64, description="MLP hidden width / model width")
    context: int = Field(1024, gt=0, le=MAX_CONTEXT, description="context length in tokens (block_size)")
    vocab_size: int | None = Field(
        None, gt=0, le=MAX_VOCAB,
        description="vocabulary size; null = the tokenizer's (padded up to a multiple of pad_vocab_to)"
    )
    pad_vocab_to: int = Field(1, gt=0, le=2**16, description="round the vocabulary up to a multiple of this (64 helps GPUs)")
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    positions: Literal["learned", "rope"] = "learned"
    activation: Literal["gelu", "swiglu"] = "gelu"
    tie_embeddings: bool = True
    bias: bool = True
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    init_std: float = Field(0.02, gt=0)
    norm_eps: float = Field(1e-5, gt=0)
    rope_theta: float = Field(10000.0, gt=0)
    parametrization: Literal["sp", "mup"] = Field(
        "sp", description="'sp' (standard, GPT-2) or 'mup' (maximal update: LR transfers across width; see model/parametrization.py)"
    )
    mup_base_width: int | None = Field(
        None, gt=0, le=MAX_WIDTH, description="muP only (required): the width whose hyperparameters are tuned; width multiplier = width / this"
    )
    mup_input_alpha: float = Field(1.0, gt=0, description="muP only: multiplier on the embedding output")
    mup_output_alpha: float = Field(1.0, gt=0, description="muP only: multiplier on the logits (on top of 1/width multiplier)")
    mup_zero_readout: bool = Field(
        True, description="muP only: zero-initialise the untied readout (false: init_std, as microsoft/mup's MuReadout default)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> "DecoderConfig":
        if self.width % self.heads:
            raise ValueError(
                f"model.width={self.width} is not divisible by model.heads={self.heads}; "
                "expected width to be a multiple of heads"
            )
        if self.parametrization == "mup" and self.mup_base_width is None:
            raise ValueError(
                "model.parametrization='mup' needs model.mup_base_width; expected the width of the tuned "
                "proxy model, e.g. model.mup_base_width=128"
            )
        if self.positions == "rope" and (self.width // self.heads) % 2:
            raise ValueError(
                f"head dimension {self.width // self.heads} is odd; RoPE expects an even width/heads"
            )
        if self.mlp_hidden < 1:
            raise ValueError(f"model.mlp_ratio={self.mlp_ratio} gives an empty MLP; expected width*mlp_ratio >= 1")
        return self

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def mlp_hidden(self) -> int:
        return int(round(self.width * self.mlp_ratio))


def _windows(batch) -> tuple[Any, Any]:
    """(token windows (B, T + 1), loss mask (B, T) or None) of a batch."""
    if isinstance(batch, dict):
        return batch["tokens"], batch.get("loss_mask")
    return batch, None


@register
class Decoder(Model):
    kind = "decoder"
    Config = DecoderConfig

    def declare(self, key: jax.Array) -> dict:
        cfg = self.cfg
        if cfg.vocab_size is None:
            raise ValueError("model.vocab_size must be resolved (from the tokenizer) before init")
        init = Init(key)
        V, D, T = cfg.vocab_size, cfg.width, cfg.context
        tree: dict = {"embed": {"tokens": init.normal("embed.tokens", (V, D), ("vocab", "embed"), cfg.init_std)}}
        if cfg.positions == "learned":
            tree["embed"]["positions"] = init.normal("embed.positions", (T, D), ("context", "embed"), cfg.init_std)
        tree["blocks"] = declare_blocks(init, cfg)
        tree["final_norm"] = declare_norm(cfg, stacked=False)
        if not cfg.tie_embeddings:
            tree["unembed"] = {"w": init.normal("unembed.w", (D, V), ("embed", "vocab"), cfg.init_std)}
        return tree

    def init(self, key: jax.Array) -> Params:
        """GPT-2's init; under muP the same draws rescaled once by role (`parametrization.rescale_init`)."""
        return parametrization.rescale_init(super().init(key), self.axes, self.cfg)

    # ------------------------------------------------------------------------------------------
    # Forward

    def _forward(self, params: Params, tokens, dropout_key, capture: bool):
        """(final-norm hidden states, activation sizes or None): with `capture`, the mean |x| of the
        embedding output and, per block, of the attention output, the MLP output and the residual
        stream (the coordinates `lmscale.mup.coord_check` follows across widths)."""
        cfg, ex = self.cfg, self.execution
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
        x = dropout(x, cfg.dropout, jax.random.fold_in(dropout_key, 0) if use_dropout else None)
        stats = {"embedding": mean_abs(x)} if capture else None
        h, per_block, _ = blocks_forward(params, x, cfg, causal_mask(T), ex, dropout_key=dropout_key, capture=capture)
        if capture:
            stats.update(per_block)
        return h, stats

    def hidden_states(self, params: Params, tokens, *, rng=None):
        """Final-norm hidden states (B, T, D) for tokens (B, T); `rng=None` is evaluation mode."""
        return self._forward(params, tokens, rng, capture=False)[0]

    def readout(self, params: Params, h):
        cfg = self.cfg
        w = params["embed"]["tokens"].T if cfg.tie_embeddings else params["unembed"]["w"]
        logits = linear(h, w.astype(h.dtype), cpu_kernels=self.execution.use_cpu_kernels).astype(jnp.float32)
        logits = self.execution.shard(logits, "activation_batch", "activation_length", "activation_vocab")
        mult = parametrization.logit_multiplier(cfg)  # muP: alpha_out / m, in float32 after the matmul
        return logits if mult is None else logits * mult

    def apply(self, params: Params, tokens, *, rng=None):
        """Logits (B, T, vocab) in float32 for integer `tokens` (B, T)."""
        return self.readout(params, self.hidden_states(params, tokens, rng=rng))

    def apply_with_stats(self, params: Params, tokens):
        """(logits, activation sizes): `apply` in evaluation mode, also returning the mean |x| of each
        activation type (see `_forward`) and of the logits."""
        h, stats = self._forward(params, tokens, None, capture=True)
        logits = self.readout(params, h)
        return logits, stats | {"logits": mean_abs(logits)}

    def token_losses(self, params: Params, windows, *, rng=None):
        """Per-token cross-entropy in nats, (B, T), for token windows (B, T + 1)."""
        inputs, targets = windows[:, :-1], windows[:, 1:]
        return cross_entropy(self.apply(params, inputs, rng=rng), targets)

    def loss(self, params: Params, batch, rng=None):
        """Mean next-token cross-entropy in nats/token (mask-weighted with a 'loss_mask')."""
        windows, mask = _windows(batch)
        tl = self.token_losses(params, windows, rng=rng)
        loss = tl.mean() if mask is None else (tl * mask).sum() / mask.sum()
        return loss, {}

    def sequence_losses(self, params: Params, batch):
        """Per-sequence mean loss (nats/token), shape (B,), in evaluation mode: what validation averages."""
        windows, _ = _windows(batch)
        return self.token_losses(params, windows).mean(axis=-1)

    # ------------------------------------------------------------------------------------------
    # Sizes (closed forms; tests hold them against the shapes of init)

    def param_count(self) -> ParamCount:
        cfg = self.cfg
        L, D, F, V, T = cfg.depth, cfg.width, cfg.mlp_hidden, cfg.vocab_size, cfg.context
        if V is None:
            raise ValueError("model.vocab_size must be resolved before counting parameters")
        norm = D * (2 if cfg.norm == "layernorm" and cfg.bias else 1)
        attn = 4 * D * D + (4 * D if cfg.bias else 0)
        n_mats = 3 if cfg.activation == "swiglu" else 2
        mlp = n_mats * D * F + ((n_mats - 1) * F + D if cfg.bias else 0)
        blocks = L * (2 * norm + attn + mlp)
        embedding = V * D + (T * D if cfg.positions == "learned" else 0) + (0 if cfg.tie_embeddings else D * V)
        non_embedding = blocks + norm
        return ParamCount(total=non_embedding + embedding, non_embedding=non_embedding, embedding=embedding)

    def flop_count(self, seq_len: int | None = None) -> FlopCount:
        cfg = self.cfg
        T = seq_len or cfg.context
        matmul = self.param_count().non_embedding + cfg.width * cfg.vocab_size
        attention = 12.0 * cfg.depth * T * cfg.width
        return FlopCount(per_token=6.0 * matmul + attention, per_token_causal=6.0 * matmul + attention / 2,
                         matmul_params=matmul, attention=attention, convention=FLOP_CONVENTION)


def cross_entropy(logits, targets):
    """Per-position cross-entropy in nats: logsumexp(logits) - logits[target]."""
    logz = jax.nn.logsumexp(logits, axis=-1)
    picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return logz - picked
