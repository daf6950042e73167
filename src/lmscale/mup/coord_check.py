"""The muP coordinate check: does every activation keep its size as the model gets wider?

The analogue of a gradient check for a parametrisation (microsoft/mup's ``coord_check``): train
the same model at several widths for a few Adam steps on the same real batches, and record the
mean |x| (l1 per element) of each activation type at every step: the embedding output, per
block the attention output, the MLP output and the residual stream, and the logits. Under a
correct muP every curve is flat in width; under SP the activations grow with width after a
single Adam step, because an Adam update of size lr summed over a width-d contraction is ∝ d.

Step t means "after t Adam updates" (t = 0 is the init). Known exception at t = 0: with tied
embeddings muP's logits shrink as 1/sqrt(width) at init (only a zero readout avoids that).

The check runs in evaluation mode (no dropout), float32, without gradient clipping or weight
decay and with a constant LR (no warmup), so the measured drift comes from the parametrisation
alone.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import jax
import numpy as np
from pydantic import ValidationError

from lmscale.config import TrainConfig, format_validation_error
from lmscale.errors import LmscaleError
from lmscale.model.decoder import DecoderConfig, cross_entropy
from lmscale.model.registry import get_model
from lmscale.train.config import RunConfig

DEFAULT_WIDTHS = (32, 64, 128, 256)
# |log-log slope| below which an activation counts as flat in width. Measured on the test's tiny
# model (depth 2, widths 32-256, lr 3e-3, 3 steps, seeds 0-4): muP's worst slope 0.14-0.20 (the
# logits after one step: a finite-width term that fades, 0.03 at widths 256-2048); SP's 1.5-1.8.
FLAT_TOL = 0.25
MAX_STEPS = 1_000  # Adam steps per width (the check reads the first few updates)


@dataclass
class CoordCheckResult:
    """Activation sizes of one parametrisation: `sizes[name]` has shape (steps + 1, len(widths))."""

    parametrization: str
    widths: tuple[int, ...]
    steps: int
    lr: float
    sizes: dict[str, np.ndarray] = field(default_factory=dict)
    losses: np.ndarray | None = None  # (steps + 1, len(widths)) train loss on each recorded batch

    @property
    def activations(self) -> list[str]:
        return list(self.sizes)

    def slopes(self) -> dict[str, np.ndarray]:
        """Least-squares slope of log(mean |x|) against log(width), per activation and step.

        An activation that is exactly zero at every width (muP's zero-initialised logits at
        t = 0) is flat by definition (slope 0); one that is zero at only some widths has no slope (nan).
        """
        logw = np.log(np.asarray(self.widths, dtype=np.float64))
        out = {}
        for name, s in self.sizes.items():
            row = np.full(s.shape[0], np.nan)
            for t in range(s.shape[0]):
                if np.all(s[t] == 0):
                    row[t] = 0.0
                elif np.all(s[t] > 0):
                    row[t] = np.polyfit(logw, np.log(s[t]), 1)[0]
            out[name] = row
        return out

    def max_abs_slope(self, from_step: int = 1) -> float:
        """Largest |slope| over activations and steps >= from_step (nan if any slope is undefined)."""
        vals = np.concatenate([np.abs(v[from_step:]) for v in self.slopes().values()])
        return float(np.nan if np.isnan(vals).any() else vals.max())

    def is_flat(self, tol: float = FLAT_TOL, from_step: int = 1) -> bool:
        """Every activation's |slope| < tol at every step >= from_step (default: after the first update)."""
        m = self.max_abs_slope(from_step)
        return bool(m < tol)  # nan compares False

    def rows(self) -> list[dict]:
        """One row per (activation, step, width): the table written as CSV."""
        out = []
        for name, s in self.sizes.items():
            for t in range(s.shape[0]):
                for j, w in enumerate(self.widths):
                    out.append({"parametrization": self.parametrization, "activation": name, "step": t,
                                "width": w, "mean_abs": float(s[t, j])})
        return out

    def slope_rows(self) -> list[dict]:
        return [{"parametrization": self.parametrization, "activation": name, "step": t, "slope": float(v)}
                for name, row in self.slopes().items() for t, v in enumerate(row)]


def _width_config(base: DecoderConfig, width: int, parametrization: str, base_width: int) -> DecoderConfig:
    raw = base.model_dump() | {"width": width, "parametrization": parametrization, "mup_base_width": base_width}
    try:
        return DecoderConfig.model_validate(raw)
    except ValidationError as err:
        raise LmscaleError(f"coord-check width {width}: " + format_validation_error(err, "(model)")) from None


def check_arguments(base_cfg: RunConfig, widths: Sequence[int], steps: int, lr: float | None, parametrization: str) -> None:
    """Raise LmscaleError naming the first bad argument (before any data is prepared)."""
    if len(widths) < 2:
        raise LmscaleError(f"widths {list(widths)}: expected at least two widths, e.g. 32,64,128,256")
    if len(set(widths)) != len(widths) or min(widths) < 1:
        raise LmscaleError(f"widths {list(widths)}: expected distinct positive integers")
    if not 1 <= steps <= MAX_STEPS:
        # A coordinate check reads activations over the first few updates; 1e9 steps per width
        # would run for days behind a one-line-per-width log.
        raise LmscaleError(f"steps={steps}: expected 1 to {MAX_STEPS:,} Adam steps per width (--steps)")
    if lr is not None and not (lr > 0 and math.isfinite(lr)):
        raise LmscaleError(f"lr={lr}: expected a positive learning rate")
    if parametrization not in ("sp", "mup"):
        raise LmscaleError(f"parametrization={parametrization!r}: expected 'sp' or 'mup'")
    heads = base_cfg.model.heads
    for w in widths:
        if w % heads:
            raise LmscaleError(f"width {w} is not divisible by model.heads={heads}; expected multiples of {heads}")
        _width_config(base_cfg.model, w, parametrization, base_cfg.model.mup_base_width or min(widths))
    from lmscale.train.limits import check_run_config

    widest = _width_config(base_cfg.model, max(widths), parametrization, base_cfg.model.mup_base_width or min(widths))
    check_run_config(base_cfg.model_copy(update={"model": widest}))  # what this machine holds, at the widest


def _train_one(mcfg: DecoderConfig, tcfg: TrainConfig, batches: list[np.ndarray], seed: int):
    """Activation sizes (dict name -> (steps+1,)) and losses of one width over len(batches) Adam
    steps on the training core (in memory, one device). Sizes come from each step's forward pass,
    before its update; the last update is unused (one compiled program per width instead of two)."""
    from lmscale.parallel.mesh import MeshConfig, make_mesh
    from lmscale.train.core import FnHook, Member, fit
    from lmscale.train.optimizer import build_optimizer
    from lmscale.train.step import build_trainer

    model = get_model(mcfg)

    def loss_and_stats(params, batch, rng):
        del rng  # evaluation mode: no dropout
        logits, stats = model.apply_with_stats(params, batch[:, :-1])
        return cross_entropy(logits, batch[:, 1:]).mean(), {"stats": stats}

    mesh_cfg = MeshConfig(data=1)
    trainer = build_trainer(model, build_optimizer(tcfg, model.axes, mcfg), make_mesh(mesh_cfg, jax.devices()[:1]),
                            rules=mesh_cfg.rules, batch_size=len(batches[0]), loss=loss_and_stats)
    records, losses = [], []

    def record(run) -> None:
        records.append(jax.tree.map(lambda x: x[0], run.metrics["stats"]))
        losses.append(float(run.metrics["loss"][0]))

    member = Member(seed=seed, batches=lambda step: np.asarray(batches[step], np.int32))
    fit(trainer, [member], len(batches), [FnHook(record, every=1, at_end=True)])
    sizes = {"embedding": np.array([r["embedding"] for r in records])}
    for i in range(mcfg.depth):
        for kind in ("attn", "mlp", "residual"):
            sizes[f"{kind}.{i}"] = np.array([r[kind][i] for r in records])
    sizes["logits"] = np.array([r["logits"] for r in records])
    return sizes, np.array(losses)


def coord_check(
    base_cfg: RunConfig,
    widths: Sequence[int] = DEFAULT_WIDTHS,
    steps: int = 3,
    lr: float | None = None,
    parametrization: str = "mup",
    seed: int | None = None,
    batch_size: int | None = None,
    log: Callable[[str], None] | None = None,
) -> CoordCheckResult:
    """Train `base_cfg`'s model at each width for `steps` Adam steps on the config's corpus.

    Everything but the width (and `parametrization`) comes from `base_cfg`: depth, heads (so
    head_dim grows with width), context, data, Adam betas/eps. `lr` defaults to the config's
    peak LR; the muP base width to `model.mup_base_width`, else the smallest width.
    Returns sizes for steps 0..steps (step t = after t updates).
    """
    from lmscale.data.loader import BatchLoader
    from lmscale.data.prepare import prepare_data
    from lmscale.train.run import resolve_paths, resolve_vocab

    widths = tuple(int(w) for w in widths)
    check_arguments(base_cfg, widths, steps, lr, parametrization)
    lr = float(lr if lr is not None else base_cfg.train.optimizer.lr)
    seed = base_cfg.seed if seed is None else seed
    cfg = resolve_paths(base_cfg)
    data = prepare_data(cfg.data, log=log or (lambda _msg: None))
    cfg = resolve_vocab(cfg, data.vocab_size)
    bsz = batch_size or cfg.train.batch_size
    loader = BatchLoader(data.train, cfg.model.context, bsz, seed, split="train")
    batches = [loader.batch(t) for t in range(steps + 1)]
    tcfg = TrainConfig.model_validate(cfg.train.model_dump() | {
        "steps": steps,
        "batch_size": bsz,
        "grad_accum": 1,
        "optimizer": cfg.train.optimizer.model_dump() | {"lr": lr, "grad_clip": None, "weight_decay": 0.0},
        "schedule": {"kind": "constant", "warmup": 0},
    })
    base_width = cfg.model.mup_base_width or min(widths)
    result = CoordCheckResult(parametrization, widths, steps, lr)
    per_width, losses = [], []
    for w in widths:
        mcfg = _width_config(cfg.model, w, parametrization, base_width)
        if log:
            log(f"coord check: {parametrization} width {w} ({steps} Adam steps at lr {lr:g})")
        sizes, loss = _train_one(mcfg, tcfg, batches, seed)
        per_width.append(sizes)
        losses.append(loss)
    result.sizes = {name: np.stack([s[name] for s in per_width], axis=1) for name in per_width[0]}
    result.losses = np.stack(losses, axis=1)
    return result


def _write_rows(rows: list[dict], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def write_csv(results: Sequence[CoordCheckResult], path: Path) -> Path:
    """All results' (activation, step, width, mean |x|) rows in one CSV."""
    return _write_rows([r for res in results for r in res.rows()], path)


def write_slopes_csv(results: Sequence[CoordCheckResult], path: Path) -> Path:
    return _write_rows([r for res in results for r in res.slope_rows()], path)


def plot(results: Sequence[CoordCheckResult], path: Path) -> tuple[Path, Path]:
    """Log-log mean |x| vs width, one panel per (parametrisation, step), one line per activation.

    Writes the PNG and the data behind it as CSV beside it (same stem); returns both paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_steps = results[0].steps + 1
    fig, axs = plt.subplots(len(results), n_steps, figsize=(3.2 * n_steps, 2.9 * len(results)), squeeze=False,
                            sharex=True)
    cmap = plt.get_cmap("viridis")
    for i, res in enumerate(results):
        names = res.activations
        for t in range(n_steps):
            ax = axs[i][t]
            for k, name in enumerate(names):
                y = res.sizes[name][t]
                if np.all(y > 0):
                    ax.plot(res.widths, y, marker="o", ms=3, lw=1, color=cmap(k / max(1, len(names) - 1)), label=name)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{res.parametrization}  step {t}", fontsize=9)
            if i == len(results) - 1:
                ax.set_xlabel("width")
            if t == 0:
                ax.set_ylabel("mean |x|")
    axs[0][-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"coordinate check (lr {results[0].lr:g}; flat = width-independent)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path, write_csv(results, path.with_suffix(".csv"))
