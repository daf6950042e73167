"""Training on fresh prompts every step, through the one training core (`lmscale.train.core.fit`).

Every step draws its prompts from ``fold_in(fold_in(key(seed), step), DATA_STREAM)`` and
parameters come from ``fold_in(key(seed), INIT_STREAM)`` (`lmscale.train.step.seed_keys`), so a
run is a function of its config: a run killed (or paused with `stop_at`) and resumed ends bitwise
identical on CPU. The model is the registered one of the config's model section
(`lmscale.icl.model.model_spec`: ``icl_gpt`` or ``icl_lsa``), its loss the mean squared error
over the x positions of every prefix (Garg; with a curriculum only the first `n_active`
positions count, through the batch's mask, which, the model being causal, equals training on the
shorter prompt) or, for the LSA, at the query. The hooks are the core's: divergence check,
'train' records every `train.log_every` steps (with the curriculum's d_active and n_active),
checkpoints every `train.checkpoint_every`, the progress bar.

Runs train on a one-device mesh (the first device: the CPU, or one accelerator), as before the
training core, so a run computes bitwise what it did then (checked: 2k steps of
configs/icl/garg-linear.yaml and von-oswald.yaml end with the same parameters). The models are
small (10^2-10^5 parameters, 64-2048 prompts a step); data parallelism over the two CPU devices
the `lmscale` command exposes measured 1.2x slower for the Garg GPT's step and 1.5x faster for
the LSA's (batch 2048), with other float rounding, so it is not the default.

Seed ensembles (``train.seeds: k``, seeds seed, seed+1, ...) train in one loop, each member in its
own ordinary run directory ``<run>/members/<i>/`` whose config is the ICL config with that
member's seed and ``seeds: 1`` (so `lmscale icl eval` and a later `train` of that directory work
on it). The group directory holds the ensemble's ``config.yaml`` and ``summary.json`` (with every
member's final loss); `load_run(run, member)` reads either layout. A single run (k = 1) is its own
run directory. On accelerators all k members are vmapped into one compiled step; on CPU the step
serves one member at a time (`default_vmap_members`), which is bitwise each member's single run: a
vmapped step's temporary buffer is k times larger, and XLA:CPU maps a fresh one at every
dispatch (measured by benchmarks/icl_train.py on the 2-core VM, 4 seeds of the Garg GPT with a
step per dispatch: 134 MB, 32,846 page faults and ~45 ms per step). With prompts drawn inside the
compiled program and log_every steps per call, the core runs at the pre-core chunked scan's speed
(medians of 5 rounds of 100 steps at load 1.3: Garg GPT 17.6 against 17.8 ms/step, LSA 14.2
against 14.1; 4 seeds of the Garg GPT vmapped 1.03x, one member at a time 1.12x).
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from lmscale.config import TrainConfig, read_yaml
from lmscale.errors import DivergedError, LmscaleError
from lmscale.fileio import read_json
from lmscale.icl import model as icl_model
from lmscale.icl.config import ICLConfig, validate_icl_config
from lmscale.model.registry import get_model
from lmscale.parallel.mesh import make_mesh
from lmscale.parallel.rules import resolve_rules
from lmscale.train import checkpoint, core
from lmscale.train.core import CHECKPOINTS, CONFIG, Checkpoints, Hook, Member, Progress, Reporter, StopOnDivergence, TrainLog
from lmscale.train.optimizer import build_optimizer, schedule_fn
from lmscale.train.step import Trainer, build_trainer, execution_for

DATA_STREAM = 1
MEMBERS_DIR = "members"  # <run>/members/<i>/: the members of a seed ensemble


def default_vmap_members(k: int) -> int:
    """Members of a k-seed ensemble per compiled step: all of them on accelerators, one on CPU (see the module docstring)."""
    return 1 if jax.default_backend() == "cpu" else k


def member_seeds(cfg: ICLConfig) -> list[int]:
    return [cfg.train.seed + i for i in range(cfg.train.seeds)]


def curriculum_at(cfg: ICLConfig, step: int) -> tuple[int, int]:
    """(active dimensions, active points) at `step`: the curriculum's, else the full sizes."""
    c = cfg.train.curriculum
    return (cfg.task.d, cfg.n_points) if c is None else c.at(step)


def batch_for_step(cfg: ICLConfig, seed, step, d_active=None):
    """The `lmscale.icl.tasks.Batch` of prompts of member `seed` at `step` (`d_active`: the curriculum's)."""
    from lmscale.icl.tasks import sample_batch

    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), step), DATA_STREAM)
    return sample_batch(cfg.task, key, cfg.train.batch_size, cfg.n_points, d_active)


def _prompts_key(cfg: ICLConfig) -> str:
    """What fixes the prompt function (the seed and step are its arguments)."""
    return json.dumps({"task": cfg.task.model_dump(mode="json"), "n": cfg.n_points, "batch": cfg.train.batch_size,
                       "curriculum": None if cfg.train.curriculum is None else cfg.train.curriculum.model_dump()},
                      sort_keys=True)


def batch_fn(cfg: ICLConfig) -> Callable:
    """Jittable ``(seed, step) -> {"xs": (B, k, d), "ys": (B, k), "mask": (B, k)}``: `batch_for_step`
    with the curriculum at `step` (d_active, and the mask of the predicted positions, the first
    n_active), traced, so the training core draws prompts inside the compiled steps."""
    c = cfg.train.curriculum

    def active(sched, step):  # `Schedule.at`, traced
        return jnp.minimum(sched.end, sched.start + sched.inc * (step // sched.interval))

    def fn(seed, step):
        d_act, n_act = (None, cfg.n_points) if c is None else (active(c.dims, step), active(c.points, step))
        b = batch_for_step(cfg, seed, step, d_act)
        mask = (jnp.arange(cfg.n_points) < n_act).astype(jnp.float32)
        return {"xs": b.xs, "ys": b.ys, "mask": jnp.broadcast_to(mask, b.ys.shape)}

    return fn


def batches(cfg: ICLConfig, seed: int) -> Callable[[int], dict[str, Any]]:
    """Member `seed`'s batch source on the host side: step -> `batch_fn(cfg)(seed, step)` (compiled once)."""
    fn = icl_model.compiled(("prompts", _prompts_key(cfg)), lambda: batch_fn(cfg))

    def batch(step: int) -> dict[str, Any]:
        return fn(jnp.int32(seed), jnp.int32(step))

    return batch


def trainer_key(cfg: ICLConfig) -> str:
    """What fixes the compiled train step: everything but the name, evaluation, sweep, the seed
    (the step takes the members' keys) and bookkeeping, so reruns, resumes and seed variants reuse it."""
    d = cfg.model_dump(mode="json", exclude={"name", "eval", "sweep"})
    for k in ("seed", "seeds", "log_every", "checkpoint_every", "keep_checkpoints"):
        d["train"].pop(k)
    return json.dumps(d, sort_keys=True)


def icl_trainer(cfg: ICLConfig, members: int = 1) -> Trainer:
    """The core's trainer of `cfg`'s model (AdamW from the train section) for chunks of `members`
    members, on a one-device mesh; built once per `trainer_key` in this process, so every run of a
    test session or sweep with the same model and training reuses its compiled step."""

    def make() -> Trainer:
        mesh = make_mesh(devices=jax.devices()[:1])
        rules = resolve_rules()
        model = get_model(icl_model.model_spec(cfg), execution_for(mesh, rules))
        t = cfg.train
        opt = build_optimizer(TrainConfig(steps=t.steps, batch_size=t.batch_size, optimizer=t.optimizer, schedule=t.schedule),
                              model.axes)
        return build_trainer(model, opt, mesh, rules=rules, batch_size=t.batch_size, members=members,
                             batch_fn=batch_fn(cfg))

    return icl_model.cached(("trainer", trainer_key(cfg), members), make)


# ----------------------------------------------------------------------------------------------
# Run directories


def load_run_config(run_dir: str | Path) -> ICLConfig:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise LmscaleError(f"{str(run_dir)!r} is not an ICL run directory; expected it to contain {CONFIG}")
    raw = read_yaml(path, "ICL run config", f"the {CONFIG} lmscale wrote")  # one-line errors, aliases refused
    if not isinstance(raw, dict):
        raise LmscaleError(f"ICL run config {str(path)!r} holds a {type(raw).__name__}; expected the mapping lmscale wrote")
    return validate_icl_config(raw, source=str(path))


def _normalize(raw: dict[str, Any]) -> dict[str, Any]:
    return validate_icl_config(raw).to_dict()


def member_config(cfg: ICLConfig, i: int) -> ICLConfig:
    """Member i of a seed ensemble as a run of its own: seed train.seed + i, seeds 1."""
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"seed": cfg.train.seed + i, "seeds": 1})})


def member_dir(run_dir: str | Path, cfg: ICLConfig, member: int) -> Path:
    """The run directory of member `member`: the run itself for a single run, else members/<i>/."""
    return Path(run_dir) if cfg.train.seeds == 1 else Path(run_dir) / MEMBERS_DIR / str(member)


class _Summary(Hook):
    """The fields of an ICL summary the core does not write: the last train loss and the wall time."""

    def start(self, run: core.Run) -> None:
        self.t0 = time.perf_counter()

    def summary(self, run: core.Run, i: int) -> dict[str, Any]:
        last = run.latest[i].get("train")
        return {"final_train_loss": last["loss"] if last else None, "train_seconds": time.perf_counter() - self.t0}


def _summary_base(cfg: ICLConfig, run_dir: Path, seeds: list[int]) -> dict[str, Any]:
    counts = icl_model.count_params(cfg)
    return {"run_dir": str(run_dir), "name": cfg.name, "kind": cfg.model.kind, "params": counts.total,
            "params_garg_convention": counts.garg_convention, "seeds": seeds, "steps": cfg.train.steps,
            "platform": jax.default_backend()}


def train(cfg: ICLConfig, run_dir: str | Path, reporter: Reporter | None = None, stop_at: int | None = None,
          vmap_members: int | None = None) -> dict[str, Any]:
    """Train (or resume) the run in `run_dir`; `stop_at` pauses after that step (status 'paused').
    `vmap_members`: members of a seed ensemble vmapped together (a divisor of train.seeds; default
    `default_vmap_members(k)`).

    Returns the run's summary (a seed ensemble's: the group summary, also in `run_dir`/summary.json).
    """
    rep = reporter or Reporter()  # quiet; the CLI passes a RichReporter
    run_dir = Path(run_dir)
    t = cfg.train
    if stop_at is not None and not 0 < stop_at <= t.steps:
        raise LmscaleError(f"stop_at={stop_at}; expected a step in 1..{t.steps}")
    seeds = member_seeds(cfg)
    k = len(seeds)
    c = vmap_members or default_vmap_members(k)
    if not 0 < c <= k or k % c:
        raise LmscaleError(f"vmap_members={c} does not divide train.seeds={k}; expected a divisor of {k}")
    if k == 1:
        cfgs, dirs = [cfg], [run_dir]
    else:  # the group directory first: a resume with another config is refused before anything is written
        core.open_run_dir(Member(seed=t.seed, batches=lambda step: None, run_dir=run_dir, config=cfg.to_dict(),
                                 normalize=_normalize))
        cfgs = [member_config(cfg, i) for i in range(k)]
        dirs = [member_dir(run_dir, cfg, i) for i in range(k)]
    trainer = icl_trainer(cfg, members=c)
    members = [Member(seed=s, batches=batches(cfg, s), run_dir=d, config=cf.to_dict(), name=f"seed {s}",
                      normalize=_normalize, summary_base=_summary_base(cf, d, [s]))
               for s, cf, d in zip(seeds, cfgs, dirs)]
    log = TrainLog(t.log_every, lr_at=schedule_fn(t.schedule, t.optimizer.lr, t.steps),
                   extra=lambda run, i: dict(zip(("d_active", "n_active"), curriculum_at(cfg, run.step - 1))))
    hooks = [StopOnDivergence(), log, Checkpoints(every=t.checkpoint_every, keep=t.keep_checkpoints), Progress(log), _Summary()]
    counts = icl_model.count_params(cfg)

    def describe(run: core.Run) -> str:
        how = f" ({c} member(s) per compiled step)" if k > 1 else ""
        return (f"{cfg.name}: {cfg.model.kind}, {counts.total:,} params ({counts.garg_convention:,} in Garg's convention), "
                f"{k} seed(s){how}, {jax.default_backend()}")

    # Prompts are drawn inside the compiled steps, log_every steps per call (as the lab's own loop did
    # before the training core, whose chunked scan it keeps the speed of; benchmarks/icl_train.py).
    run = partial(core.fit, trainer, members, t.steps, hooks, stop_at=stop_at, reporter=rep, describe=describe,
                  steps_per_call=t.log_every)
    if k == 1:
        return run()[0]
    try:
        run()
    except DivergedError:
        _write_group_summary(cfg, run_dir, dirs)
        raise
    return _write_group_summary(cfg, run_dir, dirs)


def _write_group_summary(cfg: ICLConfig, run_dir: Path, dirs: list[Path]) -> dict[str, Any]:
    """The ensemble's summary from its members' (status: theirs when they agree, else 'diverged' when one did)."""
    subs = [read_json(d / core.SUMMARY) for d in dirs]
    statuses = {s.get("status") for s in subs}
    status = statuses.pop() if len(statuses) == 1 else ("diverged" if "diverged" in statuses else "mixed")
    finals = [s.get("final_train_loss") for s in subs]
    ok = [f for f in finals if f is not None]
    summary = _summary_base(cfg, run_dir, member_seeds(cfg)) | {
        "status": status, "step": min(int(s.get("step", 0)) for s in subs),
        "final_train_loss": sum(ok) / len(ok) if ok else None,  # the members' mean
        "member_final_train_loss": finals, "member_status": [s.get("status") for s in subs],
        "members": [str(d) for d in dirs],
    }
    core.write_summary(run_dir, summary)
    return summary


class LoadedRun(NamedTuple):
    cfg: ICLConfig  # the run's config (a seed ensemble's: the group config)
    params: Any  # one member's params
    step: int
    members: int
    run_dir: Path  # the member's run directory (metrics.jsonl, checkpoints/)


def load_run(run_dir: str | Path, member: int = 0, warn=None) -> LoadedRun:
    """The config and newest checkpoint's parameters of ensemble member `member` of a run.

    Reads both layouts (a single run, an ensemble's members/<i>/), and run directories written
    before the training core (one store of ``{"params", "opt"}`` states, stacked over members).
    """
    cfg = load_run_config(run_dir)
    if not 0 <= member < cfg.train.seeds:
        raise LmscaleError(f"member={member}; run {str(run_dir)!r} has {cfg.train.seeds} member(s), "
                           f"expected 0..{cfg.train.seeds - 1}")
    d = member_dir(run_dir, cfg, member)
    template = icl_trainer(cfg).abstract_member_state()
    warnings: list[str] = []
    ckpt = checkpoint.load_latest(d / CHECKPOINTS, template, warn=warnings.append)
    if ckpt is not None:
        for w in warnings:
            if warn is not None:
                warn(w)
        return LoadedRun(cfg, ckpt.state["params"], ckpt.step, cfg.train.seeds, d)
    legacy = _load_legacy(run_dir, cfg, member, template)
    if legacy is not None:
        return legacy
    for w in warnings:
        if warn is not None:
            warn(w)
    raise LmscaleError(f"run {str(d)!r} has no usable checkpoint; expected one in {str(d / CHECKPOINTS)!r} (train it first)")


def _load_legacy(run_dir: str | Path, cfg: ICLConfig, member: int, template) -> LoadedRun | None:
    """Member `member` of a run directory written by the lab's own loop before the training core
    (state ``{"params", "opt"}``, an ensemble's members stacked in one store), or None."""
    k = cfg.train.seeds
    old = {"params": template["params"], "opt": template["opt_state"]}
    old = jax.tree.map(lambda s: jax.ShapeDtypeStruct(((k,) if k > 1 else ()) + tuple(s.shape), s.dtype), old)
    ckpt = checkpoint.load_latest(Path(run_dir) / CHECKPOINTS, old)
    if ckpt is None:
        return None
    params = ckpt.state["params"] if k == 1 else jax.tree.map(lambda a: a[member], ckpt.state["params"])
    return LoadedRun(cfg, jax.tree.map(jnp.asarray, params), ckpt.step, k, Path(run_dir))
