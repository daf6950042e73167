"""Parameter and FLOP counts in closed form, and model ladders from one size dial.

Conventions (printed with every figure):
- N_total counts every parameter. N_non-embedding (Kaplan et al. 2020) excludes the token
  embedding, learned position embedding and an untied readout matrix.
- Training FLOPs per token = 6 * N_matmul + 12 * L * T * d (PaLM appendix B, as nanoGPT's
  `estimate_mfu`), with N_matmul = N_non-embedding + d * V (the readout is a real matmul) and
  the attention term counted over the full T x T (non-causal). The causal variant halves the
  attention term (6 * L * T * d), as MaxText has done since 2025.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from lmscale.config import ModelConfig

FLOP_CONVENTION = "6*N_matmul + 12*L*T*d per token (PaLM/nanoGPT; attention non-causal; N_matmul = non-embedding + readout)"


@dataclass(frozen=True)
class ParamCount:
    total: int
    non_embedding: int
    embedding: int  # token + position embeddings and an untied readout


@dataclass(frozen=True)
class FlopCount:
    per_token: float  # training FLOPs per token, convention above
    per_token_causal: float  # with the attention term halved
    matmul_params: int
    attention: float  # the 12*L*T*d term
    convention: str = FLOP_CONVENTION


def count_params(cfg: ModelConfig) -> ParamCount:
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


def count_flops(cfg: ModelConfig, seq_len: int | None = None) -> FlopCount:
    T = seq_len or cfg.context
    n = count_params(cfg)
    matmul = n.non_embedding + cfg.width * cfg.vocab_size
    attention = 12.0 * cfg.depth * T * cfg.width
    return FlopCount(
        per_token=6.0 * matmul + attention,
        per_token_causal=6.0 * matmul + attention / 2,
        matmul_params=matmul,
        attention=attention,
    )


def ladder(
    depths: Iterable[int] | None = None,
    shapes: Iterable[dict[str, Any]] | None = None,
    aspect_ratio: int = 64,
    head_dim: int = 64,
    **common: Any,
) -> list[ModelConfig]:
    """A model family from one size dial (nanochat-style) or from explicit shapes.

    With `depths`, width = depth * aspect_ratio rounded up to a multiple of `head_dim`, and
    heads = width / head_dim. With `shapes`, each dict gives depth/width/heads (and anything
    else) explicitly. `common` settings (context, vocab_size, norm, ...) apply to every member.
    """
    if (depths is None) == (shapes is None):
        raise ValueError("give exactly one of depths or shapes")
    out = []
    if depths is not None:
        for d in depths:
            width = math.ceil(d * aspect_ratio / head_dim) * head_dim
            out.append(ModelConfig(**{**common, "depth": d, "width": width, "heads": width // head_dim}))
    else:
        for s in shapes:
            out.append(ModelConfig(**{**common, **s}))
    return out
