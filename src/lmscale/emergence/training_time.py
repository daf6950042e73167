"""Training-time emergence: the induction-head phase change and grokking, on a CPU in minutes.

- Induction (Olsson et al. 2022): sequences of `half` random tokens repeated twice. On the repeated
  half the next token is predictable only by finding the earlier occurrence of the current token
  and copying its successor, which needs two attention layers (a previous-token head feeding an
  induction head). A 2-layer model's loss on the repeated half drops abruptly partway through
  training; a 1-layer control can at best learn "some token already seen" (log(half) nats).
- Grokking (Power et al. 2022; Nanda et al. 2023): (a + b) mod p from a fraction of all pairs,
  full batch, strong weight decay. Train accuracy saturates long before test accuracy jumps.

Both build the registered decoder (`get_model(DecoderConfig(...))`) and the project's AdamW
builder, and train every model through the one training loop, `lmscale.train.core.fit`, as a
member with its own run directory under the experiment's output directory (``OUT/runs/depth1``,
``OUT/runs/depth2``, ``OUT/runs/grokking``: config.yaml, metrics.jsonl, checkpoints/,
summary.json). Batches are pure functions of (seed, step) (`induction_batch`, `grokking_split`),
so running the command again resumes a killed experiment from each model's newest checkpoint
(every `checkpoint_every` steps) and skips the models already finished. Every `eval_every` steps
(and at step 0 and the last step) a hook writes a 'probe' record of the curves' values into the
model's metrics.jsonl; the curves are read back from there, evaluations made before a resume
included.

The results are also written as an evaluation table along `step` (task per model), so the same
detector (`lmscale.emergence.detect`) finds the transition and `lmscale emergence analyze DIR
--x step` reproduces the verdicts.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pydantic import Field

from lmscale.config import MAX_BATCH, MAX_CONTEXT, MAX_DEPTH, MAX_HEADS, MAX_STEPS, MAX_VOCAB, MAX_WIDTH, Strict
from lmscale.emergence.results import Curve, EvalRow
from lmscale.errors import LmscaleError

EXPERIMENTS = ("induction", "grokking")
RUNS = "runs"  # OUT/runs/<model>: each model's run directory
PROBE = "probe"  # the metrics.jsonl record kind of the periodic evaluations


# Upper bounds: lmscale.config's absolute caps; what this machine holds is `check_sizes`.
class InductionConfig(Strict):
    vocab: int = Field(64, ge=4, le=MAX_VOCAB, description="random-token vocabulary")
    half: int = Field(32, ge=4, le=MAX_CONTEXT // 2, description="length of the random sequence; the model sees it twice")
    depths: tuple[int, ...] = Field((1, 2), description="model depths to compare (1 = the control)")
    width: int = Field(64, gt=0, le=MAX_WIDTH)
    heads: int = Field(4, gt=0, le=MAX_HEADS)
    lr: float = Field(1e-3, gt=0)
    batch: int = Field(32, gt=0, le=MAX_BATCH)
    steps: int = Field(800, gt=0, le=MAX_STEPS)
    warmup: int = Field(50, ge=0)
    eval_every: int = Field(10, gt=0)
    eval_batch: int = Field(128, gt=0, le=MAX_BATCH)
    checkpoint_every: int = Field(200, gt=0, description="steps between checkpoints (a killed run resumes from the newest)")
    seed: int = 0


class GrokkingConfig(Strict):
    # p^2 pairs are tabulated and trained on as one full batch: 2^16 is already 4 GiB of pairs.
    p: int = Field(43, ge=5, le=2**16, description="modulus (prime)")
    train_fraction: float = Field(0.7, gt=0, lt=1, description="fraction of the unordered pairs trained on")
    depth: int = Field(1, gt=0, le=MAX_DEPTH)
    width: int = Field(64, gt=0, le=MAX_WIDTH)
    heads: int = Field(4, gt=0, le=MAX_HEADS)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1.0, ge=0, description="on every parameter (embeddings too)")
    steps: int = Field(5000, gt=0, le=MAX_STEPS)
    warmup: int = Field(10, ge=0)
    eval_every: int = Field(25, gt=0)
    checkpoint_every: int = Field(500, gt=0, description="steps between checkpoints (a killed run resumes from the newest)")
    seed: int = 0


def _model_config(vocab: int, context: int, depth: int, width: int, heads: int):
    from lmscale.model.decoder import DecoderConfig

    return DecoderConfig(depth=depth, width=width, heads=heads, context=context, vocab_size=vocab, dropout=0.0,
                         tie_embeddings=False, bias=True)


def _train_config(steps: int, lr: float, warmup: int, weight_decay: float, beta2: float):
    from lmscale.config import OptimizerConfig, ScheduleConfig, TrainConfig

    return TrainConfig(steps=steps, batch_size=1, optimizer=OptimizerConfig(lr=lr, weight_decay=weight_decay, beta2=beta2),
                       schedule=ScheduleConfig(kind="constant", warmup=min(warmup, steps)))


def _optimizer(steps: int, lr: float, warmup: int, weight_decay: float, beta2: float, axes, model,
               decay_all: bool = False):
    """The project's AdamW (clip 1.0, constant LR after warmup). `decay_all`: weight decay on every
    parameter, embeddings included, as in the grokking papers (the project's default spares embeddings)."""
    import optax

    from lmscale.train.optimizer import build_optimizer, schedule_fn

    tc = _train_config(steps, lr, warmup, weight_decay, beta2)
    if not decay_all:
        return build_optimizer(tc, axes, model)
    o = tc.optimizer
    return optax.chain(optax.clip_by_global_norm(o.grad_clip),
                       optax.adamw(schedule_fn(tc.schedule, lr, steps), b1=o.beta1, b2=o.beta2, eps=o.eps,
                                   weight_decay=weight_decay))


# ----------------------------------------------------------------------------------------------
# Training: every model is one member of the training core (`lmscale.train.core.fit`)


def _describe(rec: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in rec.items())


@functools.cache
def _probe_hook_class():
    """The probe hook (a class made on first use, so importing this module loads no JAX)."""
    from lmscale.train.core import Hook

    class Probe(Hook):
        """A 'probe' record {kind, step, **evaluate(params)} of the member at step 0, every `every`
        steps and at the last step; a step that already has one (written before a kill) is skipped,
        so a resumed run's records are those of an uninterrupted one."""

        def __init__(self, every: int, evaluate: Callable[[Any], dict[str, float]],
                     progress: Callable[[str], None] | None):
            self.every, self.evaluate, self.progress = every, evaluate, progress
            self.records: list[dict[str, Any]] = []

        def _record(self, run) -> None:
            if run.latest[0].get(PROBE, {}).get("step") == run.step:
                return
            rec = {"kind": PROBE, "step": run.step, **self.evaluate(run.params(0))}
            run.write(0, rec)
            if self.progress is not None and run.step % (self.every * 10) == 0:
                self.progress(_describe({k: v for k, v in rec.items() if k != "kind"}))

        def start(self, run) -> None:
            if run.step % self.every == 0:
                self._record(run)

        def step(self, run) -> None:
            self._record(run)

        def end(self, run) -> None:
            self._record(run)

        def close(self, run) -> None:
            self.records = run.records(0)  # in-memory runs keep their records only here

        def summary(self, run, i: int) -> dict[str, Any]:
            last = run.latest[i].get(PROBE, {})
            return {"final_probe": {k: v for k, v in last.items() if k != "kind"}}

    return Probe


def _reporter(progress: Callable[[str], None] | None):
    from lmscale.train.core import Reporter

    class Say(Reporter):
        def log(self, msg: str) -> None:
            if progress is not None:
                progress(msg)

        def warn(self, msg: str) -> None:
            if progress is not None:
                progress(f"warning: {msg}")

    return Say()


def _settings(cfg: Strict, exclude: tuple[str, ...]) -> dict[str, Any]:
    """The experiment settings that decide one model's training and probes (its config.yaml record)."""
    return cfg.model_dump(mode="json", exclude=set(exclude) | {"checkpoint_every"})


def _member_record(experiment: str, name: str, spec, settings: dict[str, Any]) -> dict[str, Any]:
    return {"experiment": experiment, "model_name": name, "settings": settings, "model": spec.model_dump(mode="json")}


def _normalizer(cls: type[Strict], exclude: tuple[str, ...]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Validation that fills defaults, so a config.yaml written by an older version compares equal."""
    from lmscale.model.decoder import DecoderConfig

    def normalize(raw: dict[str, Any]) -> dict[str, Any]:
        try:
            return {**raw, "settings": _settings(cls.model_validate(raw["settings"]), exclude),
                    "model": DecoderConfig.model_validate(raw["model"]).model_dump(mode="json")}
        except (KeyError, TypeError, ValueError):
            return raw

    return normalize


def _check_resumable(out: Path, experiment: str, name: str, run_dir: Path, record: dict[str, Any],
                     normalize: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Fail before any training when --out holds this model's run with other settings."""
    import yaml

    from lmscale.config import config_diff, safe_load_unique
    from lmscale.train.core import CONFIG, is_run_dir

    if not is_run_dir(run_dir):
        return
    try:
        existing = safe_load_unique((run_dir / CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return  # the training core reports it
    diff = config_diff(normalize(existing), normalize(record)) if isinstance(existing, dict) else ["config.yaml"]
    if diff:
        shown = ", ".join(diff[:3]) + (f" and {len(diff) - 3} more" if len(diff) > 3 else "")
        raise LmscaleError(f"--out {str(out)!r} already holds the {experiment} model {name!r} ({run_dir}) trained with "
                           f"other settings ({shown}); expected the same settings to resume it, or a new --out")


def _fit_member(*, name: str, spec, record: dict[str, Any], normalize: Callable, run_dir: Path | None, seed: int,
                steps: int, batch_size: int, opt_args: dict, batches: Callable[[int], dict],
                make_evaluate: Callable, eval_every: int, checkpoint_every: int,
                progress: Callable[[str], None] | None) -> list[dict[str, Any]]:
    """Train (or resume, or find finished) one model as the single member of `lmscale.train.core.fit`:
    AdamW on the model's mask-weighted cross-entropy over `batches(step)` ({"tokens", "loss_mask"}),
    'probe' records of `make_evaluate(trainer)(params)` every `eval_every` steps, checkpoints every
    `checkpoint_every`. Returns the probe records (without 'kind'), read back from the run directory's
    metrics.jsonl (so the evaluations made before a resume are there)."""
    import jax

    from lmscale.model.registry import get_model
    from lmscale.parallel.mesh import MeshConfig, make_mesh
    from lmscale.train import core
    from lmscale.train.metrics import read_metrics
    from lmscale.train.optimizer import schedule_fn
    from lmscale.train.step import build_trainer, execution_for

    # One device, as the experiments always ran: these models are far too small to split, and the
    # numbers then do not depend on how many CPU cores the CLI exposes as devices.
    mesh_cfg = MeshConfig()
    mesh = make_mesh(mesh_cfg, jax.devices()[:1])
    model = get_model(spec, execution_for(mesh, mesh_cfg.rules))
    optimizer = _optimizer(steps=steps, axes=model.axes, model=spec, **opt_args)
    trainer = build_trainer(model, optimizer, mesh, rules=mesh_cfg.rules, batch_size=batch_size)
    tc = _train_config(steps, opt_args["lr"], opt_args["warmup"], opt_args["weight_decay"], opt_args["beta2"])
    n_params = model.param_count().total
    probe = _probe_hook_class()(eval_every, make_evaluate(trainer), progress)
    hooks = [core.StopOnDivergence(),
             core.TrainLog(eval_every, lr_at=schedule_fn(tc.schedule, tc.optimizer.lr, steps)),
             probe,  # before the checkpoint of the same step: a committed step always has its probe
             core.Checkpoints(every=checkpoint_every, keep=2)]
    member = core.Member(seed=seed, batches=batches, run_dir=run_dir, config=record, name=name, normalize=normalize,
                         summary_base={"experiment": record["experiment"], "name": name, "params_total": n_params,
                                       "steps": steps})
    core.fit(trainer, [member], steps, hooks, reporter=_reporter(progress),
             describe=lambda run: f"{name}: {n_params:,} params, {steps} steps")
    recs = read_metrics(run_dir / core.METRICS) if run_dir is not None else probe.records
    return [{k: v for k, v in r.items() if k != "kind"} | {"N": n_params} for r in recs if r.get("kind") == PROBE]


def _run_dir(out: Path | None, name: str) -> Path | None:
    return None if out is None else Path(out) / RUNS / name


def induction_batch(seed: int, step: int, batch: int, vocab: int, half: int) -> tuple[np.ndarray, np.ndarray]:
    """(windows (batch, 2 half), mask (batch, 2 half - 1)): a random segment S of random length l in
    [half/2, half], then S again, then random filler; deterministic in (seed, step). The mask marks the
    predictable targets (the second copy after its first token). A fixed l would let one layer copy
    by position (attend l - 1 back); a random l leaves only the content-based induction mechanism."""
    rng = np.random.default_rng([seed, step])
    T = 2 * half
    toks = rng.integers(0, vocab, (batch, T), dtype=np.int32)
    lens = rng.integers(half // 2, half + 1, batch)
    mask = np.zeros((batch, T - 1), np.float32)
    j = np.arange(T)
    for b, ln in enumerate(lens):
        toks[b, ln:2 * ln] = toks[b, :ln]
        # target index t predicts token t + 1; the second copy's tokens ln+1 .. 2 ln - 1 are predictable
        mask[b] = (j[1:] >= ln + 1) & (j[1:] <= 2 * ln - 1)
    return toks, mask


_INDUCTION_PER_MODEL = ("depths",)  # settings that are not one model's (config.yaml keeps its depth instead)


def run_induction(cfg: InductionConfig, progress: Callable[[str], None] | None = None,
                  out: str | Path | None = None) -> dict[str, list[dict]]:
    """Per depth, records {step, loss_repeated, loss_first, acc_repeated, N} (nats/token; accuracy on the
    repeated half). With `out`, depth d trains in the run directory out/runs/depth<d> (resumed when
    there, not retrained when finished); without, in memory."""
    import jax
    import jax.numpy as jnp

    T = 2 * cfg.half
    eval_tokens, rep = induction_batch(cfg.seed + 10_000, 0, cfg.eval_batch, cfg.vocab, cfg.half)
    # First-copy targets (unpredictable: log(vocab) nats is the best possible).
    lens = rep.argmax(1)  # index of the first predictable target = ln
    first = (np.arange(T - 1)[None, :] < lens[:, None] - 1).astype(np.float32)
    normalize = _normalizer(InductionConfig, _INDUCTION_PER_MODEL)
    plan = []
    for depth in cfg.depths:
        name, spec = f"depth{depth}", _model_config(cfg.vocab, T - 1, depth, cfg.width, cfg.heads)
        record = _member_record("induction", name, spec, _settings(cfg, _INDUCTION_PER_MODEL) | {"depth": depth})
        run_dir = _run_dir(out, name)
        if run_dir is not None:
            _check_resumable(Path(out), "induction", name, run_dir, record, normalize)
        plan.append((name, spec, record, run_dir))

    def make_evaluate(trainer):
        model = trainer.model

        def ev(p, b):
            inputs, targets = b["tokens"][:, :-1], b["tokens"][:, 1:]
            logits = model.apply(p, inputs)
            tl = jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, targets[..., None], -1)[..., 0]
            hit = (logits.argmax(-1) == targets).astype(jnp.float32)
            r, f = b["rep"], b["first"]
            return (tl * r).sum() / r.sum(), (tl * f).sum() / f.sum(), (hit * r).sum() / r.sum()

        f = trainer.compile_eval(ev)
        data = jax.device_put({"tokens": eval_tokens, "rep": rep, "first": first}, trainer.eval_batch_sharding)

        def evaluate(p):
            lr_, lf, acc = (float(v) for v in f(p, data, 0))
            return {"loss_repeated": lr_, "loss_first": lf, "acc_repeated": acc}

        return evaluate

    def batches(i):
        toks, mask = induction_batch(cfg.seed, i, cfg.batch, cfg.vocab, cfg.half)
        return {"tokens": toks, "loss_mask": mask}

    curves = {}
    for name, spec, record, run_dir in plan:
        if progress is not None:
            progress(f"induction: depth {spec.depth}")
        curves[name] = _fit_member(
            name=name, spec=spec, record=record, normalize=normalize, run_dir=run_dir, seed=cfg.seed, steps=cfg.steps,
            batch_size=cfg.batch, opt_args=dict(lr=cfg.lr, warmup=cfg.warmup, weight_decay=0.0, beta2=0.99),
            batches=batches, make_evaluate=make_evaluate, eval_every=cfg.eval_every,
            checkpoint_every=cfg.checkpoint_every, progress=progress)
    return curves


def grokking_split(p: int, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) windows [a, b, =, (a + b) mod p] over all p^2 pairs, split by a seeded permutation
    of the *unordered* pairs: (a, b) and (b, a) always fall on the same side. Otherwise a model that
    memorises the train set answers every test pair whose mirror it saw (commutativity), and test
    accuracy starts near the train fraction instead of at chance, hiding the jump."""
    a, b = np.triu_indices(p)
    perm = np.random.default_rng(seed).permutation(len(a))
    n_train = int(round(train_fraction * len(a)))

    def windows(idx):
        x, y = a[idx], b[idx]
        off = x != y  # add the mirror of every off-diagonal pair
        x, y = np.concatenate([x, y[off]]), np.concatenate([y, x[off]])
        return np.stack([x, y, np.full(len(x), p), (x + y) % p], 1).astype(np.int32)

    return windows(perm[:n_train]), windows(perm[n_train:])


def run_grokking(cfg: GrokkingConfig, progress: Callable[[str], None] | None = None,
                 out: str | Path | None = None) -> dict[str, list[dict]]:
    """Records {step, train_loss, test_loss, train_acc, test_acc, N}: full-batch AdamW with weight decay.
    With `out`, the model trains in the run directory out/runs/grokking (resumed when there); without,
    in memory."""
    import jax
    import jax.numpy as jnp

    train, test = grokking_split(cfg.p, cfg.train_fraction, cfg.seed)
    name, spec = "grokking", _model_config(cfg.p + 1, 3, cfg.depth, cfg.width, cfg.heads)
    normalize = _normalizer(GrokkingConfig, ())
    record = _member_record("grokking", name, spec, _settings(cfg, ()))
    run_dir = _run_dir(out, name)
    if run_dir is not None:
        _check_resumable(Path(out), "grokking", name, run_dir, record, normalize)
    mask = np.zeros((len(train), 3), np.float32)
    mask[:, 2] = 1  # only the answer after '=' is scored
    batch = {"tokens": train, "loss_mask": mask}

    def make_evaluate(trainer):
        model = trainer.model

        def ev(p, data):
            logits = model.apply(p, data[:, :3])[:, -1]
            tgt = data[:, 3]
            loss = jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, tgt[:, None], -1)[:, 0]
            return loss.mean(), (logits.argmax(-1) == tgt).mean()

        f = trainer.compile_eval(ev)
        tr, te = (jax.device_put(x, trainer.eval_batch_sharding) for x in (train, test))

        def evaluate(p):
            trl, tra = f(p, tr, 0)
            tel, tea = f(p, te, 0)
            return {"train_loss": float(trl), "test_loss": float(tel), "train_acc": float(tra), "test_acc": float(tea)}

        return evaluate

    recs = _fit_member(
        name=name, spec=spec, record=record, normalize=normalize, run_dir=run_dir, seed=cfg.seed, steps=cfg.steps,
        batch_size=len(train),
        opt_args=dict(lr=cfg.lr, warmup=cfg.warmup, weight_decay=cfg.weight_decay, beta2=0.98, decay_all=True),
        batches=lambda i: batch, make_evaluate=make_evaluate, eval_every=cfg.eval_every,
        checkpoint_every=cfg.checkpoint_every, progress=progress)
    return {name: recs}


def _curve(recs: list[dict], key: str, metric: str, chance: float, task: str) -> Curve:
    x = np.array([r["step"] for r in recs], float)
    y = np.array([r[key] for r in recs], float)
    nan = np.full(len(x), math.nan)
    return Curve(x=x, y=y, low=nan, high=nan, n=np.full(len(x), -1), chance=chance, task=task, metric=metric,
                 x_name="step", higher_is_better=metric != "edit_distance")


def first_step(recs: list[dict], key: str, level: float) -> int | None:
    """The first evaluated step at which recs[key] >= level."""
    return next((r["step"] for r in recs if r[key] >= level), None)


def summarize(experiment: str, curves: dict[str, list[dict]], chance: float, ratio_min: float = 1.5) -> dict[str, Any]:
    """Detector evidence along steps per model, with the transition step (logistic midpoint).

    Induction: every depth first learns, within the same few hundred steps, that tokens already in
    the context are likely (a 1-layer model can do this: accuracy ~0.15); the phase change is the
    second drop, which only 2+ layers make. So the detector judges each deeper model's excess
    accuracy over the shallowest (the control), acc_d(step) - acc_control(step), and the raw curve
    as well. Grokking: the detector judges test accuracy from the step train accuracy reaches 99%,
    and the summary adds the steps at which train and test accuracy reach 99% / 95%.
    """
    from lmscale.emergence.detect import MIN_POINTS, analyze_curve, verdict

    out: dict[str, Any] = {}
    key = "acc_repeated" if experiment == "induction" else "test_acc"
    names = list(curves)
    control = names[0] if experiment == "induction" else None
    for name, recs in curves.items():
        raw = analyze_curve(_curve(recs, key, "token_accuracy", chance, name), n_boot=0, ratio_min=ratio_min)
        row: dict[str, Any] = {"raw_verdict": verdict({"token_accuracy": raw}).verdict, "final": recs[-1][key],
                               "raw_B_over_L": raw.ratio}
        judged = raw
        if experiment == "induction" and name != control:
            ctrl = np.array([r[key] for r in curves[control]])
            if len(ctrl) == len(recs):
                excess = _curve(recs, key, "token_accuracy", 0.0, f"{name} - {control}")
                excess = replace(excess, y=excess.y - ctrl)
                judged = analyze_curve(excess, n_boot=0, ratio_min=ratio_min)
                row["judged"] = f"accuracy in excess of {control}"
        elif experiment == "induction":
            row["judged"] = "raw accuracy (the control)"
        else:
            # Grokking is about what happens after memorisation: judge test accuracy from the first
            # step with train accuracy >= 99% on (the early partial generalisation is not the jump).
            s99 = first_step(recs, "train_acc", 0.99)
            after = [r for r in recs if s99 is not None and r["step"] >= s99]
            if len(after) >= MIN_POINTS:
                judged = analyze_curve(_curve(after, key, "token_accuracy", chance, name), n_boot=0,
                                       ratio_min=ratio_min)
                row["judged"] = f"test accuracy from step {s99} (train accuracy >= 99%)"
            else:
                row["judged"] = "test accuracy (train accuracy never reached 99% early enough)"
        v = verdict({"token_accuracy": judged})
        row.update(verdict=v.verdict, explanation=v.explanation, B=judged.breakthroughness, L=judged.linearity,
                   B_over_L=judged.ratio, delta_aic=judged.delta_aic, onset=judged.onset,
                   transition_step=judged.logistic.get("midpoint"),
                   width_10_90_steps=judged.logistic.get("width_10_90"))
        if experiment == "induction":
            row.update(loss_repeated_start=recs[0]["loss_repeated"], loss_repeated_end=recs[-1]["loss_repeated"],
                       loss_first_end=recs[-1]["loss_first"])
        else:
            row.update(train_acc_99_step=first_step(recs, "train_acc", 0.99),
                       test_acc_95_step=first_step(recs, "test_acc", 0.95))
        out[name] = row
    return out


def eval_rows(experiment: str, curves: dict[str, list[dict]], chance: float) -> list[EvalRow]:
    """The curves as an evaluation table along step (task = '<experiment>_<model>')."""
    rows = []
    for name, recs in curves.items():
        task = f"{experiment}_{name}" if experiment == "induction" else experiment
        for r in recs:
            common = dict(run_id=task, family=experiment, N=float(r["N"]), step=int(r["step"]), task=task,
                          answer_tokens=1.0, n_examples=-1)
            if experiment == "induction":
                rows += [EvalRow(**common, metric="token_accuracy", value=r["acc_repeated"], chance=chance),
                         EvalRow(**common, metric="logprob", value=-r["loss_repeated"], chance=math.log(chance))]
            else:
                rows += [EvalRow(**common, metric="token_accuracy", value=r["test_acc"], chance=chance),
                         EvalRow(**common, metric="logprob", value=-r["test_loss"], chance=math.log(chance))]
    return rows


def write_curves(out: Path, experiment: str, curves: dict[str, list[dict]]) -> Path:
    import csv
    import io

    from lmscale.fileio import atomic_write_text

    cols = ["model", *curves[next(iter(curves))][0].keys()]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for name, recs in curves.items():
        for r in recs:
            w.writerow([name, *[repr(r[c]) if isinstance(r[c], float) else r[c] for c in cols[1:]]])
    path = out / f"{experiment}_steps.csv"  # the figure writes {experiment}_curves.png/.csv
    atomic_write_text(path, buf.getvalue())
    return path


def curves_figure(out: Path, experiment: str, curves: dict[str, list[dict]], summary: dict[str, Any]):
    """Loss and accuracy against step for each model (PNG + CSV)."""
    from lmscale.report.common import finish_axes, new_figure, resolve_out, save_figure

    keys = (("loss_repeated", "loss on the repeated half (nats/token)"), ("acc_repeated", "accuracy on the repeated half")) \
        if experiment == "induction" else (("train_loss", "loss (nats/token)"), ("train_acc", "accuracy"))
    fig, axes, _ = new_figure(2)
    rows = []
    for i, (name, recs) in enumerate(curves.items()):
        steps = [r["step"] for r in recs]
        for ax, (k, label) in zip(axes, keys):
            series = [k] if experiment == "induction" else [k, k.replace("train", "test")]
            for j, s in enumerate(series):
                ax.plot(steps, [r[s] for r in recs], color=f"C{i + j}", label=f"{name}: {s}")
                rows += [(name, s, st, r[s]) for st, r in zip(steps, recs)]
            finish_axes(ax, "training step", label, logx=False)
            mid = summary[name].get("transition_step")
            if mid and summary[name]["verdict"] == "emergent":
                ax.axvline(mid, ls="--", color=f"C{i}", lw=0.8)
    for ax in axes:
        ax.legend(fontsize=7)
    fig.suptitle(f"{experiment}: dashed = detected transition step", fontsize=10)
    return save_figure(fig, resolve_out(out, f"{experiment}_curves"), ["model", "series", "step", "value"], rows)


def check_sizes(cfg: InductionConfig | GrokkingConfig) -> None:
    """One-line errors for models that cannot be built (past the caps, width not a multiple of heads)
    or cannot fit in this machine's memory (`lmscale.train.limits`), from the settings alone."""
    from pydantic import ValidationError

    from lmscale.config import format_validation_error
    from lmscale.model.sizing import count_params
    from lmscale.train.limits import Need, check_fits, transformer_needs

    induction = isinstance(cfg, InductionConfig)
    kind = "induction" if induction else "grokking"
    if induction:
        shapes = [(cfg.vocab, 2 * cfg.half, d) for d in cfg.depths]
        rows, names = max(cfg.batch, cfg.eval_batch), {"batch": f"batch={cfg.batch}, eval_batch={cfg.eval_batch}",
                                                        "context": f"half={cfg.half}", "vocab": f"vocab={cfg.vocab}"}
    else:
        shapes = [(cfg.p + 1, 3, cfg.depth)]
        rows, names = cfg.p * cfg.p, {"batch": f"p={cfg.p} (p^2 pairs, one full batch)", "context": "3 tokens",
                                      "vocab": f"p={cfg.p}"}
    for vocab, context, depth in shapes:
        try:
            spec = _model_config(vocab, context, depth, cfg.width, cfg.heads)
        except ValidationError as err:
            raise LmscaleError(format_validation_error(err, f"({kind} settings)")) from None
        needs = transformer_needs(params=count_params(spec).total, depth=depth, width=cfg.width,
                                  mlp_hidden=spec.mlp_hidden, heads=cfg.heads, context=context, vocab=vocab,
                                  micro_batch=rows, names=names | {"depth": f"depth={depth}", "width": f"width={cfg.width}"})
        if not induction:
            needs.append(Need("the table of pairs", 16.0 * cfg.p * cfg.p, f"p={cfg.p}", f"{cfg.p}^2 pairs x 16 bytes"))
        check_fits(needs, f"smaller {kind} settings")


def run_experiment(experiment: str, out: str | Path, overrides: dict[str, Any] | None = None,
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train (or resume) each model in out/runs/<model>; write {experiment}_steps.csv (every evaluation),
    {experiment}_curves.png/.csv (the figure), eval.csv/json (along step) and {experiment}_summary.json."""
    from lmscale.emergence.results import write_eval_table
    from lmscale.fileio import atomic_write_json

    if experiment not in EXPERIMENTS:
        raise LmscaleError(f"unknown training-time experiment {experiment!r}; expected one of {', '.join(EXPERIMENTS)}")
    cls = InductionConfig if experiment == "induction" else GrokkingConfig
    try:
        cfg = cls(**(overrides or {}))
    except ValueError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        value = f"={first['input']!r}" if first["type"] != "extra_forbidden" else ""
        raise LmscaleError(f"bad {experiment} setting: {loc}{value}: {first['msg']}") from None
    from lmscale.emergence.detect import MIN_POINTS

    n_evals = cfg.steps // cfg.eval_every + 1 + (cfg.steps % cfg.eval_every > 0)
    if n_evals < MIN_POINTS:
        raise LmscaleError(f"steps={cfg.steps} with eval_every={cfg.eval_every} gives {n_evals} evaluations; the "
                           f"detector needs at least {MIN_POINTS}")
    if experiment == "induction" and not cfg.depths:
        raise LmscaleError("depths is empty; expected model depths such as [1, 2]")
    check_sizes(cfg)  # models valid and within this machine's memory: before anything is created
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LmscaleError(f"--out {str(out)!r} is a file; expected a directory")
    out.mkdir(parents=True, exist_ok=True)
    if experiment == "induction":
        curves, chance = run_induction(cfg, progress, out), 1 / cfg.vocab
    else:
        curves, chance = run_grokking(cfg, progress, out), 1 / cfg.p
    summary = summarize(experiment, curves, chance)
    write_curves(out, experiment, curves)
    write_eval_table(out, eval_rows(experiment, curves, chance))
    fig = curves_figure(out, experiment, curves, summary)
    atomic_write_json(out / f"{experiment}_summary.json", {"config": cfg.model_dump(), "models": summary})
    return {"summary": summary, "figure": str(fig.png), "out": str(out)}


__all__ = ["InductionConfig", "GrokkingConfig", "run_induction", "run_grokking", "run_experiment", "summarize",
           "induction_batch", "grokking_split", "eval_rows", "EXPERIMENTS"]
