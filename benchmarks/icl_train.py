#!/usr/bin/env python3
"""ICL training speed: steps/s of the Garg small GPT and of von Oswald's LSA, as `lmscale icl train` runs them.

Times the trainer's compiled chunk (a `lax.scan` of --chunk steps on fresh prompts, one dispatch
per chunk, as in training) after one untimed chunk (compilation); the median over --rounds.

    python benchmarks/icl_train.py [--chunk 50] [--rounds 5]

Reference (notes/icl.md §6, a minimal JAX implementation on a 2-core CPU): the small GPT at
28-38 ms/step (26-36 steps/s); the 1-layer LSA's 5k steps at batch 2048 in 65 s (about 77 steps/s).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

CASES = {
    "garg small GPT (3x64, d=5, 11 pts, batch 64)": ("garg-linear.yaml", 26.0, 36.0),
    "von Oswald LSA (1 layer, d=10, N=10, batch 2048)": ("von-oswald.yaml", 77.0, 77.0),
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chunk", type=int, default=50)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()

    import jax
    import jax.numpy as jnp

    from lmscale.icl.config import load_icl_config
    from lmscale.icl.model import count_params
    from lmscale.icl.train import build_trainer
    from lmscale.laws.tables import format_table
    from machine import cpu_model

    rows = []
    for label, (name, ref_lo, ref_hi) in CASES.items():
        cfg = load_icl_config(ROOT / "configs" / "icl" / name)
        trainer = build_trainer(cfg)
        chunk = jax.jit(trainer.chunk)
        state = trainer.init_state(jnp.int32(0))
        d, n = jnp.full((args.chunk,), cfg.task.d, jnp.int32), jnp.full((args.chunk,), cfg.n_points, jnp.int32)

        def run(start):
            steps = jnp.arange(start, start + args.chunk, dtype=jnp.int32)
            s, losses = chunk(state, jnp.int32(0), steps, d, n)
            jax.block_until_ready(losses)
            return s

        t0 = time.perf_counter()
        state = run(0)
        compile_s = time.perf_counter() - t0
        times = []
        for r in range(args.rounds):
            t0 = time.perf_counter()
            state = run((r + 1) * args.chunk)
            times.append(time.perf_counter() - t0)
        sps = args.chunk / statistics.median(times)
        rows.append([label, f"{count_params(cfg).total:,}", f"{1000 / sps:.1f}", f"{sps:.1f}",
                     f"{ref_lo:g}-{ref_hi:g}" if ref_lo != ref_hi else f"{ref_lo:g}", f"{compile_s:.1f}"])
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.python_version()}, jax {jax.__version__} "
          f"({jax.default_backend()}), load {os.getloadavg()[0]:.2f}")
    print(format_table(["model", "params", "ms/step", "steps/s", "reference steps/s", "compile+first chunk s"], rows,
                       title=f"ICL training speed (median of {args.rounds} chunks of {args.chunk} steps)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
