#!/usr/bin/env python3
"""Learning-rate transfer across width: SP vs muP on the baby GPT family.

Trains every (parametrisation, width, peak LR) on Shakespeare characters through the normal
training loop (`lmscale.train.loop.train`) and prints, per parametrisation, a table of final
validation loss (nats/token) by width x LR and the best LR per width. Under muP the best LR
should stay put as width grows; under SP it drifts (down) with width.

    python benchmarks/mup_lr_transfer.py [--config configs/baby-gpt.yaml] [--widths 64,128,256]
        [--lrs 1e-3,3e-3,1e-2,3e-2] [--tokens 2.5e5] [--base-width 64] [--zero-readout]
        [--out DIR] [--set key=value ...]

Every run has the same shape apart from width (depth 2, 4 heads, so head_dim grows with width),
untied embeddings, the same data order and seed, and a cosine schedule to 0 with 10% warmup, so
the only things that differ within a column are the width and the LR. Runs that diverge count
as loss inf. muP's readout starts at SP's init (model.mup_zero_readout=false) unless
--zero-readout: in runs this short a zero readout spends the first ~100 steps on the unigram
plateau, which blurs the LR comparison (see lmscale/model/parametrization.py).
At the defaults (24 runs, 250k tokens each) it took 14 minutes on a busy 2-core VM.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_list(text: str, kind=float) -> list:
    return [kind(x) for x in text.split(",") if x.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "baby-gpt.yaml"))
    ap.add_argument("--widths", default="64,128,256")
    ap.add_argument("--lrs", default="1e-3,3e-3,1e-2,3e-2")
    ap.add_argument("--parametrizations", default="sp,mup")
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--tokens", type=float, default=2.5e5, help="training tokens per run")
    ap.add_argument("--base-width", type=int, default=64, help="muP base width (m = width / this)")
    ap.add_argument("--zero-readout", action="store_true", help="muP: zero-initialise the readout")
    ap.add_argument("--out", default=None, help="directory for the run directories (default: a temporary one)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="extra config override")
    args = ap.parse_args()

    from lmscale.parallel.mesh import use_cpu_cores_as_devices

    use_cpu_cores_as_devices()  # as the CLI does; before JAX starts

    from lmscale.train.config import load_config
    from lmscale.errors import DivergedError
    from lmscale.train.lm import train

    widths, lrs = parse_list(args.widths, int), parse_list(args.lrs)
    kinds = [k.strip() for k in args.parametrizations.split(",") if k.strip()]
    base = load_config(args.config, args.overrides)
    steps = max(1, round(args.tokens / (base.train.batch_size * base.model.context)))
    warmup = max(1, steps // 10)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="mup-lr-transfer-"))
    print(f"{len(kinds) * len(widths) * len(lrs)} runs of {steps} steps "
          f"({steps * base.train.batch_size * base.model.context:,} tokens) in {out}", flush=True)

    loss: dict[tuple[str, int, float], float] = {}
    t_start = time.perf_counter()
    for kind in kinds:
        for width in widths:
            for lr in lrs:
                name = f"{kind}-w{width}-lr{lr:g}"
                cfg = load_config(args.config, args.overrides + [
                    f"name={name}",
                    f"model.depth={args.depth}", f"model.width={width}", f"model.heads={args.heads}",
                    f"model.parametrization={kind}", f"model.mup_base_width={args.base_width}",
                    "model.tie_embeddings=false", f"model.mup_zero_readout={str(args.zero_readout).lower()}",
                    f"train.steps={steps}", f"train.optimizer.lr={lr}",
                    "train.schedule.kind=cosine", f"train.schedule.warmup={warmup}", "train.schedule.min_lr=0.0",
                    f"train.eval_every={steps}", f"train.checkpoint_every={steps}", "train.log_every=50",
                    "train.final_eval_sequences=1000",
                ])
                t0 = time.perf_counter()
                try:
                    summary = train(cfg, out / name)
                    loss[kind, width, lr] = summary["final_val_loss"]
                    tps = summary["tokens_per_s"]
                except DivergedError:
                    loss[kind, width, lr] = math.inf
                    tps = float("nan")
                print(f"  {name:>22}: val loss {loss[kind, width, lr]:.4f}  ({time.perf_counter() - t0:.0f}s, "
                      f"{tps:,.0f} tok/s)", flush=True)

    print(f"\nfinal validation loss (nats/token), {steps} steps, depth {args.depth}, {args.heads} heads; "
          f"muP base width {args.base_width}; total {time.perf_counter() - t_start:.0f}s")
    for kind in kinds:
        print(f"\n{kind}")
        print(f"{'width':>6} | " + " | ".join(f"lr {lr:<7g}" for lr in lrs) + " | best lr")
        for width in widths:
            row = [loss[kind, width, lr] for lr in lrs]
            best = lrs[min(range(len(lrs)), key=lambda i: row[i])]
            print(f"{width:>6} | " + " | ".join(f"{v:<10.4f}" for v in row) + f" | {best:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
