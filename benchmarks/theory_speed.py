#!/usr/bin/env python3
"""Speed of lmscale.theory's numerics against the targets of issue 4.

Prints one table: the machine (CPU model, cores, load), Python/numpy/scipy versions, and
  1. a 200-point compute-optimal sweep, C = logspace(3, 20, 200) model units (R*(C), T*(C),
     threshold, alpha, P_b at each), for both alpha variants; target < 5 s;
  2. peeling a Nayak–Varshney concept–text graph whose erased subgraph has ~1e6 edges
     (R = 3.6e4 concepts, T = 1.67e5 texts, at z = 2 below threshold and z = -2 above),
     and a (3,6)-regular graph with ~1e6 erased edges; target < 2 s per peel on 2 cores
     (sampling the graph is timed separately).
The reference for the sweep is the authors' released code (float128 bisection + nested
minimize_scalar per point; notes §1.2-1.4), which is not re-run here.

    python benchmarks/theory_speed.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402


def load_avg() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from lmscale.laws.tables import format_table
    from lmscale.theory import ConceptTextEnsemble, NVParams, RegularEnsemble, compute_optimal
    from lmscale.theory.peeling import peel, sample_concept_text, sample_regular, texts_for_z

    compute_optimal([1e6])  # imports and first-call overheads out of the timings
    rows = []
    C = np.logspace(3, 20, 200)
    for variant in ("published", "released-code"):
        t, sweep = best_of(lambda v=variant: compute_optimal(C, NVParams(alpha_variant=v)), args.repeats)
        rows.append((f"200-point optimum sweep ({variant} alpha)", f"{len(sweep)} budgets", f"{t:.2f}", "< 5"))

    R = 3.6e4
    for z in (2.0, -2.0):
        e = ConceptTextEnsemble(R=R, T=float(round(texts_for_z(R, z))))
        t_s, g = best_of(lambda e=e: sample_concept_text(e, np.random.default_rng(0)), args.repeats)
        t_p, left = best_of(lambda g=g: peel(g), args.repeats)
        what = f"concept-text R={R:.2g}, T={e.T:.3g} (z={z:+g}), {left} left"
        rows.append((f"sample graph: {what}", f"{g.n_edges:.3g} edges", f"{t_s:.2f}", "-"))
        rows.append((f"peel: {what}", f"{g.n_edges:.3g} edges", f"{t_p:.2f}", "< 2"))
    for eps in (0.40, 0.45):
        n = 780_000 if eps == 0.45 else 840_000  # ~1e6 erased edges: 3 * eps * n
        e = RegularEnsemble(3, 6, eps, n=n)
        t_s, g = best_of(lambda e=e: sample_regular(e, np.random.default_rng(0)), args.repeats)
        t_p, left = best_of(lambda g=g: peel(g), args.repeats)
        what = f"(3,6)-regular n={n:.3g}, eps={eps} ({left} left)"
        rows.append((f"sample graph: {what}", f"{g.n_edges:.3g} edges", f"{t_s:.2f}", "-"))
        rows.append((f"peel: {what}", f"{g.n_edges:.3g} edges", f"{t_p:.2f}", "< 2"))

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, load average {load_avg()} (1/5/15 min)")
    print(f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}; "
          f"best of {args.repeats}")
    print(format_table(("task", "size", "seconds", "target s"), rows, title="lmscale.theory speed"))


if __name__ == "__main__":
    main()
