"""The training loop: data -> sharded steps -> metrics, evaluations and checkpoints.

`train(cfg, run_dir)` starts a run or resumes the one in `run_dir`. The loader, the dropout keys
and the learning rate are all functions of the step number, and checkpoints hold the full train
state, so a run killed at any moment and resumed ends bitwise identical to an uninterrupted one
(on CPU).
"""

from __future__ import annotations

import math
import platform
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lmscale.config import RunConfig
from lmscale.data.loader import BatchLoader, eval_starts
from lmscale.data.prepare import prepare_data
from lmscale.errors import DivergedError, LmscaleError
from lmscale.fileio import atomic_write_json, read_json
from lmscale.model.sizing import FLOP_CONVENTION, count_flops, count_params
from lmscale.parallel.mesh import make_mesh
from lmscale.train import checkpoint
from lmscale.train.evaluate import evaluate
from lmscale.train.metrics import MetricsWriter, read_metrics
from lmscale.train.optimizer import schedule_fn
from lmscale.train.run import (
    CHECKPOINTS,
    METRICS,
    SUMMARY,
    check_or_write_config,
    check_run_data,
    is_run_dir,
    resolve_paths,
    resolve_vocab,
)
from lmscale.train.step import build_trainer, shard_batch


class Reporter:
    """Where the loop's human-readable output goes (the CLI plugs in Rich; tests stay quiet)."""

    def log(self, msg: str) -> None:
        pass

    def warn(self, msg: str) -> None:
        pass

    def start(self, total_steps: int, done: int) -> None:
        pass

    def update(self, step: int, record: dict[str, Any]) -> None:
        pass

    def stop(self) -> None:
        pass


def train(
    cfg: RunConfig, run_dir: str | Path, reporter: Reporter | None = None, stop_at: int | None = None
) -> dict[str, Any]:
    """Train (or resume) the run in `run_dir`; returns the summary also written to summary.json.

    `stop_at` pauses the run after that many steps with a checkpoint there (status 'paused'):
    sweeps use it to fork WSD cooldown branches from a trunk run at exact steps.
    """
    rep = reporter or Reporter()
    run_dir = Path(run_dir)
    cfg = resolve_paths(cfg)
    data = prepare_data(cfg.data, log=rep.log)
    cfg = resolve_vocab(cfg, data.vocab_size)
    tcfg, mcfg = cfg.train, cfg.model
    # Validate the data against the context before anything is written.
    loader = BatchLoader(data.train, mcfg.context, tcfg.batch_size, cfg.seed, split="train")
    eval_starts(len(data.val), mcfg.context, 1)
    mesh = make_mesh(cfg.mesh, batch=tcfg.batch_size // tcfg.grad_accum)
    trainer = build_trainer(cfg, mesh)

    resumed, finished_before = open_run_dir(run_dir, cfg, data)
    ckpt_dir = run_dir / CHECKPOINTS

    start_step = 0
    state = None
    if resumed:
        ckpt = checkpoint.load_latest(ckpt_dir, jax.eval_shape(trainer.init_state), warn=rep.warn)
        if ckpt is not None:
            state = jax.device_put(ckpt.state, trainer.state_shardings)
            start_step = ckpt.step
            rep.log(f"resuming {run_dir} from step {start_step}")
        elif checkpoint.list_steps(ckpt_dir):
            raise LmscaleError(
                f"run directory {str(run_dir)!r} has checkpoints but none is usable (see the warnings above); "
                "expected a valid checkpoint to resume — move the run aside or use a new --run-dir"
            )
    if state is None:
        state = trainer.init_state()

    metrics = MetricsWriter(run_dir / METRICS)
    metrics.truncate_after(start_step if start_step > 0 else -1)
    prior = read_metrics(metrics.path) if metrics.path.exists() else []

    params_n = count_params(mcfg)
    flops = count_flops(mcfg)
    tokens_per_step = tcfg.batch_size * mcfg.context
    unit = data.manifest["splits"]["val"]["unit"]
    upt = data.units_per_token("val")
    lr_at = schedule_fn(tcfg.schedule, tcfg.optimizer.lr, tcfg.steps)
    summary_base = summary_base_of(run_dir, cfg, mesh)
    if finished_before and start_step == tcfg.steps:
        rep.log(f"{run_dir} is already finished ({tcfg.steps} steps)")
        return read_json(run_dir / SUMMARY)
    end = end_step(stop_at, tcfg.steps, start_step, run_dir)
    write_summary(run_dir, summary_base | {"status": "running", "step": start_step})

    def do_eval(step: int, count: int | None) -> dict[str, Any]:
        res = evaluate(trainer, state["params"], data.val, upt, unit, count)
        rec = {"kind": "eval", "step": step, "tokens": step * tokens_per_step} | res
        metrics.write(rec)
        return rec

    # Compile ahead of time, so step timings below measure steps, not compilation.
    t0 = time.perf_counter()
    batch0 = shard_batch(trainer, loader.batch(start_step))
    step_fn = trainer.train_step.lower(state, batch0, jnp.int32(start_step)).compile()
    compile_s = time.perf_counter() - t0
    rep.log(
        f"{cfg.name}: {params_n.total:,} params ({params_n.non_embedding:,} non-embedding), "
        f"{flops.per_token / 1e6:.2f} MFLOPs/token [{FLOP_CONVENTION}], {mesh.devices.size} {jax.default_backend()} "
        f"device(s), compiled in {compile_s:.1f}s"
    )
    last_eval: dict[str, Any] = next((r for r in reversed(prior) if r.get("kind") == "eval"), {})
    if start_step == 0:
        last_eval = do_eval(0, tcfg.eval_sequences)

    rep.start(end, start_step)
    last_train: dict[str, Any] = {}
    t_last, steps_since, loss_sum = time.perf_counter(), 0, 0.0
    t_train = 0.0
    step = start_step
    try:
        batch = batch0
        for step in range(start_step, end):
            state, m = step_fn(state, batch, jnp.int32(step))
            # Prepare the next batch while the device runs this step, then wait for its loss.
            if step + 1 < end:
                batch = shard_batch(trainer, loader.batch(step + 1))
            loss = float(m["loss"])
            done = step + 1
            if not bool(m["finite"]):
                _diverged(run_dir, summary_base, metrics, done, loss, ckpt_dir)
            steps_since += 1
            loss_sum += loss
            if done % tcfg.log_every == 0 or done == tcfg.steps:
                now = time.perf_counter()
                dt = now - t_last
                t_train += dt
                last_train = train_record(
                    done, loss, loss_sum / steps_since, float(lr_at(step)), float(m["grad_norm"]),
                    float(m["update_norm"]), dt / steps_since, tokens_per_step, flops.per_token, loader.epochs_seen(done),
                )
                metrics.write(last_train)
                t_last, steps_since, loss_sum = time.perf_counter(), 0, 0.0
            if done % tcfg.eval_every == 0 and done != tcfg.steps:
                t_e = time.perf_counter()
                last_eval = do_eval(done, tcfg.eval_sequences)
                t_last += time.perf_counter() - t_e  # evaluation time is not training throughput
            if done % tcfg.checkpoint_every == 0 and done != tcfg.steps:
                t_c = time.perf_counter()
                checkpoint.save(ckpt_dir, done, state, _ckpt_extra(cfg, done), keep=tcfg.keep_checkpoints)
                t_last += time.perf_counter() - t_c
            rep.update(done, {"loss": loss, **{k: last_train.get(k) for k in ("tokens_per_s",)}, **last_eval})
    finally:
        rep.stop()
    if end < tcfg.steps:
        if end not in checkpoint.list_steps(ckpt_dir):
            checkpoint.save(ckpt_dir, end, state, _ckpt_extra(cfg, end), keep=tcfg.keep_checkpoints)
        metrics.close()
        paused = summary_base | {"status": "paused", "step": end, "tokens_seen": end * tokens_per_step}
        write_summary(run_dir, paused)
        return paused
    done = tcfg.steps
    if start_step < done:
        checkpoint.save(ckpt_dir, done, state, _ckpt_extra(cfg, done), keep=tcfg.keep_checkpoints)
    final = do_eval(done, tcfg.final_eval_sequences) if start_step < done or not finished_before else None
    metrics.close()
    return finish(run_dir, summary_base, final, loader.epochs_seen(done), unit, compile_s)


def _has_final(run_dir: Path) -> bool:
    try:
        return read_json(run_dir / SUMMARY).get("status") == "done"
    except (OSError, ValueError):
        return False


def _ckpt_extra(cfg: RunConfig, step: int) -> dict[str, Any]:
    # The loader position and RNG are functions of (seed, step): recorded for readers, not needed to resume.
    return {"loader_position": step, "seed": cfg.seed, "rng": f"fold_in(key({cfg.seed}), stream, step)"}


DIVERGED_HINT = "Expected a finite loss: try a lower train.optimizer.lr or longer warmup"


def _diverged(run_dir: Path, base: dict, metrics: MetricsWriter, step: int, loss: float, ckpt_dir: Path):
    raise DivergedError(f"training {mark_diverged(run_dir, base, metrics, step, loss, ckpt_dir)}. {DIVERGED_HINT}")


def mark_diverged(run_dir: Path, base: dict, metrics: MetricsWriter, step: int, loss: float, ckpt_dir: Path) -> str:
    """Record a divergence (a metrics record, summary status 'diverged'); returns what happened."""
    metrics.write({"kind": "diverged", "step": step, "loss": loss})
    metrics.close()
    good = checkpoint.list_steps(ckpt_dir)
    kept = f"the last good checkpoint (step {good[-1]}) is kept" if good else "no checkpoint had been written yet"
    write_summary(run_dir, base | {"status": "diverged", "step": step, "loss": str(loss)})
    what = f"loss is {loss}" if not math.isfinite(loss) else f"loss {loss:.4g} but non-finite gradients or parameters"
    return f"diverged at step {step}: {what}; {kept} in {ckpt_dir}"


# Pieces of `train` shared with the seed-ensemble loop (lmscale.train.ensemble), so that both
# write the same run directories.


def open_run_dir(run_dir: Path, cfg: RunConfig, data) -> tuple[bool, bool]:
    """Check or create the run directory of `cfg` on prepared `data`: (resumed, finished before)."""
    if is_run_dir(run_dir):
        check_run_data(run_dir, data.manifest)
    resumed = check_or_write_config(run_dir, cfg)
    finished_before = resumed and _has_final(run_dir)
    if not resumed:  # a resumed run keeps the tokenizer and data record it was trained with
        data.tokenizer.save(run_dir / "tokenizer.json")
        atomic_write_json(run_dir / "data.json", data.manifest | {"path": str(data.path)})
    checkpoint.clean_temporaries(run_dir / CHECKPOINTS)
    return resumed, finished_before


def summary_base_of(run_dir: Path, cfg: RunConfig, mesh) -> dict[str, Any]:
    params_n, flops = count_params(cfg.model), count_flops(cfg.model)
    return {
        "run_dir": str(run_dir),
        "name": cfg.name,
        "params_total": params_n.total,
        "params_non_embedding": params_n.non_embedding,
        "flops_per_token": flops.per_token,
        "flop_convention": FLOP_CONVENTION,
        "tokens_per_step": cfg.train.batch_size * cfg.model.context,
        "steps": cfg.train.steps,
        "devices": mesh.devices.size,
        "platform": jax.default_backend(),
    }


def end_step(stop_at: int | None, steps: int, start_step: int, run_dir: Path) -> int:
    """The step this call trains to: `steps`, or the pause requested with `stop_at`."""
    if stop_at is not None and not 0 < stop_at <= steps:
        raise ValueError(f"stop_at={stop_at} must be in 1..{steps}")
    end = steps if stop_at is None else stop_at
    if start_step > end:
        raise LmscaleError(
            f"run {str(run_dir)!r} is already at step {start_step}, past the requested pause at step {end}"
        )
    return end


def train_record(
    done: int, loss: float, loss_avg: float, lr: float, grad_norm: float, update_norm: float,
    step_s: float, tokens_per_step: int, flops_per_token: float, epoch: float,
) -> dict[str, Any]:
    """A metrics.jsonl train record; `step_s` is the mean wall time per step since the last one."""
    tps = tokens_per_step / step_s
    return {
        "kind": "train",
        "step": done,
        "tokens": done * tokens_per_step,
        "loss": loss,
        "loss_avg": loss_avg,
        "lr": lr,
        "grad_norm": grad_norm,
        "update_norm": update_norm,
        "tokens_per_s": tps,
        "flops_per_s": tps * flops_per_token,
        "ms_per_step": 1000 * step_s,
        "epoch": epoch,
    }


def finish(
    run_dir: Path, base: dict[str, Any], final: dict[str, Any] | None, epochs: float, unit: str, compile_s: float
) -> dict[str, Any]:
    """Write and return the summary of a finished run from its metrics.jsonl (`final`: the final
    evaluation record if this call made one, else the last recorded one is used)."""
    all_metrics = read_metrics(Path(run_dir) / METRICS)
    evals = [r for r in all_metrics if r.get("kind") == "eval"]
    final = final or evals[-1]
    trains = [r for r in all_metrics if r.get("kind") == "train"]
    done = base["steps"]
    summary = base | {
        "status": "done",
        "step": done,
        "tokens_seen": done * base["tokens_per_step"],
        "epochs": epochs,
        "final_train_loss": trains[-1]["loss"] if trains else None,
        "final_val_loss": final["val_loss"],
        "final_val_loss_se": final["val_loss_se"],
        f"final_val_bits_per_{unit}": final[f"val_bits_per_{unit}"],
        "final_val_sequences": final["val_sequences"],
        "best_val_loss": min(r["val_loss"] for r in evals),
        "tokens_per_s": float(np.median([r["tokens_per_s"] for r in trains[1:]] or [r["tokens_per_s"] for r in trains] or [0])),
        "compile_s": compile_s,
        "host": platform.node(),
    }
    write_summary(run_dir, summary)
    return summary


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    atomic_write_json(Path(run_dir) / SUMMARY, summary)
