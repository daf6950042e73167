#!/usr/bin/env python3
"""ICL training speed: ms/step of the Garg small GPT and of von Oswald's LSA, as `lmscale icl train` runs them.

Times the training core's loop (`lmscale.train.core.fit`, in memory: no run directory) on the
trainer `lmscale.icl.train.train` builds: prompts drawn from (seed, step) inside the compiled
program, up to train.log_every steps per call (as `lmscale icl train` runs), metrics read after
each call. Compilation happens before the loop. Beside it, in the same rounds (so every layout
sees the same load on a shared machine):

- ``chunked scan``: the loop ICL ran before the training core, rebuilt from the same model,
  optimizer and prompts: --steps steps in one `lax.scan` (prompts drawn inside), one dispatch
  per chunk; the reference of the slowdown ratio;
- ``step only``: the core's compiled step alone on one fixed device batch (metrics read every step);
- ``prompts only``: the batch source alone, stacked and put on the device as the core does;
- seed ensembles of --seeds members (0: skip): the core with all members vmapped in one step (the
  accelerators' default), one member at a time (c = 1, the CPU default), and the chunked scan vmapped
  over the members.

Figures are medians over --rounds; ``ratio`` is the median over rounds of (layout / chunked scan)
for the same members; ``best``: the fastest round (least disturbed by other load) and its ratio; ``page faults/step`` counts the process's minor page faults (fresh memory
touched: XLA:CPU maps a step's temporary buffer anew at every dispatch when it is large).

    python benchmarks/icl_train.py [--steps 50] [--rounds 5] [--seeds 4] [--cli-devices]

--cli-devices exposes each CPU core as a device, as the `lmscale` command does (ICL training
uses the first device either way).

Reference (notes/icl.md §6, a minimal JAX implementation on a 2-core CPU): the small GPT at
28-38 ms/step (26-36 steps/s); the 1-layer LSA's 5k steps at batch 2048 in 65 s (about 77 steps/s).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
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
    p.add_argument("--steps", type=int, default=50, help="timed steps per round (and the scan's chunk)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seeds", type=int, default=4, help="ensemble size for the ensemble rows (0: skip)")
    p.add_argument("--cli-devices", action="store_true", help="one XLA device per CPU core, as the lmscale command")
    args = p.parse_args()
    if args.cli_devices:
        from lmscale.parallel.mesh import use_cpu_cores_as_devices

        use_cpu_cores_as_devices()

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from lmscale.icl.config import load_icl_config, with_overrides
    from lmscale.icl.model import count_params
    from lmscale.icl.train import batch_for_step, batches, icl_trainer, member_seeds
    from lmscale.laws.tables import format_table
    from lmscale.train import core
    from lmscale.train.step import member_keys, shard_batch
    from machine import cpu_model

    n = args.steps

    def faults() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    class Timer(core.Hook):
        every = 1
        needs_state = False  # reads step times only: the core may run many steps per call

        def start(self, run):
            self.times, self.faults = [], []

        def step(self, run):
            self.times.append(run.step_seconds)
            self.faults.append(faults())

        def end(self, run):
            self.step(run)

    def core_loop(cfg, c: int):
        trainer = icl_trainer(cfg, members=c)
        members = [core.Member(seed=s, batches=batches(cfg, s)) for s in member_seeds(cfg)]

        def run() -> tuple[float, float]:
            timer = Timer()
            core.fit(trainer, members, args.warmup + n, [timer], steps_per_call=cfg.train.log_every)
            return 1000 * sum(timer.times[args.warmup:]) / n, (timer.faults[-1] - timer.faults[args.warmup - 1]) / n

        return run

    def chunked_scan(cfg):
        """The pre-core ICL loop's program: a lax.scan of n steps drawing its prompts inside (vmapped over seeds)."""
        trainer = icl_trainer(cfg)
        model, opt = trainer.model, trainer.optimizer
        k = cfg.train.seeds

        def one(state, step, seed):
            b = batch_for_step(cfg, seed, step)
            loss, grads = jax.value_and_grad(lambda p: model.loss(p, {"xs": b.xs, "ys": b.ys})[0])(state["params"])
            updates, o = opt.update(grads, state["opt_state"], state["params"])
            return {"params": optax.apply_updates(state["params"], updates), "opt_state": o}, loss

        def chunk(state, seed, steps):
            return jax.lax.scan(lambda s, i: one(s, i, seed), state, steps)

        fn = jax.jit(chunk if k == 1 else jax.vmap(chunk, in_axes=(0, 0, None)))
        init = jax.jit(trainer.member_init if k == 1 else jax.vmap(trainer.member_init))
        keys = member_keys(member_seeds(cfg))[0]
        seeds = jnp.asarray(member_seeds(cfg), jnp.int32)
        state = init(keys[0] if k == 1 else keys)
        seed_arg = seeds[0] if k == 1 else seeds
        jax.block_until_ready(fn(state, seed_arg, jnp.arange(n, dtype=jnp.int32)))  # compile

        def run() -> tuple[float, float]:
            steps = jnp.arange(n, 2 * n, dtype=jnp.int32)
            f0, t0 = faults(), time.perf_counter()
            jax.block_until_ready(fn(state, seed_arg, steps)[1])
            return 1000 * (time.perf_counter() - t0) / n, (faults() - f0) / n

        return run

    def step_only(cfg):
        trainer = icl_trainer(cfg)
        init, roots = member_keys([0])
        box = {"state": trainer.init_state(init)}
        b = shard_batch(trainer, jax.tree.map(lambda x: np.asarray(x)[None], batches(cfg, 0)(0)))

        def run() -> tuple[float, float]:
            state = box["state"]
            for i in range(args.warmup):
                state, m = trainer.train_step(state, b, jnp.int32(i), roots)
            jax.block_until_ready(m)
            f0, t0 = faults(), time.perf_counter()
            for i in range(n):
                state, m = trainer.train_step(state, b, jnp.int32(i), roots)
                np.asarray(m["loss"])  # the loop reads the metrics every step
            box["state"] = state
            return 1000 * (time.perf_counter() - t0) / n, (faults() - f0) / n

        return run

    def prompts_only(cfg):
        trainer = icl_trainer(cfg)
        src = batches(cfg, 0)

        def run() -> tuple[float, float]:
            for i in range(args.warmup):
                jax.block_until_ready(src(i))
            f0, t0 = faults(), time.perf_counter()
            for i in range(n):
                b = shard_batch(trainer, jax.tree.map(lambda x: np.stack([np.asarray(x)]), src(i)))
            jax.block_until_ready(b)
            return 1000 * (time.perf_counter() - t0) / n, (faults() - f0) / n

        return run

    rows = []
    for label, (name, ref_lo, ref_hi) in CASES.items():
        cfg = load_icl_config(ROOT / "configs" / "icl" / name)
        t0 = time.perf_counter()
        layouts = {"chunked scan (pre-core loop)": (chunked_scan(cfg), "scan", 1)}
        first = core_loop(cfg, 1)
        first()  # compiles the step and the prompt program
        compile_s = time.perf_counter() - t0
        layouts["core loop (lmscale icl train)"] = (first, "scan", 1)
        layouts["core step only"] = (step_only(cfg), "scan", 1)
        layouts["prompts only"] = (prompts_only(cfg), "scan", 1)
        k = args.seeds
        if k > 1:
            ens = with_overrides(cfg, [f"train.seeds={k}"])
            layouts[f"{k} seeds: chunked scan, vmapped"] = (chunked_scan(ens), "ens", k)
            for c, what in ((k, "vmapped"), (1, "c=1 (CPU default)")):
                fn = core_loop(ens, c)
                fn()  # compile
                layouts[f"{k} seeds: core loop, {what}"] = (fn, "ens", k)
        timed: dict[str, list[float]] = {key: [] for key in layouts}
        ratios: dict[str, list[float]] = {key: [] for key in layouts}
        faulted: dict[str, list[float]] = {key: [] for key in layouts}
        for _ in range(args.rounds):
            got = {key: fn() for key, (fn, _, _) in layouts.items()}
            base = {"scan": got["chunked scan (pre-core loop)"][0], "ens": got.get(f"{k} seeds: chunked scan, vmapped", (0,))[0]}
            for key, (_, ref, _) in layouts.items():
                timed[key].append(got[key][0])
                faulted[key].append(got[key][1])
                ratios[key].append(got[key][0] / base[ref])
        ref_sps = f"{ref_lo:g}-{ref_hi:g}" if ref_lo != ref_hi else f"{ref_lo:g}"
        best_ref = {"scan": "chunked scan (pre-core loop)", "ens": f"{k} seeds: chunked scan, vmapped"}
        for i, (key, (_, base_key, members)) in enumerate(layouts.items()):
            ms = statistics.median(timed[key])
            rows.append([label if i == 0 else "", f"{count_params(cfg).total:,}" if i == 0 else "", key, f"{ms:.1f}",
                         f"{ms / members:.1f}", f"{1000 * members / ms:.1f}", f"{statistics.median(ratios[key]):.2f}",
                         f"{min(timed[key]):.1f}", f"{min(timed[key]) / min(timed[best_ref[base_key]]):.2f}",
                         f"{statistics.median(faulted[key]):,.0f}", ref_sps if i == 0 else "", f"{compile_s:.1f}" if i == 0 else ""])
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.python_version()}, jax {jax.__version__} "
          f"({jax.default_backend()}, {len(jax.devices())} device(s)), load {os.getloadavg()[0]:.2f}")
    print(format_table(["model", "params", "layout", "ms/step", "ms/step/member", "member steps/s", "ratio", "best ms/step",
                        "best ratio", "page faults/step", "reference steps/s", "compile s"], rows,
                       title=f"ICL training speed (median of {args.rounds} rounds of {n} steps; ratio: to the chunked scan)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
