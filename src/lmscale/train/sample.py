"""Autoregressive sampling from a trained run (temperature, top-k; greedy at temperature 0).

The whole generation is one jitted `lax.fori_loop` over a fixed-size token buffer: each step
runs the model on the last `context` tokens (a sliding window) and writes one token, so there
is one compilation per (prompt buffer size, max_tokens).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lmscale.model.base import ModelSpec
from lmscale.errors import LmscaleError
from lmscale.data.tokenizers import CharTokenizer, Tokenizer
from lmscale.model.registry import get_model

SAMPLE_STREAM = 0x5A
# Tokens per call: generation is one sequential model call per token, so 1e9 tokens would run for
# days behind a 4 GB buffer; 100,000 is ~200x the README's examples (the `--max-tokens` help says it).
MAX_TOKENS = 100_000


def check_sampling(max_tokens: int, temperature: float, top_k: int, seed: int, vocab_size: int | None = None) -> None:
    """One-line errors for sampling options, checked before a run is loaded or anything allocated."""
    if not 1 <= max_tokens <= MAX_TOKENS:
        raise LmscaleError(f"--max-tokens={max_tokens}; expected 1 to {MAX_TOKENS:,} tokens per call")
    if not (temperature >= 0 and math.isfinite(temperature)):
        raise LmscaleError(f"--temperature={temperature}; expected a finite value >= 0 (0 = greedy)")
    if not 0 <= seed < 2**63:
        raise LmscaleError(f"--seed={seed}; expected a non-negative integer below 2^63")
    if top_k < 0 or (vocab_size is not None and top_k > vocab_size):
        raise LmscaleError(f"--top-k={top_k}; expected 0 (off) to {vocab_size if vocab_size is not None else 'the vocabulary size'}")


@partial(jax.jit, static_argnames=("cfg", "max_tokens", "top_k", "vocab_limit"))
def _generate(params, buf, length, key, temperature, cfg: ModelSpec, max_tokens: int, top_k: int, vocab_limit: int):
    T = cfg.context
    model = get_model(cfg)
    # Ids past the tokenizer's vocabulary (padding of the embedding table) are never sampled.
    valid = jnp.arange(cfg.vocab_size) < vocab_limit

    def body(i, carry):
        buf, length = carry
        start = jnp.maximum(0, length - T)
        window = jax.lax.dynamic_slice(buf, (start,), (T,))
        logits = model.apply(params, window[None, :])[0, length - 1 - start]
        logits = jnp.where(valid, logits, -jnp.inf)
        k = jax.random.fold_in(key, i)
        if top_k > 0:
            kth = jax.lax.top_k(logits, top_k)[0][-1]
            logits = jnp.where(logits < kth, -jnp.inf, logits)
        greedy = jnp.argmax(logits)
        sampled = jax.random.categorical(k, logits / jnp.maximum(temperature, 1e-6))
        tok = jnp.where(temperature > 0, sampled, greedy).astype(buf.dtype)
        buf = jax.lax.dynamic_update_slice(buf, tok[None], (length,))
        return buf, length + 1

    buf, length = jax.lax.fori_loop(0, max_tokens, body, (buf, length))
    return buf


def generate(
    params,
    cfg: ModelSpec,
    prompt_ids: np.ndarray,
    max_tokens: int = 200,
    temperature: float = 0.8,
    top_k: int = 0,
    seed: int = 0,
    vocab_limit: int | None = None,
) -> np.ndarray:
    """Token ids of `max_tokens` new tokens following `prompt_ids`."""
    check_sampling(max_tokens, temperature, top_k, seed, cfg.vocab_size)
    prompt_ids = np.asarray(prompt_ids, dtype=np.int32)
    if prompt_ids.size == 0:
        raise LmscaleError("the prompt encodes to no tokens; expected at least one character")
    n = prompt_ids.size
    # Round the buffer up so that different prompt lengths share compilations.
    size = max(cfg.context, -(-(n + max_tokens) // 64) * 64)
    buf = np.zeros(size, dtype=np.int32)
    buf[:n] = prompt_ids
    key = jax.random.fold_in(jax.random.key(seed), SAMPLE_STREAM)
    limit = cfg.vocab_size if vocab_limit is None else min(vocab_limit, cfg.vocab_size)
    out = _generate(params, jnp.asarray(buf), jnp.int32(n), key, jnp.float32(temperature), cfg, max_tokens, top_k, limit)
    return np.asarray(out)[n : n + max_tokens]


def encode_prompt(tokenizer: Tokenizer, prompt: str, warn: Callable[[str], None] | None = None) -> np.ndarray:
    """Prompt ids; an empty prompt starts from a newline; unknown characters are reported."""
    if not prompt:
        prompt = "\n"
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as err:
        raise LmscaleError(f"--prompt holds an invalid character at position {err.start}; expected valid UTF-8 text") from None
    ids = tokenizer.encode(prompt)
    if isinstance(tokenizer, CharTokenizer) and warn is not None and (ids == 0).any():
        unknown = sorted({c for c, i in zip(prompt, ids) if i == 0})
        warn(f"prompt characters {''.join(unknown)!r} are not in the training vocabulary; they become the unknown token")
    return ids
