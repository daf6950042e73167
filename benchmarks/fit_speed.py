#!/usr/bin/env python3
"""Speed of lmscale's scaling-law fits on Epoch's Chinchilla data, against the per-start reference.

Prints one table: the machine (CPU model, cores, load), Python/numpy/scipy versions, and timings of
  1. the Approach-3 fit (Huber sum, delta 1e-3, Hoffmann's 4500-start grid) on the 240 points
     (Epoch's policy: drop the 5 highest losses; D = C/(6N)); target < 10 s;
  2. a 1000-resample cluster bootstrap of that fit; target < 2 min;
  3. the straightforward per-start scipy loop (L-BFGS-B, analytic gradient, defaults) measured on
     this machine with OpenBLAS on one thread, its fastest setting (skip with --skip-reference),
     and the 228 s anchor from the team's notes;
  4. the `chinchilla` PyPI package (kyo-takano/chinchilla 0.2.0) on the same data and grid, if it
     can be imported here or from --chinchilla-python (an interpreter of a venv that has it).
     Its objective is the MEAN of the per-point loss (here Huber of log residuals, as ours) with
     finite-difference gradients in longdouble, over a multiprocessing pool.

    python benchmarks/fit_speed.py [--data PATH] [--repeats 1] [--resamples 1000] [--skip-reference]
                                   [--chinchilla-python /tmp/chinchvenv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model

import numpy as np
import scipy

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "reference-data" / "chinchilla_fig4_svg_extracted_epoch.csv"
ANCHOR_S = 228.0  # notes §7: straightforward per-start numpy/scipy loop, 4500 starts, 2-core CPU

CHINCHILLA_SCRIPT = r"""
import json, os, sys, tempfile, time, csv
import numpy as np
from chinchilla import Chinchilla
rows = json.loads(sys.stdin.read())
d = tempfile.mkdtemp()
with open(os.path.join(d, "df.csv"), "w", newline="") as f:
    w = csv.writer(f); w.writerow(["C", "N", "D", "loss"]); w.writerows(rows)
def huber_log(y_true, y_pred, delta=1e-3):
    r = np.log(y_pred) - np.log(y_true)
    c = np.clip(r, -delta, delta)
    return c * (r - 0.5 * c)
grid = {"e": np.arange(-1, 1.5, 0.5).tolist(), "a": np.arange(0, 30, 5).tolist(), "b": np.arange(0, 30, 5).tolist(),
        "alpha": np.arange(0, 2.5, 0.5).tolist(), "beta": np.arange(0, 2.5, 0.5).tolist()}
cc = Chinchilla(d, param_grid=grid, seed_ranges={"C": (1e18, 1e22), "N_to_D": (1, 100)}, loss_fn=huber_log, log_level=40)
t = time.perf_counter()
cc.fit(parallel=True)
el = time.perf_counter() - t
print(json.dumps({"seconds": el, "params": {k: float(v) for k, v in cc.get_params().items()}}))
"""



def load_avg() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def fmt_s(s: float | None) -> str:
    return "-" if s is None else (f"{s:.2f} s" if s < 100 else f"{s:.0f} s")


def run_chinchilla(python: str | None, data, timeout: float) -> tuple[float | None, dict | None, str]:
    rows = [[float(c), float(n), float(d), float(loss)] for c, n, d, loss in zip(data.C, data.N, data.D, data.loss)]
    if python is None:
        try:
            import chinchilla  # noqa: F401
        except ImportError:
            return None, None, "not installed (pass --chinchilla-python PYTHON of a venv that has it)"
        python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        try:
            # One OpenBLAS thread per process, as lmscale uses during fits (see lmscale/laws/_blas.py).
            env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
            proc = subprocess.run([python, "-c", CHINCHILLA_SCRIPT], input=json.dumps(rows), capture_output=True,
                                  text=True, cwd=tmp, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return None, None, f"did not finish within {timeout:.0f} s (> {timeout:.0f} s)"
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return None, None, f"failed: {tail}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["seconds"], out["params"], "measured (same data, same 4500-start grid, mean of Huber-log, numeric gradients)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--repeats", type=int, default=1, help="fit repetitions (best time reported)")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--skip-reference", action="store_true", help="skip the per-start scipy loop (~20-60 s)")
    ap.add_argument("--chinchilla-python", default=None, help="interpreter with the chinchilla package installed")
    ap.add_argument("--chinchilla-timeout", type=float, default=1800, help="give up on the chinchilla package after this")
    args = ap.parse_args()

    from lmscale.laws import ChinchillaLaw, epoch_chinchilla_data
    from lmscale.laws._blas import single_threaded_blas
    from lmscale.laws.bootstrap import bootstrap
    from lmscale.laws.fit import scipy_loop

    if not args.data.is_file():
        sys.exit(f"error: {args.data} not found; expected Epoch's svg_extracted_data.csv (see shared/reference-data)")
    data = epoch_chinchilla_data(args.data)

    times = []
    law = None
    for _ in range(max(1, args.repeats)):
        t = time.perf_counter()
        law = ChinchillaLaw().fit(data)
        times.append(time.perf_counter() - t)
    fit_s = min(times)

    t = time.perf_counter()
    boot = bootstrap(law, args.resamples, seed=0)
    boot_s = time.perf_counter() - t

    ref_s = ref_obj = None
    if not args.skip_reference:
        obj = law._objective(data)
        starts = law.form_.start_grid(obj.X, obj.logL)
        t = time.perf_counter()
        with single_threaded_blas():  # OpenBLAS threads slow scipy's L-BFGS-B on tiny problems, badly under load
            ref = scipy_loop(obj, starts)
        ref_s = time.perf_counter() - t
        ref_obj = float(np.min(ref.f))

    ch_s, ch_params, ch_note = run_chinchilla(args.chinchilla_python, data, args.chinchilla_timeout)

    print("lmscale.laws fit speed (Chinchilla Approach 3 on Epoch's 240 points, Huber delta 1e-3, 4500 starts)")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, load average {load_avg()} (1/5/15 min)")
    print(f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}")
    print()
    rows = [
        ("lmscale: 4500-start fit (batched L-BFGS + scipy polish)", fmt_s(fit_s), "< 10 s",
         f"{ANCHOR_S / fit_s:.0f}x" if fit_s else "-", f"{ref_s / fit_s:.1f}x" if ref_s else "-"),
        (f"lmscale: {args.resamples}-resample cluster bootstrap", fmt_s(boot_s), "< 120 s", "-", "-"),
        ("per-start scipy L-BFGS-B loop (reference, this machine)", fmt_s(ref_s) if ref_s else "skipped", "-",
         f"{ANCHOR_S / ref_s:.1f}x" if ref_s else "-", "1.0x" if ref_s else "-"),
        ("per-start scipy loop, notes' anchor (2-core CPU)", fmt_s(ANCHOR_S), "-", "1.0x", "-"),
        ("chinchilla 0.2.0 (PyPI) fit, same grid", fmt_s(ch_s) if ch_s else ch_note.split(" (")[0], "-",
         f"{ANCHOR_S / ch_s:.1f}x" if ch_s else "-", f"{ref_s / ch_s:.2f}x" if ch_s and ref_s else "-"),
    ]
    w = [max(len(r[i]) for r in rows + [("what", "time", "target", "vs 228 s", "vs loop here")]) for i in range(5)]
    line = lambda r: "  ".join(c.ljust(w[i]) for i, c in enumerate(r))  # noqa: E731
    print(line(("what", "time", "target", "vs 228 s", "vs loop here")))
    print("  ".join("-" * x for x in w))
    for r in rows:
        print(line(r))
    if ch_s and fit_s:
        print(f"\nlmscale vs chinchilla package: {ch_s / fit_s:.1f}x faster ({ch_note})")
    elif not ch_s:
        print(f"\nchinchilla package: {ch_note}")
    print()
    p = law.params_
    print(f"lmscale fit: A {p['A']:.2f}, B {p['B']:.2f}, E {p['E']:.4f}, alpha {p['alpha']:.4f}, beta {p['beta']:.4f}, "
          f"objective {law.objective_:.6e}; {law.n_starts_converged_}/{law.n_starts_} starts "
          f"({law.frac_starts_converged_:.1%}) reached it")
    if ref_obj is not None:
        print(f"reference loop best objective {ref_obj:.6e} (lmscale - reference = {law.objective_ - ref_obj:+.1e})")
    lo_a, hi_a = boot.interval("alpha")
    lo_b, hi_b = boot.interval("beta")
    print(f"bootstrap ({boot.n_converged}/{boot.n_resamples} converged): alpha 95% ({lo_a:.4f}, {hi_a:.4f}), "
          f"beta ({lo_b:.4f}, {hi_b:.4f}); Epoch: alpha (0.317, 0.373), beta (0.331, 0.415)")
    if ch_params:
        from lmscale.laws.forms import ChinchillaForm

        th = ChinchillaForm().theta_from(ch_params)
        f_sum = law._objective(data).single(th)[0]
        print("chinchilla package fit: " + ", ".join(f"{k} {v:.4g}" for k, v in ch_params.items())
              + f"; our summed objective at its optimum {f_sum:.6e}")


if __name__ == "__main__":
    main()
