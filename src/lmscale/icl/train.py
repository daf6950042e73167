"""Training on fresh prompts every step, with run directories, checkpoints and seed ensembles.

Every step draws its prompts from ``fold_in(fold_in(key(seed), step), DATA_STREAM)`` and
parameters come from ``fold_in(key(seed), INIT_STREAM)``, so a run is a function of its config.
Steps run in compiled chunks of `train.log_every` (a `lax.scan`, one dispatch per chunk) aligned
to multiples of `log_every`; the state after a chunk is the full train state (params and Adam
moments), checkpointed with `lmscale.train.checkpoint`, so a run killed (or paused with
`stop_at`) and resumed ends bitwise identical on CPU.

Loss: the mean squared error over the x positions of every prefix (Garg; with a curriculum only
the first `n_active` positions count, which, the model being causal, equals training on the
shorter prompt) or, for the LSA, at the query. `train.seeds > 1` trains seeds seed, seed+1, ...
as one vmapped program (members equal single runs to float rounding).

A run directory holds ``config.yaml`` (resolved), ``metrics.jsonl``, ``checkpoints/`` and
``summary.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import yaml

from lmscale.config import TrainConfig, config_diff
from lmscale.errors import DivergedError, LmscaleError
from lmscale.fileio import atomic_write_json, atomic_write_yaml, read_json
from lmscale.icl import model as icl_model
from lmscale.icl.config import ICLConfig, validate_icl_config
from lmscale.model.transformer import INIT_STREAM
from lmscale.train import checkpoint
from lmscale.train.loop import Reporter
from lmscale.train.metrics import MetricsWriter, read_metrics
from lmscale.train.optimizer import build_optimizer, schedule_fn

DATA_STREAM = 1
CONFIG, METRICS, SUMMARY, CHECKPOINTS = "config.yaml", "metrics.jsonl", "summary.json", "checkpoints"


def member_seeds(cfg: ICLConfig) -> list[int]:
    return [cfg.train.seed + i for i in range(cfg.train.seeds)]


def curriculum_at(cfg: ICLConfig, step: int) -> tuple[int, int]:
    """(active dimensions, active points) at `step`: the curriculum's, else the full sizes."""
    c = cfg.train.curriculum
    return (cfg.task.d, cfg.n_points) if c is None else c.at(step)


def batch_for_step(cfg: ICLConfig, seed, step, d_active=None):
    from lmscale.icl.tasks import sample_batch

    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), step), DATA_STREAM)
    return sample_batch(cfg.task, key, cfg.train.batch_size, cfg.n_points, d_active)


def loss_fn(params, xs, ys, cfg: ICLConfig, n_active=None):
    """Mean squared error (y units²) over the predicted positions (the first `n_active` prefixes)."""
    pred = icl_model.predict(params, xs, ys, cfg)
    if cfg.model.kind == "lsa":
        return jnp.mean(jnp.square(pred[:, 0] - ys[:, -1]))
    err = jnp.square(pred - ys)
    if n_active is None:
        return err.mean()
    mask = (jnp.arange(ys.shape[1]) < n_active).astype(err.dtype)
    return jnp.sum(err * mask) / (ys.shape[0] * n_active)


class Trainer(NamedTuple):
    init_state: Any  # seed -> state
    chunk: Any  # (state, seed, steps, d_active, n_active) -> (state, losses)
    axes: Any


def build_trainer(cfg: ICLConfig) -> Trainer:
    axes = icl_model.param_axes(cfg)
    t = cfg.train
    opt = build_optimizer(
        TrainConfig(steps=t.steps, batch_size=t.batch_size, optimizer=t.optimizer, schedule=t.schedule), axes
    )

    def init_state(seed):
        params, _ = icl_model.init(cfg, jax.random.fold_in(jax.random.key(seed), INIT_STREAM))
        return {"params": params, "opt": opt.init(params)}

    def one_step(state, inp, seed):
        step, d_act, n_act = inp
        b = batch_for_step(cfg, seed, step, d_act if cfg.train.curriculum else None)
        n = n_act if cfg.train.curriculum else None
        loss, grads = jax.value_and_grad(loss_fn)(state["params"], b.xs, b.ys, cfg, n)
        updates, opt_state = opt.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        return {"params": params, "opt": opt_state}, loss

    def chunk(state, seed, steps, d_act, n_act):
        return jax.lax.scan(lambda s, inp: one_step(s, inp, seed), state, (steps, d_act, n_act))

    return Trainer(init_state, chunk, axes)


def trainer_key(cfg: ICLConfig) -> str:
    """What fixes the compiled training chunk: everything but the name, evaluation, sweep and the
    seed (an argument of the chunk) or bookkeeping, so reruns, resumes and seed variants reuse it."""
    d = cfg.model_dump(mode="json", exclude={"name", "eval", "sweep"})
    for k in ("seed", "seeds", "log_every", "checkpoint_every", "keep_checkpoints"):
        d["train"].pop(k)
    return json.dumps(d, sort_keys=True)


# ----------------------------------------------------------------------------------------------
# Run directories


def load_run_config(run_dir: str | Path) -> ICLConfig:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise LmscaleError(f"{str(run_dir)!r} is not an ICL run directory; expected it to contain {CONFIG}")
    return validate_icl_config(yaml.safe_load(path.read_text(encoding="utf-8")), source=str(path))


def _open_run_dir(run_dir: Path, cfg: ICLConfig) -> bool:
    """Create the run dir with its config, or check an existing one holds this config (resume)."""
    if (run_dir / CONFIG).is_file():
        diff = config_diff(load_run_config(run_dir).to_dict(), cfg.to_dict())
        if diff:
            raise LmscaleError(
                f"run directory {str(run_dir)!r} holds a run with another config ({', '.join(diff[:3])}); "
                "expected the same config to resume, or a new --run-dir"
            )
        return True
    if run_dir.exists() and any(run_dir.iterdir()):
        raise LmscaleError(f"run directory {str(run_dir)!r} exists and is not an ICL run; expected a new or empty directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_yaml(run_dir / CONFIG, cfg.to_dict())
    return False


def train(cfg: ICLConfig, run_dir: str | Path, reporter=None, stop_at: int | None = None) -> dict[str, Any]:
    """Train (or resume) the run in `run_dir`; `stop_at` pauses after that step (status 'paused')."""
    rep = reporter or Reporter()  # the foundation's quiet reporter; the CLI passes a RichReporter
    run_dir = Path(run_dir)
    t = cfg.train
    if stop_at is not None and not 0 < stop_at <= t.steps:
        raise LmscaleError(f"stop_at={stop_at}; expected a step in 1..{t.steps}")
    resumed = _open_run_dir(run_dir, cfg)
    ckpt_dir = run_dir / CHECKPOINTS
    checkpoint.clean_temporaries(ckpt_dir)
    trainer = build_trainer(cfg)
    seeds = jnp.asarray(member_seeds(cfg), jnp.int32)
    ensemble = t.seeds > 1
    init = jax.vmap(trainer.init_state) if ensemble else trainer.init_state
    chunk = icl_model.compiled(
        ("train", trainer_key(cfg), ensemble),
        lambda: jax.vmap(trainer.chunk, in_axes=(0, 0, None, None, None)) if ensemble else trainer.chunk,
    )
    seed_arg = seeds if ensemble else seeds[0]

    state, start = None, 0
    if resumed:
        ckpt = checkpoint.load_latest(ckpt_dir, jax.eval_shape(init, seed_arg), warn=rep.warn)
        if ckpt is not None:
            state, start = jax.tree.map(jnp.asarray, ckpt.state), ckpt.step
            rep.log(f"resuming {run_dir} from step {start}")
    if state is None:
        state = init(seed_arg)
    end = t.steps if stop_at is None else stop_at
    if start > end:
        raise LmscaleError(f"run {str(run_dir)!r} is already at step {start}, past the requested pause at step {end}")
    metrics = MetricsWriter(run_dir / METRICS)
    metrics.truncate_after(start if start > 0 else -1)
    counts = icl_model.count_params(cfg)
    base = {"run_dir": str(run_dir), "name": cfg.name, "kind": cfg.model.kind, "params": counts.total,
            "params_garg_convention": counts.garg_convention, "seeds": member_seeds(cfg), "steps": t.steps,
            "platform": jax.default_backend()}
    if start == t.steps and (run_dir / SUMMARY).is_file() and read_json(run_dir / SUMMARY).get("status") == "done":
        return read_json(run_dir / SUMMARY)
    lr_at = schedule_fn(t.schedule, t.optimizer.lr, t.steps)
    rep.log(f"{cfg.name}: {cfg.model.kind}, {counts.total:,} params ({counts.garg_convention:,} in Garg's convention), "
            f"{len(member_seeds(cfg))} seed(s), {jax.default_backend()}")
    rep.start(end, start)
    step, last = start, None
    t_start = time.perf_counter()
    try:
        while step < end:
            stop = min(end, (step // t.log_every + 1) * t.log_every)
            steps = np.arange(step, stop)
            cur = np.array([curriculum_at(cfg, int(s)) for s in steps], np.int32).reshape(-1, 2)
            t0 = time.perf_counter()
            state, losses = chunk(state, seed_arg, jnp.asarray(steps, jnp.int32), jnp.asarray(cur[:, 0]), jnp.asarray(cur[:, 1]))
            losses = np.asarray(losses).reshape(-1, len(steps)) if ensemble else np.asarray(losses)[None]
            dt = time.perf_counter() - t0
            step = stop
            if not np.all(np.isfinite(losses)):
                metrics.write({"kind": "diverged", "step": step})
                metrics.close()
                raise DivergedError(f"training diverged before step {step}; expected a finite loss: try a lower train.optimizer.lr")
            last = {"kind": "train", "step": step, "loss": float(losses[:, -1].mean()),
                    "loss_avg": float(losses.mean()), "lr": float(lr_at(step - 1)),
                    "ms_per_step": 1000 * dt / len(steps), "d_active": int(cur[-1, 0]), "n_active": int(cur[-1, 1])}
            if ensemble:
                last["member_loss"] = [float(x) for x in losses[:, -1]]
            metrics.write(last)
            if step % t.checkpoint_every == 0 or step == end:
                checkpoint.save(ckpt_dir, step, state, {"seeds": member_seeds(cfg)}, keep=t.keep_checkpoints)
            rep.update(step, {"loss": last["loss"]})
    finally:
        rep.stop()
        metrics.close()
    status = "done" if end == t.steps else "paused"
    if last is None and metrics.path.exists():  # nothing left to train: report the recorded loss
        last = next((r for r in reversed(read_metrics(metrics.path)) if r.get("kind") == "train"), None)
    summary = base | {"status": status, "step": end, "final_train_loss": last["loss"] if last else None,
                      "train_seconds": time.perf_counter() - t_start}
    atomic_write_json(run_dir / SUMMARY, summary)
    return summary


class LoadedRun(NamedTuple):
    cfg: ICLConfig
    params: Any  # one member's params (host arrays)
    step: int
    members: int


def load_run(run_dir: str | Path, member: int = 0, warn=None) -> LoadedRun:
    """The config and newest checkpoint's parameters of ensemble member `member` of a run."""
    cfg = load_run_config(run_dir)
    if not 0 <= member < cfg.train.seeds:
        raise LmscaleError(f"member={member}; run {str(run_dir)!r} has {cfg.train.seeds} member(s), expected 0..{cfg.train.seeds - 1}")
    trainer = build_trainer(cfg)
    seeds = jnp.asarray(member_seeds(cfg), jnp.int32)
    init = jax.vmap(trainer.init_state) if cfg.train.seeds > 1 else trainer.init_state
    template = jax.eval_shape(init, seeds if cfg.train.seeds > 1 else seeds[0])
    ckpt = checkpoint.load_latest(Path(run_dir) / CHECKPOINTS, template, warn=warn)
    if ckpt is None:
        raise LmscaleError(f"run {str(run_dir)!r} has no usable checkpoint; expected checkpoints/step-*.npz (train it first)")
    params = ckpt.state["params"]
    if cfg.train.seeds > 1:
        params = jax.tree.map(lambda a: a[member], params)
    return LoadedRun(cfg, jax.tree.map(jnp.asarray, params), ckpt.step, cfg.train.seeds)
