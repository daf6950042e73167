#!/usr/bin/env python3
"""Quality of the baby GPT on the embedded Shakespeare, against nanoGPT's published figure.

Trains configs/baby-gpt.yaml (2000 iterations, about 2-3 minutes on a 2-core CPU) into a fresh
run directory and prints a table: final validation loss (nats/char, with its standard error, over
every validation window), bits/char, and nanoGPT's 1.88 on tiny-shakespeare for reference.

    python benchmarks/baby_gpt_quality.py [--run-dir runs/baby-gpt-quality] [--set key=value ...]

The corpora differ: nanoGPT validates on the last 10% of tiny-shakespeare (1.1 MB, vocabulary
65, whose training part it repeats for ~1.4 epochs); lmscale validates on five held-out plays
(0.54 M characters, vocabulary 81) after 0.35 epochs of 4.45 M training characters.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = "nanoGPT baby GPT: val loss 1.88 on tiny-shakespeare after 2000 iterations (nanoGPT README)"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", default=str(ROOT / "runs" / "baby-gpt-quality"))
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--fresh", action="store_true", help="delete an existing --run-dir first (otherwise it is resumed)")
    args = p.parse_args()

    from lmscale.parallel.mesh import use_cpu_cores_as_devices

    use_cpu_cores_as_devices()  # as the CLI does
    from lmscale.train.config import load_config
    from lmscale.train.lm import train

    cfg = load_config(ROOT / "configs" / "baby-gpt.yaml", args.overrides)
    run = Path(args.run_dir)
    if run.exists() and args.fresh:
        shutil.rmtree(run)
    s = train(cfg, run)
    rows = [
        ("machine", f"{platform.processor() or platform.machine()}, {platform.node()}"),
        ("config", f"{cfg.name}: {s['params_total']:,} params, {s['step']} steps, {s['tokens_seen']:,} tokens, "
                   f"{s['epochs']:.2f} epochs"),
        ("final val loss", f"{s['final_val_loss']:.4f} ± {s['final_val_loss_se']:.4f} nats/char "
                           f"over {s['final_val_sequences']} windows (held-out plays)"),
        ("bits/char", f"{s['final_val_bits_per_char']:.4f}"),
        ("throughput", f"{s['tokens_per_s']:,.0f} tokens/s (median of logged intervals)"),
        ("reference", REFERENCE),
    ]
    w = max(len(k) for k, _ in rows)
    print("baby GPT quality on the embedded Shakespeare")
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
