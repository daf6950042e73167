#!/usr/bin/env python3
"""Speed of lmscale's reference in-context learners (lmscale.icl.learners) at Garg's paper scale.

Every learner predicts every prefix of --prompts prompts (default 10,000) of k = 41 points at
d = 20 (Garg et al. 2022's linear-regression evaluation; the paper uses 1,280 prompts), drawn with
lmscale.icl.tasks.sample_batch (linear, w ~ N(0, I), noiseless; Lasso also on sparse s = 3
prompts; dMMSE on a pool of M = 64 tasks, sigma = 0.5). Prints the machine, then one row per
learner: seconds (wall, first call, compilation included for the JAX-backed Lasso; best of
--repeats), prompts/s, and the normalised error (squared error / d, mean over prompts) at k = d/2,
d and 2d as a sanity check against the closed forms (least squares: 0.5, 0, 0).
Target (issue 6): "the reference learners must run on 10,000 prompts in seconds".

    python benchmarks/icl_learners.py [--prompts 10000] [--d 20] [--k 41] [--repeats 1] [--only lasso knn]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from machine import cpu_model

import numpy as np

from lmscale.laws.tables import format_table

LEARNERS = [
    ("zero", {}, "linear"),
    ("least_squares", {}, "linear"),
    ("ridge", {"lam": 0.1}, "linear"),
    ("gd", {"steps": 1, "lr": 1.0}, "linear"),
    ("gd", {"steps": 10, "lr": 0.5}, "linear"),
    ("sgd", {"lr": 0.01}, "linear"),
    ("knn", {"k": 3}, "linear"),
    ("knn", {"k": 3, "weighting": "inverse_square"}, "linear"),
    ("averaging", {}, "linear"),
    ("lasso", {"alpha": 0.01}, "sparse"),
    ("lasso", {"alpha": 0.01}, "linear"),
    ("dmmse", {}, "pool"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=10_000)
    ap.add_argument("--d", type=int, default=20)
    ap.add_argument("--k", type=int, default=41)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--only", nargs="*", default=None, help="learner names to run (default: all)")
    args = ap.parse_args()

    import jax

    from lmscale.icl.learners import make_learner
    from lmscale.icl.tasks import TaskConfig, sample_batch

    d, k, n = args.d, args.k, args.prompts
    tasks = {
        "linear": TaskConfig(kind="linear", d=d),
        "sparse": TaskConfig(kind="sparse_linear", d=d, sparsity=min(3, d)),
        "pool": TaskConfig(kind="linear", d=d, noise=0.5, pool_size=64),
    }
    data = {}
    for name, task in tasks.items():
        b = sample_batch(task, jax.random.key(0), n, k)
        data[name] = (np.asarray(b.xs, np.float64), np.asarray(b.ys, np.float64), task)

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, load average "
          + " ".join(f"{x:.1f}" for x in os.getloadavg()) + " (1/5/15 min, shared machine)")
    print(f"python {platform.python_version()}, numpy {np.__version__}, jax {jax.__version__} ({jax.default_backend()})")
    print(f"{n:,} prompts x k = {k} points x d = {d}; every prefix predicted\n")

    cols = [c for c in (d // 2, d, 2 * d) if c < k]
    rows = []
    for name, kw, data_name in LEARNERS:
        if args.only and name not in args.only:
            continue
        xs, ys, task = data[data_name]
        learner = make_learner(name, task=task, **kw)
        times = []
        for _ in range(max(1, args.repeats)):
            t = time.perf_counter()
            pred = learner.predict_prefixes(xs, ys)
            times.append(time.perf_counter() - t)
        sec = min(times)
        err = ((pred - ys) ** 2).mean(0) / task.normalizer
        rows.append([learner.label, data_name, f"{sec:.2f}", f"{n / sec:,.0f}", *[err[c] for c in cols]])
    print(format_table(["learner", "prompts", "seconds", "prompts/s", *[f"err k={c}" for c in cols]], rows,
                       title="reference learners (normalised error: squared error / normaliser, d or s)"))
    print("\nreference: issue 6 asks for 10,000 prompts in seconds; least squares' exact curve is (d-k)/d for k < d, 0 after")


if __name__ == "__main__":
    main()
