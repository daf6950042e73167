#!/usr/bin/env python3
"""Training throughput of lmscale on this machine, against nanoGPT's baby GPT.

Prints one table: the machine, the measured matmul peak (FLOP/s of a large float32 matmul, the
same units as the model FLOPs), lmscale's ms/iteration and tokens/s for a config (default: the
baby GPT, batch 12 x 64 tokens), the achieved model FLOP/s as a fraction of that peak, and the
reference: nanoGPT's PyTorch baby GPT at ~33 ms/iteration (~23k tokens/s) on a 2-core CPU. With
``--torch-python PYTHON`` (an interpreter that has torch, e.g. a venv with torch==2.13.0) it
also runs benchmarks/nanogpt_torch_baseline.py on the same machine, interleaved with lmscale's
measurement, so both see the same machine load. With ``--against DIR`` (a checkout of another
lmscale commit, e.g. ``git worktree add /tmp/prev HEAD~1``) it also runs that checkout's own
benchmark (its src/ first on PYTHONPATH), interleaved round by round, and reports the median
ratio of tokens/s (this tree / that one).

    python benchmarks/throughput.py [--config configs/baby-gpt.yaml] [--iters 200] [--repeats 3]
                                    [--torch-python /tmp/torchvenv/bin/python] [--against /tmp/prev]
                                    [--set key=value ...]

The timed loop is the training core's own (`lmscale.train.core.fit`, in memory, with its
divergence check and train records every 10 steps): per step, the host batch from the loader,
sharding, the compiled step, reading the metrics (as nanoGPT's train.py reads loss.item() every
iteration) and the hooks. Each iteration's time is the wall time between consecutive steps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_model

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = "nanoGPT baby GPT, PyTorch CPU: ~33 ms/iter, ~23k tokens/s on a 2-core CPU (issue #2)"



def matmul_peak(n: int = 2048, repeats: int = 10, dtype=jnp.float32) -> float:
    """Best achieved FLOP/s of the whole machine: one n x n x n matmul per device, all at once."""
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    devs = jax.devices()
    mesh = jax.sharding.Mesh(np.array(devs), ("d",))
    a = jax.device_put(jnp.ones((len(devs), n, n), dtype), NamedSharding(mesh, P("d")))
    b = jax.device_put(jnp.ones((len(devs), n, n), dtype), NamedSharding(mesh, P("d")))
    f = jax.jit(lambda x, y: x @ y)
    f(a, b).block_until_ready()
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        f(a, b).block_until_ready()
        best = max(best, len(devs) * 2 * n**3 / (time.perf_counter() - t))
    return best


def lmscale_run(config: str, overrides: list[str], iters: int, warmup: int) -> dict:
    from lmscale.data.loader import BatchLoader
    from lmscale.data.prepare import prepare_data
    from lmscale.parallel.mesh import make_mesh
    from lmscale.train.config import load_config
    from lmscale.train.core import FnHook, Member, StopOnDivergence, TrainLog, fit
    from lmscale.train.lm import lm_trainer
    from lmscale.train.run import resolve_vocab

    cfg = load_config(config, overrides + [f"train.steps={warmup + iters}", "train.schedule.warmup=0"])
    data = prepare_data(cfg.data)
    cfg = resolve_vocab(cfg, data.vocab_size)
    trainer = lm_trainer(cfg, make_mesh(cfg.mesh, batch=cfg.train.batch_size // cfg.train.grad_accum))
    loader = BatchLoader(data.train, cfg.model.context, cfg.train.batch_size, cfg.seed)
    stamps: list[float] = []
    hooks = [StopOnDivergence(), TrainLog(10), FnHook(lambda run: stamps.append(time.perf_counter()), every=1, at_end=True)]
    t = time.perf_counter()
    fit(trainer, [Member(seed=cfg.seed, batches=loader.batch)], warmup + iters, hooks,
        describe=lambda run: stamps.append(time.perf_counter()) or "")  # called right after compiling
    compile_s = stamps[0] - t
    times = list(np.diff(stamps))[warmup:]
    tokens = cfg.train.batch_size * cfg.model.context
    med = statistics.median(times)
    return {
        "ms_per_iter_median": 1e3 * med,
        "ms_per_iter_min": 1e3 * min(times),
        "tokens_per_s": tokens / med,
        "model_flops_per_s": tokens / med * trainer.model.flop_count().per_token,
        "compile_s": compile_s,
        "tokens_per_iter": tokens,
        "name": cfg.name,
        "precision": cfg.train.precision,
    }


def against_run(other: Path, config: str, overrides: list[str], iters: int, warmup: int) -> dict | None:
    """One round of another checkout's own benchmark, in a fresh process importing that checkout."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(other / "src"), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, str(other / "benchmarks" / "throughput.py"), "--config", config, "--iters", str(iters),
           "--warmup", str(warmup), "--repeats", "1", "--json", *sum((["--set", o] for o in overrides), [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(f"(the run of {other} failed: {proc.stderr.strip()[-300:]})", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])["lmscale"][0]


def self_run(config: str, overrides: list[str], iters: int, warmup: int) -> dict:
    """One round of this checkout's benchmark in a fresh process (as `against_run` does for the other)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--config", config, "--iters", str(iters), "--warmup",
           str(warmup), "--repeats", "1", "--json", *sum((["--set", o] for o in overrides), [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])["lmscale"][0]


def torch_run(python: str, iters: int) -> dict | None:
    script = ROOT / "benchmarks" / "nanogpt_torch_baseline.py"
    proc = subprocess.run([python, str(script), "--iters", str(iters), "--json"], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"(torch baseline failed: {proc.stdout.strip()[-200:]} {proc.stderr.strip()[-200:]})", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "baby-gpt.yaml"))
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3, help="alternating rounds (lmscale, then torch if given)")
    p.add_argument("--torch-python", default=None, help="a Python interpreter with torch, to run nanoGPT here too")
    p.add_argument("--against", type=Path, default=None, help="another lmscale checkout to measure interleaved")
    p.add_argument("--json", action="store_true")
    p.add_argument("--one-device", action="store_true", help="do not split the CPU into one device per core")
    args = p.parse_args()
    if not args.one_device:
        from lmscale.parallel.mesh import use_cpu_cores_as_devices

        use_cpu_cores_as_devices()  # as the CLI does; must precede the first JAX computation

    peak = matmul_peak()
    ours, theirs, other = [], [], []
    for _ in range(args.repeats):
        if args.against is None:
            ours.append(lmscale_run(args.config, args.overrides, args.iters, args.warmup))
        else:  # both in fresh processes, alternating, so each sees the same machine state
            ours.append(self_run(args.config, args.overrides, args.iters, args.warmup))
            r = against_run(args.against.resolve(), args.config, args.overrides, args.iters, args.warmup)
            if r:
                other.append(r)
        if args.torch_python:
            r = torch_run(args.torch_python, args.iters)
            if r:
                theirs.append(r)
    best = min(ours, key=lambda r: r["ms_per_iter_median"])
    med_ms = statistics.median(r["ms_per_iter_median"] for r in ours)
    rows = [
        ("machine", f"{cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}"),
        ("jax", f"{jax.__version__}, backend {jax.default_backend()}, {len(jax.devices())} device(s)"),
        ("matmul peak (measured)", f"{peak / 1e9:,.1f} GFLOP/s (float32 2048^3 on every device at once, best of 10)"),
        ("config", f"{best['name']} ({best['tokens_per_iter']} tokens/iter, {best['precision']})"),
        ("lmscale ms/iter", f"median of {args.repeats} runs {med_ms:.2f}; best run {best['ms_per_iter_median']:.2f} "
                            f"(fastest iter {best['ms_per_iter_min']:.2f})"),
        ("lmscale tokens/s", f"{best['tokens_per_iter'] / med_ms * 1e3:,.0f} (median run), {best['tokens_per_s']:,.0f} (best run)"),
        ("model FLOP/s", f"{best['model_flops_per_s'] / 1e9:,.1f} GFLOP/s = {best['model_flops_per_s'] / peak:.0%} of measured peak "
                         "(6N+12LTd convention)"),
        ("compile", f"{best['compile_s']:.1f} s"),
    ]
    if theirs:
        t_med = statistics.median(r["ms_per_iter_median"] for r in theirs)
        rows.append(("nanoGPT (torch) here", f"median of {len(theirs)} runs {t_med:.2f} ms/iter, "
                                             f"{theirs[0]['config']['block_size'] * 12 / t_med * 1e3:,.0f} tokens/s "
                                             f"(torch {theirs[0]['torch_version']}, {theirs[0]['threads']} threads)"))
        rows.append(("speed-up vs nanoGPT", f"{t_med / med_ms:.2f}x"))
    if other:
        o_med = statistics.median(r["ms_per_iter_median"] for r in other)
        ratios = [o["ms_per_iter_median"] / r["ms_per_iter_median"] for r, o in zip(ours, other)]
        rows.append((f"{args.against} here", f"median of {len(other)} runs {o_med:.2f} ms/iter, "
                                             f"{other[0]['tokens_per_iter'] / o_med * 1e3:,.0f} tokens/s"))
        rows.append(("tokens/s ratio this/that", f"median {statistics.median(ratios):.3f} over {len(ratios)} interleaved "
                                                 f"rounds ({', '.join(f'{x:.3f}' for x in ratios)})"))
    rows.append(("reference", REFERENCE))
    w = max(len(k) for k, _ in rows)
    print("lmscale training throughput")
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")
    if args.json:
        print(json.dumps({"peak_flops": peak, "lmscale": ours, "torch": theirs, "against": other}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
