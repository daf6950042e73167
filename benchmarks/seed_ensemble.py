#!/usr/bin/env python3
"""Seed ensembles against sequential runs: ms/step per member, tokens/s, speed-up, compile time.

For each model (default: two small sizes of a scaling sweep on the embedded Shakespeare, context
64, batch 12, configs/baby-gpt.yaml otherwise) and each k in --members, times

- sequential: k ordinary lmscale runs of seeds 0..k-1 one after another, each with its own
  trainer and compilation, as k `lmscale train` calls would do (the reference);
- ensemble, vmap c: the seed ensemble as `train_ensemble(..., vmap_members=c)` runs it, for each
  c in --vmap (default 1 and k): one executable vmapped over c members, run for each chunk of
  c members at every step; members of a chunk are split over devices by `ensemble_mesh`.

The timed loop is the trainers' own (build each member's host batch from its loader, shard, run
the compiled step, read the losses), after --warmup untimed steps. Every round times all layouts
back to back, so that they see the same load on a shared machine: the speed-up is the median
over rounds of (sequential time / ensemble time) in the same round; ms/step/member (wall time
/ (steps x k)) and tokens/s (all members' tokens) are medians over rounds. Compile time is the
sum of the k compilations for sequential runs, the one compilation for an ensemble.

    python benchmarks/seed_ensemble.py [--members 1 2 4] [--vmap 1 k] [--steps 10] [--rounds 8] [--one-device]
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
REFERENCE = "k sequential lmscale runs (one trainer and compilation per seed, the CLI's one device per core)"
MODELS = {"d2-w64": ["model.depth=2", "model.width=64", "model.heads=4"],
          "d4-w128": ["model.depth=4", "model.width=128", "model.heads=4"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "baby-gpt.yaml"))
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--members", nargs="+", type=int, default=[1, 2, 4])
    p.add_argument("--vmap", nargs="+", default=["1", "k"], help="members vmapped together: numbers or 'k' (all)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per run and round")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--one-device", action="store_true", help="do not split the CPU into one device per core")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args()
    if not args.one_device:
        from lmscale.parallel.mesh import use_cpu_cores_as_devices

        use_cpu_cores_as_devices()  # as the CLI does; must precede the first JAX computation
    import jax

    from machine import cpu_model

    rows = []
    for model in args.models:
        for k in args.members:
            rows.append(measure(args, model, k))
            print(f"  measured {model} k={k}: " + ", ".join(f"{r['label']} {r['ms']:.1f} ms/step/member" for r in rows[-1]),
                  file=sys.stderr, flush=True)

    print("seed ensembles vs sequential runs (steady state, after compilation)")
    print(f"  machine    {cpu_model()}, {len(os.sched_getaffinity(0))} usable cores, {platform.system()} {platform.machine()}, "
          f"load average {os.getloadavg()[0]:.1f} at the end (other processes share the machine if > 0)")
    print(f"  jax        {jax.__version__}, backend {jax.default_backend()}, {len(jax.devices())} device(s)")
    print(f"  workload   {Path(args.config).name} with context 64, batch 12; {args.steps} timed steps x {args.rounds} rounds")
    print(f"  reference  {REFERENCE}")
    head = ["model", "k", "layout", "devices", "ms/step/member", "tokens/s", "speed-up", "compile s"]
    table = [[r["model"], str(r["k"]), r["label"], r["mesh"], f"{r['ms']:.1f}", f"{r['tps']:,.0f}", f"{r['speedup']:.2f}x",
              f"{r['compile']:.1f}"] for group in rows for r in group]
    widths = [max(len(x) for x in col) for col in zip(head, *table)]
    for line in [head, *table]:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
    return 0


def measure(args, model: str, k: int) -> list[dict]:
    import jax.numpy as jnp
    import numpy as np

    from lmscale.data.loader import BatchLoader
    from lmscale.data.prepare import prepare_data
    from lmscale.parallel.mesh import make_mesh
    from lmscale.train.config import load_config
    from lmscale.train.lm import ensemble_mesh, lm_trainer
    from lmscale.train.run import resolve_vocab
    from lmscale.train.step import member_keys, shard_batch

    def _batches(loaders, step):  # (members, batch_size, T + 1): each member's own batch of `step`
        return np.stack([loader.batch(step) for loader in loaders])

    base = ["model.context=64", "train.batch_size=12", "train.grad_accum=1", *MODELS[model], *args.overrides]
    cfgs = [load_config(args.config, [*base, f"seed={s}", f"name={model}-s{s}"]) for s in range(k)]
    data = prepare_data(cfgs[0].data)
    cfgs = [resolve_vocab(c, data.vocab_size) for c in cfgs]
    cfg = cfgs[0]
    micro = cfg.train.batch_size // cfg.train.grad_accum
    loaders = [BatchLoader(data.train, cfg.model.context, cfg.train.batch_size, c.seed) for c in cfgs]
    tokens = cfg.train.batch_size * cfg.model.context

    class Job:
        """One layout: its compiled step(s), states and step counter."""

        def __init__(self, label, mesh, trainers, states, make_args):
            self.label, self.mesh, self.trainers, self.states, self.make_args = label, mesh, trainers, states, make_args
            self.step, self.compile = 0, 0.0
            self.fns = []
            for j, tr in enumerate(trainers):
                t = time.perf_counter()
                self.fns.append(tr.train_step.lower(*make_args(j, 0, self.states[j])).compile())
                self.compile += time.perf_counter() - t

        def run(self, n: int) -> float:
            t = 0.0
            for _ in range(n):
                t0 = time.perf_counter()
                out = [fn(*self.make_args(j, self.step, self.states[j])) for j, fn in enumerate(self.fns)]
                self.states = [s for s, _ in out]
                for _, m in out:
                    np.asarray(m["loss"])
                t += time.perf_counter() - t0
                self.step += 1
            return t

    mesh1 = make_mesh(cfg.mesh, batch=micro)
    singles = [lm_trainer(c, mesh1) for c in cfgs]  # k single runs, each its own compiled step
    single_keys = [member_keys([c.seed]) for c in cfgs]
    seq_jobs = [Job("sequential", mesh1, [tr], [tr.init_state(single_keys[i][0])],
                    lambda j, s, st, i=i, tr=tr: (st, shard_batch(tr, loaders[i].batch(s)[None]), jnp.int32(s),
                                                  single_keys[i][1]))
                for i, tr in enumerate(singles)]
    widths = sorted({k if v == "k" else int(v) for v in args.vmap if (k if v == "k" else int(v)) <= k})
    ens_jobs = []
    for c in (w for w in widths if k % w == 0):
        mesh = ensemble_mesh(cfg.mesh, c, micro)
        tr = lm_trainer(cfg, mesh, members=c)
        chunks = [list(range(j, j + c)) for j in range(0, k, c)]
        keys = [member_keys([cfgs[i].seed for i in chunk]) for chunk in chunks]

        def make_args(j, s, st, tr=tr, chunks=chunks, keys=keys):
            return st, shard_batch(tr, _batches([loaders[i] for i in chunks[j]], s)), jnp.int32(s), keys[j][1]

        # One executable serves every chunk: compile it once, reuse it for the others.
        job = Job(f"ensemble, vmap {c}", mesh, [tr], [tr.init_state(keys[0][0])], make_args)
        job.states = [tr.init_state(ik) for ik, _ in keys]
        job.fns = job.fns * len(chunks)
        ens_jobs.append(job)

    for job in [*seq_jobs, *ens_jobs]:
        job.run(args.warmup)
    seq_t, ens_t = [], [[] for _ in ens_jobs]
    for _ in range(args.rounds):
        seq_t.append(sum(job.run(args.steps) for job in seq_jobs))
        for times, job in zip(ens_t, ens_jobs):
            times.append(job.run(args.steps))

    def row(label, mesh, ts, compile_s):
        t = statistics.median(ts)
        shown = ", ".join(f"{axis}={n}" for axis, n in mesh.shape.items() if n > 1) or "one"
        return {"model": model, "k": k, "label": label, "mesh": shown, "ms": 1e3 * t / (args.steps * k),
                "tps": tokens * k * args.steps / t, "compile": compile_s,
                "speedup": statistics.median(a / b for a, b in zip(seq_t, ts))}

    return [row("sequential", mesh1, seq_t, sum(j.compile for j in seq_jobs))] + [
        row(job.label, job.mesh, ts, job.compile) for job, ts in zip(ens_jobs, ens_t)
    ]


if __name__ == "__main__":
    sys.exit(main())
