"""Rough run-time estimates for sweep plans: FLOPs divided by an effective FLOP rate.

Before anything has run, the rate is this machine's measured float32 matmul throughput times a
utilisation typical of small models (`UTILISATION`, measured for lmscale's baby GPT on CPU); once
runs have finished, `remaining_seconds` uses their measured training throughput instead.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

UTILISATION = 0.35  # baby GPT reaches ~0.57 of matmul peak on CPU; narrower ladder members less
COMPILE_S = 4.0  # per run: compilation and evaluation overhead on CPU, seconds


def flops_rate(size: int = 512, seconds: float = 0.3) -> float:
    """Effective training FLOP/s on the default JAX devices (all of them, data parallel)."""
    import jax
    import jax.numpy as jnp

    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = jax.devices()
    n_dev = len(devices)
    shard = NamedSharding(Mesh(devices, ("d",)), PartitionSpec("d"))
    a = jax.device_put(jnp.ones((n_dev, size, size), jnp.float32), shard)
    f = jax.jit(lambda x: x @ x, out_shardings=shard)
    f(a).block_until_ready()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        f(a).block_until_ready()
        n += 1
    peak = n * n_dev * 2 * size**3 / (time.perf_counter() - t0)
    return peak * UTILISATION


def estimate_seconds(run, rate: float) -> float:
    """Seconds to train one planned run (a WSD branch only trains its cooldown)."""
    steps = run.steps - (run.fork_step or 0)
    return run.flops * steps / run.steps / rate + COMPILE_S


def remaining_seconds(runs: list[dict[str, Any]]) -> float | None:
    """Training time left, at the median FLOP rate the finished runs achieved (None before any finished)."""
    rates = [r["tokens_per_s"] * r["plan"]["C"] / r["plan"]["D"] for r in runs if r["status"] == "done" and r["tokens_per_s"]]
    if not rates:
        return None
    rate = statistics.median(rates)
    left = 0.0
    for r in runs:
        if r["status"] in ("pending", "running", "paused"):
            p = r["plan"]
            frac = (p["steps"] - (p["fork_step"] or 0)) / p["steps"]
            left += p["C"] * frac / rate + COMPILE_S
    return left
