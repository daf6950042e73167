"""AdamW with parameter groups, gradient clipping and learning-rate schedules.

Weight decay is decoupled (AdamW) and applies to weight matrices only: never to norm gains,
biases or embeddings (token and position). The readout matrix of an untied model is a weight
matrix and is decayed.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax
from jax.sharding import PartitionSpec as P

from lmscale.config import ScheduleConfig, TrainConfig


def schedule_fn(cfg: ScheduleConfig, peak_lr: float, steps: int):
    """Learning rate as a function of the optimizer step (0-based), usable in and out of jit.

    - cosine: linear warmup to `peak_lr`, then cosine to `min_lr` at `decay_steps` (default:
      `steps`), constant after (nanoGPT's get_lr).
    - wsd: warmup, constant, then the last `decay_fraction` of steps decays to `min_lr`
      (linear, 1-sqrt or cosine shape; Hägele et al. 2024).
    - constant: warmup then `peak_lr`.
    """
    warmup, min_lr = cfg.warmup, cfg.min_lr
    decay_steps = cfg.decay_steps or steps

    def warm(step):
        return peak_lr * (step + 1) / (warmup + 1)  # nanoGPT get_lr

    if cfg.kind == "constant":
        def lr(step):
            return jnp.where(step < warmup, warm(step), peak_lr)
    elif cfg.kind == "cosine":
        def lr(step):
            frac = jnp.clip((step - warmup) / max(1, decay_steps - warmup), 0.0, 1.0)
            cos = min_lr + 0.5 * (1.0 + jnp.cos(math.pi * frac)) * (peak_lr - min_lr)
            return jnp.where(step < warmup, warm(step), cos)
    else:  # wsd
        decay_len = max(1, int(round(cfg.decay_fraction * steps)))
        decay_start = steps - decay_len

        def lr(step):
            frac = jnp.clip((step - decay_start) / decay_len, 0.0, 1.0)
            if cfg.decay_shape == "linear":
                shape = 1.0 - frac
            elif cfg.decay_shape == "sqrt":
                shape = 1.0 - jnp.sqrt(frac)
            else:
                shape = 0.5 * (1.0 + jnp.cos(math.pi * frac))
            decayed = min_lr + (peak_lr - min_lr) * shape
            return jnp.where(step < warmup, warm(step), decayed)

    return lr


def decay_mask(axes):
    """True for parameters that get weight decay: matrices that are not embeddings."""

    # A weight matrix maps one feature axis to another; biases and gains carry at most one.
    features = {"embed", "mlp", "heads", "vocab"}

    def mask_for(path, spec: P):
        top = getattr(path[0], "key", None)
        return top != "embed" and len(features.intersection(spec)) >= 2

    return jax.tree_util.tree_map_with_path(mask_for, axes, is_leaf=lambda s: isinstance(s, P))


def build_optimizer(cfg: TrainConfig, axes) -> optax.GradientTransformation:
    o = cfg.optimizer
    lr = schedule_fn(cfg.schedule, o.lr, cfg.steps)
    parts = []
    if o.grad_clip is not None:
        parts.append(optax.clip_by_global_norm(o.grad_clip))
    parts.append(
        optax.adamw(learning_rate=lr, b1=o.beta1, b2=o.beta2, eps=o.eps, weight_decay=o.weight_decay, mask=decay_mask(axes))
    )
    return optax.chain(*parts)
