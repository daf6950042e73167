"""Parameter and FLOP counts of any registered model, and decoder ladders from one size dial.

Each model gives its counts in closed form (`Model.param_count` / `flop_count`; tests hold them
against `jax.eval_shape(init)`). The decoder's conventions (printed with every figure):
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
    convention: str = FLOP_CONVENTION  # how the figure was counted (printed beside it)


def count_params(spec) -> ParamCount:
    """Parameter counts of any registered model's config (its closed form, checked against init's shapes)."""
    from lmscale.model.registry import get_model

    return get_model(spec).param_count()


def count_flops(spec, seq_len: int | None = None) -> FlopCount:
    """Training FLOPs per token of any registered model's config."""
    from lmscale.model.registry import get_model

    return get_model(spec).flop_count(seq_len)


def ladder(
    depths: Iterable[int] | None = None,
    shapes: Iterable[dict[str, Any]] | None = None,
    aspect_ratio: int = 64,
    head_dim: int = 64,
    **common: Any,
) -> list:
    """A model family from one size dial (nanochat-style) or from explicit shapes.

    With `depths`, width = depth * aspect_ratio rounded up to a multiple of `head_dim`, and
    heads = width / head_dim. With `shapes`, each dict gives depth/width/heads (and anything
    else) explicitly. `common` settings (context, vocab_size, norm, ...) apply to every member.
    """
    from lmscale.model.decoder import DecoderConfig

    if (depths is None) == (shapes is None):
        raise ValueError("give exactly one of depths or shapes")
    out = []
    if depths is not None:
        for d in depths:
            width = math.ceil(d * aspect_ratio / head_dim) * head_dim
            out.append(DecoderConfig(**{**common, "depth": d, "width": width, "heads": width // head_dim}))
    else:
        for s in shapes:
            out.append(DecoderConfig(**{**common, **s}))
    return out
