#!/usr/bin/env python3
"""Throughput of the evaluation harness (lmscale.emergence.harness): examples/s per metric.

Evaluates one model (a run directory, or by default a randomly initialised character model of
configs/emergence/skills-mixture.yaml's shape: depth 2, width 64, context 128) on a few tasks,
twice: the first pass compiles (timed separately), the second is the measurement. Speed does not
depend on the weights, so an untrained model times the same as a trained one.

    python benchmarks/eval_throughput.py [--run RUN_DIR] [--tasks add2,add3r,parity,recall] [--n 300]

Reference: the issue's target, a ladder of ~6 small models x ~6 tasks x a few hundred examples in
minutes on 2 CPU cores; the last line projects that from the measured rates (compile included).
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

PHASES = {  # harness phase -> the metrics it produces
    "teacher_forced": "token_accuracy, logprob (token_prob)",
    "greedy": "exact_match, edit_distance",
    "choices": "mc_accuracy, brier",
    "pass_until": "pass_until (after teacher forcing)",
}


def _random_model(depth: int, width: int, context: int):
    import jax

    from lmscale.data.mixture import MixtureSpec, mixture_lines
    from lmscale.data.tokenizers import CharTokenizer
    from lmscale.emergence.harness import EvalModel
    from lmscale.model.decoder import DecoderConfig
    from lmscale.model.registry import get_model

    lines, _ = mixture_lines(MixtureSpec(tasks=("add2", "add3r", "parity", "recall", "mod97")), "train", 2000)
    tok = CharTokenizer.train("".join(lines))
    cfg = DecoderConfig(depth=depth, width=width, heads=4, context=context, vocab_size=tok.vocab_size, bias=False)
    model = get_model(cfg)
    return EvalModel(f"random d{depth} w{width}", model.apply, model.init(jax.random.key(0)), context, tok,
                     tok.vocab_size, {"N": 1.0})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", help="a run directory (default: a random model of the skills-mixture shape)")
    p.add_argument("--tasks", default="add2,add3r,parity,recall")
    p.add_argument("--n", type=int, default=300, help="test examples per task")
    p.add_argument("--k-shot", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()

    from lmscale.parallel.mesh import use_cpu_cores_as_devices

    use_cpu_cores_as_devices()  # as the CLI does
    from lmscale.emergence.harness import evaluate_task, model_from_run
    from lmscale.data.tasks import parse_tasks
    from lmscale.laws.tables import format_table

    model = model_from_run(args.run) if args.run else _random_model(2, 64, 128)
    tasks = parse_tasks(args.tasks)
    first = {}
    timed = {ph: 0.0 for ph in PHASES}
    total_first = total = 0.0
    for task in tasks:
        t0 = time.perf_counter()
        evaluate_task(model, task, args.k_shot, args.n, 0, batch_size=args.batch_size)
        first[task.name] = time.perf_counter() - t0
        total_first += first[task.name]
        t0 = time.perf_counter()
        res = evaluate_task(model, task, args.k_shot, args.n, 1, batch_size=args.batch_size)
        total += time.perf_counter() - t0
        for ph in PHASES:
            timed[ph] += res.seconds.get(ph, 0.0)
    n_all = args.n * len(tasks)
    rows = [(ph, metrics, f"{n_all / timed[ph]:,.0f}" if timed[ph] > 0 else "-") for ph, metrics in PHASES.items()]
    rows.append(("all metrics", "everything above", f"{n_all / total:,.0f}"))
    print(format_table(("phase", "metrics", "examples/s (compiled)"), rows,
                       title=f"harness throughput: {model.run_id}, tasks {args.tasks}, {args.n} examples each, "
                             f"{args.k_shot}-shot, batch {args.batch_size}"))
    print(f"first pass (with compilation): {total_first:.1f} s for {len(tasks)} tasks; second pass {total:.1f} s")
    ladder = 6 * 6 / len(tasks) * total_first * max(1.0, args.n / 300)
    print(f"projected: 6 models x 6 tasks x {args.n} examples ~ {ladder / 60:.1f} min (target: minutes, not hours)")
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}; "
          f"load average {os.getloadavg()[0]:.2f} (shared machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
