"""Seed ensembles: k runs that differ only in seed, trained together by one compiled step.

Scaling sweeps repeat small runs over seeds. `train_ensemble` trains those k runs in one process
and one loop, with one compiled step: `build_trainer(cfg, mesh, members=c)` vmaps the single-run
step over c members whose states are stacked on a leading members axis, and the k / c chunks of
c members run that same executable one after another at every step (`vmap_members` = c).

On accelerators c = k by default: k small models make one larger, better-utilised computation.
On CPU the default is c = 1 (one unbatched executable shared by every member): XLA:CPU is
compute-bound even on small models, and batching members multiplies each kernel's working set,
which measured slower per member than single runs once a member's state and activations
outgrow the caches (benchmarks/seed_ensemble.py on a 2-core EPYC: full vmap ran at ~0.8x of
sequential runs at depth 4 / width 128, 0.97-1.1x at depth 2 / width 64). With c = 1 an ensemble
steps as fast as sequential runs (its step is the single run's program) and compiles once
instead of k times; pass `vmap_members=k` to vmap on CPU too.

Each member is the run `train(cfg_member, run_dir_member)` would make, written to its own run
directory in the same form (config.yaml, tokenizer.json, data.json, metrics.jsonl, checkpoints/,
summary.json), so `load_run` and a later single-run `train` (resume) work on it:

- its init is bitwise its single run's init (the same keys from its seed); its batches come from
  its own `BatchLoader(seed=member seed)` and its dropout keys from (its seed, step), so it sees
  exactly its single run's data and randomness. With c = 1 its steps are its single run's steps;
  with c > 1 they agree up to float summation order in batched kernels (parameters differ by
  ~1e-7 after 30 tiny steps, validation losses by ~1e-8 nats);
- evaluations use the single-run eval of the member's own parameters, so they are exact for
  those parameters;
- timing fields in metrics.jsonl are the member's own progress: `ms_per_step` is the wall time of
  an ensemble step (all members at once) and `tokens_per_s` is the member's tokens per wall
  second, i.e. the ensemble's aggregate throughput divided by k.

Checkpoints: at each checkpoint step every member saves its own unstacked state; older
checkpoints are rotated away only after all members have saved, so a kill between member saves
always leaves a step that every member has. A restart resumes all members from the newest step
whose checkpoints all members can load (later checkpoints and metrics of members that were
ahead are dropped, as a single run drops records past its checkpoint), so a killed and restarted
ensemble ends bitwise identical to an uninterrupted one.

Divergence: a member whose step is non-finite is marked diverged in its own run directory
(metrics record, summary status 'diverged', its last good checkpoint kept) and is no longer
logged, evaluated or saved; the other members train to the end, because their numbers do not
depend on it. Then `DivergedError` names the diverged members. A restart replays the
divergence from the newest step all members share.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from lmscale.config import MeshConfig, RunConfig, config_diff
from lmscale.data.loader import BatchLoader, eval_starts
from lmscale.data.prepare import prepare_data
from lmscale.errors import DivergedError, LmscaleError
from lmscale.fileio import read_json
from lmscale.model.sizing import FLOP_CONVENTION, count_flops, count_params
from lmscale.parallel.mesh import make_mesh
from lmscale.train import checkpoint
from lmscale.train.evaluate import evaluate
from lmscale.train.loop import (
    DIVERGED_HINT,
    Reporter,
    _ckpt_extra,
    end_step,
    finish,
    mark_diverged,
    open_run_dir,
    summary_base_of,
    train_record,
    write_summary,
)
from lmscale.train.metrics import MetricsWriter, read_metrics
from lmscale.train.optimizer import schedule_fn
from lmscale.train.run import CHECKPOINTS, METRICS, SUMMARY, resolve_paths, resolve_vocab
from lmscale.train.step import MEMBERS, Trainer, build_trainer, member_keys, shard_batch


def check_members(cfgs: Sequence[RunConfig], run_dirs: Sequence[Path]) -> None:
    """An ensemble is configs identical except `seed` and `name`, distinct seeds, one run dir each."""
    if not cfgs:
        raise LmscaleError("a seed ensemble needs at least one config; expected configs differing only in seed and name")
    if len(cfgs) != len(run_dirs):
        raise LmscaleError(f"{len(cfgs)} configs but {len(run_dirs)} run directories; expected one run directory per member")
    ref = _without_seed(cfgs[0])
    for i, c in enumerate(cfgs[1:], 1):
        diff = config_diff(ref, _without_seed(c))
        if diff:
            shown = ", ".join(diff[:3]) + (f" and {len(diff) - 3} more" if len(diff) > 3 else "")
            raise LmscaleError(
                f"ensemble member {i} ({c.name!r}) differs from member 0 ({cfgs[0].name!r}) in {shown}; "
                "expected configs identical except seed and name"
            )
    seeds = [c.seed for c in cfgs]
    if len(set(seeds)) != len(seeds):
        raise LmscaleError(f"ensemble seeds {seeds} repeat a seed; expected distinct seeds (repeats train identical runs)")
    dirs = [str(Path(d).resolve()) for d in run_dirs]
    if len(set(dirs)) != len(dirs):
        raise LmscaleError(f"ensemble run directories {[str(d) for d in run_dirs]} repeat a directory; expected one per member")


def _without_seed(cfg: RunConfig) -> dict[str, Any]:
    d = cfg.to_dict()
    d.pop("seed")
    d.pop("name")
    return d


def ensemble_mesh(cfg: MeshConfig, members: int, batch: int, devices=None) -> Mesh:
    """The mesh ('members', 'data', 'fsdp', 'tensor') for `members` vmapped ensemble members.

    Members are independent, so splitting them over devices costs no communication, while
    splitting a step's rows (data parallelism) costs a gradient all-reduce per step. The members
    axis therefore takes the most devices that divide both `members` and the devices left by
    fixed axis sizes; each of its slices gets the mesh `make_mesh` would give a single run
    (micro-batch `batch`) on its share of the devices. With `members` = 1 (the CPU default of
    `train_ensemble`) this is the single run's mesh, rows split over all devices.
    """
    devices = list(devices if devices is not None else jax.devices())
    sizes = (cfg.data, cfg.fsdp, cfg.tensor)
    fixed = int(np.prod([s for s in sizes if s != -1]))
    free = max(1, len(devices) // fixed)
    split = max(d for d in range(1, free + 1) if members % d == 0 and free % d == 0)
    group = len(devices) // split if -1 in sizes else fixed
    base = make_mesh(cfg, devices[:group], batch=batch)
    used = base.devices.size
    grid = np.array(devices[: split * used], dtype=object).reshape((split, *base.devices.shape))
    return Mesh(grid, (MEMBERS, *base.axis_names))


def train_ensemble(
    cfgs: list[RunConfig],
    run_dirs: list[str | Path],
    reporter: Reporter | None = None,
    stop_at: int | None = None,
    vmap_members: int | None = None,
) -> list[dict[str, Any]]:
    """Train (or resume) the seed ensemble `cfgs` into `run_dirs`; returns each member's summary.

    `stop_at` pauses every member at that step, as in `train`. `vmap_members` members are vmapped
    together (a divisor of len(cfgs); default: all of them on accelerators, 1 on CPU). Raises
    `DivergedError` naming the diverged members after the others have finished.
    """
    rep = reporter or Reporter()
    run_dirs = [Path(d) for d in run_dirs]
    cfgs = [resolve_paths(c) for c in cfgs]
    check_members(cfgs, run_dirs)
    k = len(cfgs)
    c = vmap_members or (1 if jax.default_backend() == "cpu" else k)
    if not 0 < c <= k or k % c:
        raise LmscaleError(f"vmap_members={c} does not divide the {k} ensemble members; expected a divisor of {k}")
    data = prepare_data(cfgs[0].data, log=rep.log)
    cfgs = [resolve_vocab(cf, data.vocab_size) for cf in cfgs]
    cfg = cfgs[0]
    tcfg, mcfg = cfg.train, cfg.model
    loaders = [BatchLoader(data.train, mcfg.context, tcfg.batch_size, cf.seed, split="train") for cf in cfgs]
    eval_starts(len(data.val), mcfg.context, 1)
    mesh = ensemble_mesh(cfg.mesh, c, tcfg.batch_size // tcfg.grad_accum)
    trainer = build_trainer(cfg, mesh, members=c)
    chunks = [list(range(j, j + c)) for j in range(0, k, c)]
    keys = [member_keys([cfgs[i].seed for i in chunk]) for chunk in chunks]

    opened = [open_run_dir(d, cf, data) for d, cf in zip(run_dirs, cfgs)]
    ckpt_dirs = [d / CHECKPOINTS for d in run_dirs]
    template = jax.eval_shape(trainer.init_state, keys[0][0])
    if trainer.stacked:  # a member's own state: without the members axis
        template = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), template)
    start_step, loaded = _common_checkpoint(ckpt_dirs, template, rep.warn)
    for d in ckpt_dirs:  # members that were ahead roll back to the common step
        _drop(d, [s for s in checkpoint.list_steps(d) if s > start_step])
    if loaded is None:
        states = [trainer.init_state(init_keys) for init_keys, _ in keys]
    else:
        states = [jax.device_put(_chunk(trainer, [loaded[i] for i in chunk]), trainer.state_shardings) for chunk in chunks]
        rep.log(f"resuming the seed ensemble of {k} from step {start_step}")

    metrics = [MetricsWriter(d / METRICS) for d in run_dirs]
    for w in metrics:
        w.truncate_after(start_step if start_step > 0 else -1)
    prior = [read_metrics(w.path) if w.path.exists() else [] for w in metrics]
    params_n, flops = count_params(mcfg), count_flops(mcfg)
    lr_at = schedule_fn(tcfg.schedule, tcfg.optimizer.lr, tcfg.steps)
    tokens_per_step = tcfg.batch_size * mcfg.context
    unit, upt = data.manifest["splits"]["val"]["unit"], data.units_per_token("val")
    bases = [summary_base_of(d, cf, mesh) for d, cf in zip(run_dirs, cfgs)]
    if start_step == tcfg.steps and all(fin for _, fin in opened):
        rep.log(f"the seed ensemble of {k} is already finished ({tcfg.steps} steps)")
        return [read_json(d / SUMMARY) for d in run_dirs]
    end = end_step(stop_at, tcfg.steps, start_step, run_dirs[0])
    for d, base in zip(run_dirs, bases):
        write_summary(d, base | {"status": "running", "step": start_step})

    # Member i is evaluated by the single-run eval of its own params within its chunk.
    views = [replace(trainer, cfg=cf, eval_step=lambda p, b, i=i: trainer.eval_step(p, b, i % c)) for i, cf in enumerate(cfgs)]

    def do_eval(i: int, step: int, count: int | None) -> dict[str, Any]:
        res = evaluate(views[i], states[i // c]["params"], data.val, upt, unit, count)
        rec = {"kind": "eval", "step": step, "tokens": step * tokens_per_step} | res
        metrics[i].write(rec)
        return rec

    def shard(step: int) -> list[jax.Array]:
        host = _batches(loaders, step)
        return [shard_batch(trainer, host[chunk]) for chunk in chunks]

    t0 = time.perf_counter()
    batches = shard(start_step)
    step_fn = trainer.train_step.lower(states[0], batches[0], jnp.int32(start_step), keys[0][1]).compile()
    compile_s = time.perf_counter() - t0
    rep.log(
        f"seed ensemble of {k} ({', '.join(cf.name for cf in cfgs)}): {params_n.total:,} params each "
        f"({params_n.non_embedding:,} non-embedding), {flops.per_token / 1e6:.2f} MFLOPs/token [{FLOP_CONVENTION}], "
        f"{k // c} chunk(s) of {c} vmapped member(s), {mesh.devices.size} {jax.default_backend()} device(s) as "
        f"{dict(mesh.shape)}, compiled in {compile_s:.1f}s"
    )
    last_eval = [next((r for r in reversed(p) if r.get("kind") == "eval"), {}) for p in prior]
    if start_step == 0:
        last_eval = [do_eval(i, 0, tcfg.eval_sequences) for i in range(k)]

    live = np.ones(k, dtype=bool)
    diverged: list[str] = []
    rep.start(end, start_step)
    t_last, steps_since, loss_sum = time.perf_counter(), 0, np.zeros(k)
    tps = None
    try:
        for step in range(start_step, end):
            out = [step_fn(states[j], batches[j], jnp.int32(step), keys[j][1]) for j in range(len(chunks))]
            states = [s for s, _ in out]
            if step + 1 < end:  # the next batches are built while the device runs this step
                batches = shard(step + 1)
            m = {name: np.concatenate([np.asarray(mj[name]) for _, mj in out]) for name in out[0][1]}
            loss = m["loss"].astype(np.float64)
            done = step + 1
            for i in np.flatnonzero(live & ~m["finite"]):
                what = mark_diverged(run_dirs[i], bases[i], metrics[i], done, float(loss[i]), ckpt_dirs[i])
                diverged.append(f"member {i} ({cfgs[i].name!r}) {what}")
                live[i] = False
            if not live.any():
                break
            steps_since += 1
            loss_sum += loss
            if done % tcfg.log_every == 0 or done == tcfg.steps:
                step_s = (time.perf_counter() - t_last) / steps_since
                tps = tokens_per_step / step_s
                for i in np.flatnonzero(live):
                    metrics[i].write(train_record(
                        done, float(loss[i]), float(loss_sum[i]) / steps_since, float(lr_at(step)), float(m["grad_norm"][i]),
                        float(m["update_norm"][i]), step_s, tokens_per_step, flops.per_token, loaders[i].epochs_seen(done),
                    ))
                t_last, steps_since, loss_sum = time.perf_counter(), 0, np.zeros(k)
            if done % tcfg.eval_every == 0 and done != tcfg.steps:
                t_e = time.perf_counter()
                for i in np.flatnonzero(live):
                    last_eval[i] = do_eval(i, done, tcfg.eval_sequences)
                t_last += time.perf_counter() - t_e  # evaluation time is not training throughput
            if done % tcfg.checkpoint_every == 0 and done != tcfg.steps:
                t_c = time.perf_counter()
                _save_members(ckpt_dirs, live, done, states, trainer, cfgs, tcfg.keep_checkpoints)
                t_last += time.perf_counter() - t_c
            vals = [last_eval[i]["val_loss"] for i in np.flatnonzero(live) if "val_loss" in last_eval[i]]
            rep.update(done, {"loss": float(loss[live].mean()), "tokens_per_s": tps and tps * int(live.sum()),
                              "val_loss": float(np.mean(vals)) if vals else None})
    finally:
        rep.stop()

    summaries: list[dict[str, Any]] = []
    if live.any() and end < tcfg.steps:
        if any(end not in checkpoint.list_steps(ckpt_dirs[i]) for i in np.flatnonzero(live)):
            _save_members(ckpt_dirs, live, end, states, trainer, cfgs, tcfg.keep_checkpoints)
        for i in np.flatnonzero(live):
            metrics[i].close()
            summaries.append(bases[i] | {"status": "paused", "step": end, "tokens_seen": end * tokens_per_step})
            write_summary(run_dirs[i], summaries[-1])
    elif live.any():
        done = tcfg.steps
        if start_step < done:
            _save_members(ckpt_dirs, live, done, states, trainer, cfgs, tcfg.keep_checkpoints)
        for i in np.flatnonzero(live):
            final = do_eval(i, done, tcfg.final_eval_sequences) if start_step < done or not opened[i][1] else None
            metrics[i].close()
            summaries.append(finish(run_dirs[i], bases[i], final, loaders[i].epochs_seen(done), unit, compile_s))
    if diverged:
        rest = f"the other {int(live.sum())} member(s) trained on" if live.any() else "every member diverged"
        raise DivergedError(f"seed ensemble: {'; '.join(diverged)}; {rest}. {DIVERGED_HINT}")
    return summaries


def _batches(loaders: list[BatchLoader], step: int) -> np.ndarray:
    """(members, batch_size, T + 1): each member's own batch of `step`."""
    return np.stack([loader.batch(step) for loader in loaders])


def _common_checkpoint(ckpt_dirs: list[Path], template, warn) -> tuple[int, list | None]:
    """The newest step at which every member has a usable checkpoint, with the members' states;
    (0, None) when the members share no checkpoint step (all start afresh)."""
    listed = [set(checkpoint.list_steps(d)) for d in ckpt_dirs]
    common = sorted(set.intersection(*listed), reverse=True)
    for step in common:
        states = []
        for d in ckpt_dirs:
            try:
                # load_latest only loads the newest usable step; members must load the same one.
                states.append(checkpoint._load_one(d, step, template).state)
            except Exception as err:  # the same failures load_latest skips (torn, corrupt, mismatched)
                warn(f"checkpoint step {step} in {d} is unusable ({type(err).__name__}: {err}); trying the previous common step")
                break
        else:
            return step, states
    if common:
        raise LmscaleError(
            f"the ensemble's run directories share checkpoint steps {sorted(common)} but none is usable in every member "
            "(see the warnings above); expected a valid checkpoint to resume — move the runs aside or use new run directories"
        )
    if any(listed):
        warn("the ensemble's members share no checkpoint step; every member starts again from step 0")
    return 0, None


def _member(trainer: Trainer, chunk_state, j: int):
    """Member j's own state within a chunk's state."""
    return jax.tree.map(lambda x: x[j], chunk_state) if trainer.stacked else chunk_state


def _chunk(trainer: Trainer, member_states: list):
    """A chunk's state from its members' own (host) states."""
    return jax.tree.map(lambda *xs: np.stack(xs), *member_states) if trainer.stacked else member_states[0]


def _save_members(
    ckpt_dirs: list[Path], live: np.ndarray, step: int, states: list, trainer: Trainer, cfgs: list[RunConfig], keep: int
) -> None:
    """Each live member's own state as an ordinary checkpoint; rotation waits until all members
    have saved, so a kill in between still leaves a step every member has."""
    host = jax.device_get(states)
    idx = np.flatnonzero(live)
    c = max(1, trainer.members)
    for i in idx:
        member = _member(trainer, host[i // c], i % c)
        extra = _ckpt_extra(cfgs[i], step) | {"ensemble": {"member": int(i), "members": len(cfgs)}}
        checkpoint.save(ckpt_dirs[i], step, member, extra, keep=keep + 1)
    for i in idx:
        _drop(ckpt_dirs[i], checkpoint.list_steps(ckpt_dirs[i])[:-keep])


def _drop(ckpt_dir: Path, steps: list[int]) -> None:
    for step in steps:
        for suffix in (".json", ".npz"):  # the marker first: a half-deleted checkpoint is never valid
            (ckpt_dir / f"step-{step:08d}{suffix}").unlink(missing_ok=True)
