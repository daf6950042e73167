"""Validation loss in nats/token and bits per character (or byte), with its standard error."""

from __future__ import annotations

import math

import numpy as np

from lmscale.data.loader import eval_starts
from lmscale.parallel.mesh import batch_axes_size


def evaluate(trainer, params, tokens: np.ndarray, units_per_token: float, unit: str, count: int | None) -> dict:
    """Mean loss over fixed, evenly spaced, non-overlapping validation windows.

    The standard error treats windows as independent samples of the per-window mean loss
    (windows are disjoint but come from the same documents, so it is a slight underestimate).
    Bits per unit = nats/token / ln 2 / (units per token), units being characters or bytes.
    """
    T = trainer.cfg.model.context
    starts = eval_starts(len(tokens), T, count)
    n_dev = batch_axes_size(trainer.mesh)
    micro = trainer.cfg.train.batch_size // trainer.cfg.train.grad_accum
    eb = max(n_dev, (max(micro, 32) // n_dev) * n_dev)
    arange = np.arange(T + 1)
    losses = []
    for i in range(0, len(starts), eb):
        chunk = starts[i : i + eb]
        pad = eb - len(chunk)
        idx = np.concatenate([chunk, np.repeat(chunk[-1:], pad)])
        batch = np.asarray(tokens[idx[:, None] + arange[None, :]], dtype=np.int32)
        out = np.asarray(trainer.eval_step(params, batch))
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
