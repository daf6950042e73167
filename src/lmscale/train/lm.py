"""Language-model runs of a `RunConfig`: `train` (one run) and `train_ensemble` (a seed ensemble),
both through the one training core (`lmscale.train.core.fit`).

The data are prepared (`lmscale.data.prepare`), each member draws its batches from its own
`BatchLoader(seed)` (a pure function of the step), and the hooks are the standard ones:
divergence check, 'train' records every `train.log_every` steps, validation every
`train.eval_every` (all held-out windows at the end), checkpoints every
`train.checkpoint_every`, the progress bar.

Seed ensembles: k runs that differ only in seed, trained by one compiled step in one loop
(`vmap_members` = c members vmapped together, the k / c chunks one after another at every step).
On accelerators c = k by default: k small models make one larger, better-utilised computation.
On CPU the default is c = 1 (one unbatched executable shared by every member): XLA:CPU is
compute-bound even on small models, and batching members multiplies each kernel's working set,
which measured slower per member than single runs once a member's state and activations
outgrow the caches (benchmarks/seed_ensemble.py on a 2-core EPYC: full vmap ran at ~0.8x of
sequential runs at depth 4 / width 128, 0.97-1.1x at depth 2 / width 64). With c = 1 a member's
steps are its single run's steps, bitwise, and the ensemble compiles once instead of k times;
with c > 1 they agree up to float summation order (parameters ~1e-7 apart after 30 tiny steps).
Each member is exactly the run `train(cfg_member, run_dir_member)` makes, in its own ordinary
run directory, so `load_run` and a later single-run `train` (resume) work on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from lmscale.config import config_diff
from lmscale.data.loader import BatchLoader, eval_starts
from lmscale.data.prepare import prepare_data, source_checksum
from lmscale.errors import LmscaleError
from lmscale.fileio import atomic_write_json
from lmscale.model.registry import get_model
from lmscale.model.sizing import FLOP_CONVENTION
from lmscale.parallel.mesh import MeshConfig, make_mesh
from lmscale.train import core
from lmscale.train.config import RunConfig, validate_config
from lmscale.train.core import Checkpoints, Member, Progress, Reporter, StopOnDivergence, TrainLog
from lmscale.train.evaluate import Validation
from lmscale.train.optimizer import build_optimizer, schedule_fn
from lmscale.train.run import check_run_data, check_run_source, resolve_paths, resolve_vocab
from lmscale.train.step import MEMBERS, build_trainer, execution_for


def compute_dtype(cfg: RunConfig):
    return jnp.bfloat16 if cfg.train.precision == "bfloat16" else jnp.float32


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
    core.check_seeds_and_dirs([c.seed for c in cfgs], run_dirs)


def _without_seed(cfg: RunConfig) -> dict[str, Any]:
    d = cfg.to_dict()
    d.pop("seed")
    d.pop("name")
    return d


def ensemble_mesh(cfg: MeshConfig, members: int, batch: int, devices=None) -> Mesh:
    """The mesh for `members` vmapped ensemble members: a single run's mesh when `members` = 1; else
    ('members', 'data', 'fsdp', 'tensor').

    Members are independent, so splitting them over devices costs no communication, while
    splitting a step's rows (data parallelism) costs a gradient all-reduce per step. The members
    axis therefore takes the most devices that divide both `members` and the devices left by
    fixed axis sizes; each of its slices gets the mesh `make_mesh` would give a single run
    (micro-batch `batch`) on its share of the devices.
    """
    devices = list(devices if devices is not None else jax.devices())
    if members == 1:
        return make_mesh(cfg, devices, batch=batch)
    sizes = (cfg.data, cfg.fsdp, cfg.tensor)
    fixed = int(np.prod([s for s in sizes if s != -1]))
    free = max(1, len(devices) // fixed)
    split = max(d for d in range(1, free + 1) if members % d == 0 and free % d == 0)
    group = len(devices) // split if -1 in sizes else fixed
    base = make_mesh(cfg, devices[:group], batch=batch)
    used = base.devices.size
    grid = np.array(devices[: split * used], dtype=object).reshape((split, *base.devices.shape))
    return Mesh(grid, (MEMBERS, *base.axis_names))


def lm_trainer(cfg: RunConfig, mesh: Mesh, members: int = 1):
    """The trainer of a RunConfig's model on `mesh` (its loss, AdamW, micro-batching)."""
    rules = cfg.mesh.rules
    model = get_model(cfg.model, execution_for(mesh, rules, compute_dtype(cfg)))
    optimizer = build_optimizer(cfg.train, model.axes, cfg.model)
    return build_trainer(model, optimizer, mesh, rules=rules, batch_size=cfg.train.batch_size,
                         grad_accum=cfg.train.grad_accum, members=members)


def summary_base(run_dir: Path, cfg: RunConfig, mesh: Mesh) -> dict[str, Any]:
    model = get_model(cfg.model)
    params_n, flops = model.param_count(), model.flop_count()
    return {
        "run_dir": str(run_dir),
        "name": cfg.name,
        "params_total": params_n.total,
        "params_non_embedding": params_n.non_embedding,
        "flops_per_token": flops.per_token,
        "flop_convention": flops.convention,
        "tokens_per_step": cfg.train.batch_size * cfg.model.context,
        "steps": cfg.train.steps,
        "devices": mesh.devices.size,
        "platform": jax.default_backend(),
    }


def train(cfg: RunConfig, run_dir: str | Path, reporter: Reporter | None = None, stop_at: int | None = None) -> dict[str, Any]:
    """Train (or resume) the run in `run_dir`; returns the summary also written to summary.json.

    `stop_at` pauses the run after that many steps with a checkpoint there (status 'paused'):
    sweeps use it to fork WSD cooldown branches from a trunk run at exact steps.
    """
    return train_ensemble([cfg], [run_dir], reporter, stop_at=stop_at)[0]


def train_ensemble(
    cfgs: list[RunConfig],
    run_dirs: list[str | Path],
    reporter: Reporter | None = None,
    stop_at: int | None = None,
    vmap_members: int | None = None,
) -> list[dict[str, Any]]:
    """Train (or resume) the seed ensemble `cfgs` into `run_dirs`; returns each member's summary.

    `stop_at` pauses every member at that step. `vmap_members` members are vmapped together (a
    divisor of len(cfgs); default: all of them on accelerators, 1 on CPU). Raises
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
    if any(core.is_run_dir(d) for d in run_dirs):  # a changed corpus is refused before its cache is rebuilt
        checksum = source_checksum(cfgs[0].data)
        for d in run_dirs:
            check_run_source(d, checksum)
    data = prepare_data(cfgs[0].data, log=rep.log)
    cfgs = [resolve_vocab(cf, data.vocab_size) for cf in cfgs]
    cfg = cfgs[0]
    tcfg, mcfg = cfg.train, cfg.model
    # Validate the data against the context before anything is written.
    loaders = [BatchLoader(data.train, mcfg.context, tcfg.batch_size, cf.seed, split="train") for cf in cfgs]
    eval_starts(len(data.val), mcfg.context, 1)
    micro = tcfg.batch_size // tcfg.grad_accum
    mesh = ensemble_mesh(cfg.mesh, c, micro)
    trainer = lm_trainer(cfg, mesh, members=c)

    def on_open(run_dir: Path, resumed: bool) -> None:
        if resumed:  # a resumed run keeps the tokenizer and data record it was trained with
            check_run_data(run_dir, data.manifest)
        else:
            data.tokenizer.save(run_dir / "tokenizer.json")
            atomic_write_json(run_dir / "data.json", data.manifest | {"path": str(data.path)})

    members = [
        Member(seed=cf.seed, batches=loader.batch, run_dir=d, config=cf.to_dict(), name=cf.name,
               normalize=lambda raw: validate_config(raw).to_dict(), on_open=on_open,
               summary_base=summary_base(d, cf, mesh))
        for cf, d, loader in zip(cfgs, run_dirs, loaders)
    ]
    flops = trainer.model.flop_count()
    params_n = trainer.model.param_count()
    tokens_per_step = tcfg.batch_size * mcfg.context
    log = TrainLog(tcfg.log_every, lr_at=schedule_fn(tcfg.schedule, tcfg.optimizer.lr, tcfg.steps),
                   tokens_per_step=tokens_per_step, flops_per_token=flops.per_token,
                   extra=lambda run, i: {"epoch": loaders[i].epochs_seen(run.step)})
    hooks = [
        StopOnDivergence(),
        log,
        Validation(trainer, data.val, mcfg.context, micro, data.units_per_token("val"),
                   data.manifest["splits"]["val"]["unit"], every=tcfg.eval_every, count=tcfg.eval_sequences,
                   final_count=tcfg.final_eval_sequences, tokens_per_step=tokens_per_step,
                   epochs_at=lambda i, step: loaders[i].epochs_seen(step)),
        Checkpoints(every=tcfg.checkpoint_every, keep=tcfg.keep_checkpoints),
        Progress(log),
    ]

    def describe(run) -> str:
        who = cfg.name if k == 1 else f"seed ensemble of {k} ({', '.join(cf.name for cf in cfgs)})"
        how = f"{k // c} chunk(s) of {c} vmapped member(s), " if k > 1 else ""
        return (f"{who}: {params_n.total:,} params{' each' if k > 1 else ''} ({params_n.non_embedding:,} non-embedding), "
                f"{flops.per_token / 1e6:.2f} MFLOPs/token [{FLOP_CONVENTION}], {how}{mesh.devices.size} "
                f"{jax.default_backend()} device(s){' as ' + str(dict(mesh.shape)) if k > 1 else ''}")

    return core.fit(trainer, members, tcfg.steps, hooks, stop_at=stop_at, reporter=rep, describe=describe)
