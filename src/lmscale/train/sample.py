"""Autoregressive sampling from a trained run (temperature, top-k; greedy at temperature 0).

The whole generation is one jitted `lax.fori_loop` over a fixed-size token buffer: each step
runs the model on the last `context` tokens (a sliding window) and writes one token, so there
is one compilation per (prompt buffer size, max_tokens).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from lmscale.config import ModelConfig
from lmscale.errors import LmscaleError
from lmscale.model import transformer

SAMPLE_STREAM = 0x5A


@partial(jax.jit, static_argnames=("cfg", "max_tokens", "top_k"))
def _generate(params, buf, length, key, temperature, cfg: ModelConfig, max_tokens: int, top_k: int):
    T = cfg.context

    def body(i, carry):
        buf, length = carry
        start = jnp.maximum(0, length - T)
        window = jax.lax.dynamic_slice(buf, (start,), (T,))
        logits = transformer.apply(params, window[None, :], cfg)[0, length - 1 - start]
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
    cfg: ModelConfig,
    prompt_ids: np.ndarray,
    max_tokens: int = 200,
    temperature: float = 0.8,
    top_k: int = 0,
    seed: int = 0,
) -> np.ndarray:
    """Token ids of `max_tokens` new tokens following `prompt_ids`."""
    if max_tokens < 1:
        raise LmscaleError(f"--max-tokens={max_tokens}; expected a positive number of tokens")
    if temperature < 0:
        raise LmscaleError(f"--temperature={temperature}; expected a value >= 0 (0 = greedy)")
    if top_k < 0 or top_k > cfg.vocab_size:
        raise LmscaleError(f"--top-k={top_k}; expected 0 (off) to {cfg.vocab_size}")
    prompt_ids = np.asarray(prompt_ids, dtype=np.int32)
    if prompt_ids.size == 0:
        prompt_ids = np.zeros(1, dtype=np.int32)  # id 0: the unknown char / first byte, a neutral start
    n = prompt_ids.size
    # Round the buffer up so that different prompt lengths share compilations.
    size = max(cfg.context, -(-(n + max_tokens) // 64) * 64)
    buf = np.zeros(size, dtype=np.int32)
    buf[:n] = prompt_ids
    key = jax.random.fold_in(jax.random.key(seed), SAMPLE_STREAM)
    out = _generate(params, jnp.asarray(buf), jnp.int32(n), key, jnp.float32(temperature), cfg, max_tokens, top_k)
    return np.asarray(out)[n : n + max_tokens]
