"""AdamW with parameter groups, gradient clipping and learning-rate schedules.

Weight decay is decoupled (AdamW) and applies to weight matrices only: never to norm gains,
biases or embeddings (token and position). The readout matrix of an untied model is a weight
matrix and is decayed.

Under muP (``model.parametrization: mup``) the chain is optax.adamw's with two changes from the
table in `lmscale.model.parametrization`: Adam's eps is ε/m, and Adam's normalised update is
multiplied per parameter by its role's LR multiplier (1/m for hidden matrices) *before* weight
decay is added, so decoupled decay still shrinks every decayed matrix by lr * wd per step
whatever its role. The optimizer state has the same structure as under SP (one Adam mu/nu per
parameter). Under SP the optimizer is the plain `optax.adamw` chain.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax
from jax.sharding import PartitionSpec as P

from lmscale.config import ScheduleConfig, TrainConfig
from lmscale.model import parametrization
from lmscale.model.base import ModelSpec


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


def build_optimizer(cfg: TrainConfig, axes, model: ModelSpec | None = None) -> optax.GradientTransformation:
    """Clip + AdamW for params described by `axes`; `model` selects the parametrisation (None: SP)."""
    o = cfg.optimizer
    lr = schedule_fn(cfg.schedule, o.lr, cfg.steps)
    parts = []
    if o.grad_clip is not None:
        parts.append(optax.clip_by_global_norm(o.grad_clip))
    if model is None or getattr(model, "parametrization", "sp") == "sp":
        parts.append(
            optax.adamw(learning_rate=lr, b1=o.beta1, b2=o.beta2, eps=o.eps, weight_decay=o.weight_decay, mask=decay_mask(axes))
        )
    else:
        parts += _mup_adamw(o, lr, axes, model)
    return optax.chain(*parts)


def _mup_adamw(o, lr, axes, model: ModelSpec) -> list[optax.GradientTransformation]:
    """optax.adamw's chain with eps/m and per-parameter LR multipliers (see the module docstring)."""
    return [
        optax.scale_by_adam(b1=o.beta1, b2=o.beta2, eps=o.eps * parametrization.eps_multiplier(model)),
        scale_per_param(parametrization.per_leaf(axes, model, "lr")),
        optax.add_decayed_weights(o.weight_decay, decay_mask(axes)),
        optax.scale_by_learning_rate(lr),
    ]


def scale_per_param(multipliers) -> optax.GradientTransformation:
    """Multiply each update by a constant; `multipliers` is a tree of floats shaped like the params."""

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(lambda u, m: u if m == 1.0 else u * m, updates, multipliers), state

    return optax.GradientTransformation(init_fn, update_fn)
