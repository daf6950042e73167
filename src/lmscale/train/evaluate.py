"""Validation loss in nats/token and bits per character (or byte), with its standard error; and
the hook that evaluates language-model runs."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from lmscale.data.loader import eval_starts
from lmscale.parallel.mesh import batch_axes_size
from lmscale.train.core import Hook, Run


def evaluate(eval_fn: Callable, params, tokens: np.ndarray, context: int, eval_batch: int, units_per_token: float,
             unit: str, count: int | None) -> dict[str, Any]:
    """Mean loss over fixed, evenly spaced, non-overlapping validation windows.

    `eval_fn(params, windows)` gives per-sequence mean losses; windows go in batches of
    `eval_batch` (the last one padded). The standard error treats windows as independent samples
    of the per-window mean loss (windows are disjoint but come from the same documents, so it is a
    slight underestimate). Bits per unit = nats/token / ln 2 / (units per token), units being
    characters or bytes.
    """
    T = context
    starts = eval_starts(len(tokens), T, count)
    arange = np.arange(T + 1)
    losses = []
    for i in range(0, len(starts), eval_batch):
        chunk = starts[i : i + eval_batch]
        pad = eval_batch - len(chunk)
        idx = np.concatenate([chunk, np.repeat(chunk[-1:], pad)])
        batch = np.asarray(tokens[idx[:, None] + arange[None, :]], dtype=np.int32)
        out = np.asarray(eval_fn(params, batch))
        losses.append(out[: len(chunk)])
    per_seq = np.concatenate(losses).astype(np.float64)
    mean = float(per_seq.mean())
    se = float(per_seq.std(ddof=1) / math.sqrt(len(per_seq))) if len(per_seq) > 1 else float("nan")
    to_bits = 1.0 / math.log(2) / units_per_token
    return {
        "val_loss": mean,
        "val_loss_se": se,
        f"val_bits_per_{unit}": mean * to_bits,
        f"val_bits_per_{unit}_se": se * to_bits,
        "val_sequences": int(len(per_seq)),
        "val_tokens": int(len(per_seq) * T),
    }


def eval_batch_size(trainer, micro_batch: int) -> int:
    """Validation windows per call: at least 32, a multiple of the data-parallel devices."""
    n_dev = batch_axes_size(trainer.mesh, trainer.rules)
    return max(n_dev, (max(micro_batch, 32) // n_dev) * n_dev)


class Validation(Hook):
    """Language-model validation: at step 0 (fresh runs), every `every` steps on `count` windows, and
    at the end on `final_count` (None: all) windows, an 'eval' record per live member; at the end
    also the run's summary fields (final and best validation loss, throughput, epochs)."""

    def __init__(self, trainer, val_tokens: np.ndarray, context: int, micro_batch: int, units_per_token: float,
                 unit: str, every: int, count: int, final_count: int | None, tokens_per_step: int,
                 epochs_at: Callable[[int, int], float]):
        self.fn = trainer.compile_eval(trainer.model.sequence_losses)
        self.val, self.context, self.batch = val_tokens, context, eval_batch_size(trainer, micro_batch)
        self.upt, self.unit, self.every, self.count, self.final_count = units_per_token, unit, every, count, final_count
        self.tokens_per_step, self.epochs_at = tokens_per_step, epochs_at

    def _eval(self, run: Run, i: int, count: int | None) -> None:
        res = evaluate(lambda p, b: self.fn(p, b, i % run.chunk), run.states[i // run.chunk]["params"], self.val,
                       self.context, self.batch, self.upt, self.unit, count)
        run.write(i, {"kind": "eval", "step": run.step, "tokens": run.step * self.tokens_per_step} | res)

    def start(self, run: Run) -> None:
        if run.start_step == 0 and run.end > 0:
            for i in np.flatnonzero(run.live):
                self._eval(run, int(i), self.count)

    def step(self, run: Run) -> None:
        for i in np.flatnonzero(run.live):
            self._eval(run, int(i), self.count)

    def end(self, run: Run) -> None:
        for i in np.flatnonzero(run.live):
            if run.start_step < run.steps or not run.finished_before[i]:
                self._eval(run, int(i), self.final_count)

    def summary(self, run: Run, i: int) -> dict[str, Any]:
        out = {"tokens_seen": run.step * self.tokens_per_step}
        if run.step < run.steps:
            return out
        recs = run.records(i)
        evals = [r for r in recs if r.get("kind") == "eval"]
        trains = [r for r in recs if r.get("kind") == "train"]
        final = evals[-1]
        speeds = [r["tokens_per_s"] for r in trains[1:] if "tokens_per_s" in r] or \
                 [r["tokens_per_s"] for r in trains if "tokens_per_s" in r] or [0]
        import platform

        return out | {
            "epochs": self.epochs_at(i, run.step),
            "final_train_loss": trains[-1]["loss"] if trains else None,
            "final_val_loss": final["val_loss"],
            "final_val_loss_se": final["val_loss_se"],
            f"final_val_bits_per_{self.unit}": final[f"val_bits_per_{self.unit}"],
            "final_val_sequences": final["val_sequences"],
            "best_val_loss": min(r["val_loss"] for r in evals),
            "tokens_per_s": float(np.median(speeds)),
            "host": platform.node(),
        }
