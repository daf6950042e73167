"""Training-time emergence: the induction-head phase change and grokking, on a CPU in minutes.

- Induction (Olsson et al. 2022): sequences of `half` random tokens repeated twice. On the repeated
  half the next token is predictable only by finding the earlier occurrence of the current token
  and copying its successor, which needs two attention layers (a previous-token head feeding an
  induction head). A 2-layer model's loss on the repeated half drops abruptly partway through
  training; a 1-layer control can at best learn "some token already seen" (log(half) nats).
- Grokking (Power et al. 2022; Nanda et al. 2023): (a + b) mod p from a fraction of all pairs,
  full batch, strong weight decay. Train accuracy saturates long before test accuracy jumps.

Both use the foundation transformer (`lmscale.model.transformer`) and the project's AdamW builder,
with their own data and a small jitted loop; every `eval_every` steps the curves are recorded.
The results are also written as an evaluation table along `step` (task per model), so the same
detector (`lmscale.emergence.detect`) finds the transition and `lmscale emergence analyze DIR
--x step` reproduces the verdicts.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pydantic import Field

from lmscale.config import Strict
from lmscale.emergence.results import Curve, EvalRow
from lmscale.errors import LmscaleError

EXPERIMENTS = ("induction", "grokking")


class InductionConfig(Strict):
    vocab: int = Field(64, ge=4, description="random-token vocabulary")
    half: int = Field(32, ge=4, description="length of the random sequence; the model sees it twice")
    depths: tuple[int, ...] = Field((1, 2), description="model depths to compare (1 = the control)")
    width: int = Field(64, gt=0)
    heads: int = Field(4, gt=0)
    lr: float = Field(1e-3, gt=0)
    batch: int = Field(32, gt=0)
    steps: int = Field(800, gt=0)
    warmup: int = Field(50, ge=0)
    eval_every: int = Field(10, gt=0)
    eval_batch: int = Field(128, gt=0)
    seed: int = 0


class GrokkingConfig(Strict):
    p: int = Field(43, ge=5, description="modulus (prime)")
    train_fraction: float = Field(0.7, gt=0, lt=1, description="fraction of the unordered pairs trained on")
    depth: int = Field(1, gt=0)
    width: int = Field(64, gt=0)
    heads: int = Field(4, gt=0)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1.0, ge=0, description="on every parameter (embeddings too)")
    steps: int = Field(5000, gt=0)
    warmup: int = Field(10, ge=0)
    eval_every: int = Field(25, gt=0)
    seed: int = 0


def _model_config(vocab: int, context: int, depth: int, width: int, heads: int):
    from lmscale.config import ModelConfig

    return ModelConfig(depth=depth, width=width, heads=heads, context=context, vocab_size=vocab, dropout=0.0,
                       tie_embeddings=False, bias=True)


def _optimizer(steps: int, lr: float, warmup: int, weight_decay: float, beta2: float, axes, model,
               decay_all: bool = False):
    """The project's AdamW (clip 1.0, constant LR after warmup). `decay_all`: weight decay on every
    parameter, embeddings included, as in the grokking papers (the project's default spares embeddings)."""
    import optax

    from lmscale.config import OptimizerConfig, ScheduleConfig, TrainConfig
    from lmscale.train.optimizer import build_optimizer, schedule_fn

    tc = TrainConfig(steps=steps, batch_size=1, optimizer=OptimizerConfig(lr=lr, weight_decay=weight_decay, beta2=beta2),
                     schedule=ScheduleConfig(kind="constant", warmup=min(warmup, steps)))
    if not decay_all:
        return build_optimizer(tc, axes, model)
    o = tc.optimizer
    return optax.chain(optax.clip_by_global_norm(o.grad_clip),
                       optax.adamw(schedule_fn(tc.schedule, lr, steps), b1=o.beta1, b2=o.beta2, eps=o.eps,
                                   weight_decay=weight_decay))


def _train(model, seed: int, steps: int, eval_every: int, opt_args: dict, batch_fn: Callable,
           evaluate: Callable, progress: Callable[[str], None] | None) -> list[dict[str, Any]]:
    """Generic loop: AdamW on the masked per-token cross-entropy, batch_fn(step) -> (windows, mask);
    `evaluate(params)` every eval_every steps."""
    import jax
    import optax

    from lmscale.model import transformer

    params, axes = transformer.init(model, jax.random.fold_in(jax.random.key(seed), transformer.INIT_STREAM))
    opt = _optimizer(steps=steps, axes=axes, model=model, **opt_args)
    opt_state = opt.init(params)

    def loss(p, batch, mask):
        return (transformer.token_losses(p, batch, model) * mask).sum() / mask.sum()

    @jax.jit
    def step(p, s, batch, mask):
        val, g = jax.value_and_grad(loss)(p, batch, mask)
        upd, s = opt.update(g, s, p)
        return optax.apply_updates(p, upd), s, val

    records = []
    for i in range(steps + 1):
        if i % eval_every == 0 or i == steps:
            rec = {"step": i, **evaluate(params)}
            records.append(rec)
            if progress is not None and i % (eval_every * 10) == 0:
                progress(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in rec.items()))
        if i == steps:
            break
        params, opt_state, _ = step(params, opt_state, *batch_fn(i))
    return records


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


def run_induction(cfg: InductionConfig, progress: Callable[[str], None] | None = None) -> dict[str, list[dict]]:
    """Per depth, records {step, loss_repeated, loss_first, acc_repeated} (nats/token; accuracy on the repeated half)."""
    import jax
    import jax.numpy as jnp

    from lmscale.model import transformer

    T = 2 * cfg.half
    eval_tokens, rep = induction_batch(cfg.seed + 10_000, 0, cfg.eval_batch, cfg.vocab, cfg.half)
    # First-copy targets (unpredictable: log(vocab) nats is the best possible).
    lens = rep.argmax(1)  # index of the first predictable target = ln
    first = (np.arange(T - 1)[None, :] < lens[:, None] - 1).astype(np.float32)
    out = {}
    for depth in cfg.depths:
        model = _model_config(cfg.vocab, T - 1, depth, cfg.width, cfg.heads)

        @jax.jit
        def ev(p, model=model):
            inputs, targets = eval_tokens[:, :-1], eval_tokens[:, 1:]
            logits = transformer.apply(p, inputs, model)
            tl = jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, targets[..., None], -1)[..., 0]
            hit = (logits.argmax(-1) == targets).astype(jnp.float32)
            return (tl * rep).sum() / rep.sum(), (tl * first).sum() / first.sum(), (hit * rep).sum() / rep.sum()

        def evaluate(p):
            lr_, lf, acc = (float(v) for v in ev(p))
            return {"loss_repeated": lr_, "loss_first": lf, "acc_repeated": acc}

        if progress is not None:
            progress(f"induction: depth {depth}")
        recs = _train(model, cfg.seed, cfg.steps, cfg.eval_every,
                      dict(lr=cfg.lr, warmup=cfg.warmup, weight_decay=0.0, beta2=0.99),
                      lambda i: induction_batch(cfg.seed, i, cfg.batch, cfg.vocab, cfg.half), evaluate, progress)
        out[f"depth{depth}"] = [dict(r, N=_n_params(model)) for r in recs]
    return out


def _n_params(model) -> int:
    from lmscale.model.sizing import count_params

    return int(count_params(model).total)


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


def run_grokking(cfg: GrokkingConfig, progress: Callable[[str], None] | None = None) -> dict[str, list[dict]]:
    """Records {step, train_loss, test_loss, train_acc, test_acc}: full-batch AdamW with weight decay."""
    import jax
    import jax.numpy as jnp

    from lmscale.model import transformer

    train, test = grokking_split(cfg.p, cfg.train_fraction, cfg.seed)
    model = _model_config(cfg.p + 1, 3, cfg.depth, cfg.width, cfg.heads)
    mask = np.zeros((len(train), 3), np.float32)
    mask[:, 2] = 1  # only the answer after '=' is scored

    @jax.jit
    def ev(p, data):
        logits = transformer.apply(p, data[:, :3], model)[:, -1]
        tgt = data[:, 3]
        loss = jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, tgt[:, None], -1)[:, 0]
        return loss.mean(), (logits.argmax(-1) == tgt).mean()

    def evaluate(p):
        trl, tra = ev(p, train)
        tel, tea = ev(p, test)
        return {"train_loss": float(trl), "test_loss": float(tel), "train_acc": float(tra), "test_acc": float(tea)}

    recs = _train(model, cfg.seed, cfg.steps, cfg.eval_every,
                  dict(lr=cfg.lr, warmup=cfg.warmup, weight_decay=cfg.weight_decay, beta2=0.98, decay_all=True),
                  lambda i: (train, mask), evaluate, progress)
    return {"grokking": [dict(r, N=_n_params(model)) for r in recs]}


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


def run_experiment(experiment: str, out: str | Path, overrides: dict[str, Any] | None = None,
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train; write {experiment}_steps.csv (every evaluation), {experiment}_curves.png/.csv (the figure),
    eval.csv/json (along step) and {experiment}_summary.json."""
    from lmscale.emergence.results import write_eval_table
    from lmscale.fileio import atomic_write_json

    if experiment not in EXPERIMENTS:
        raise LmscaleError(f"unknown training-time experiment {experiment!r}; expected one of {', '.join(EXPERIMENTS)}")
    cls = InductionConfig if experiment == "induction" else GrokkingConfig
    try:
        cfg = cls(**(overrides or {}))
    except ValueError as e:
        raise LmscaleError(f"bad {experiment} setting: {e.errors()[0]['loc'][0]}: {e.errors()[0]['msg']}") from None
    from lmscale.emergence.detect import MIN_POINTS

    n_evals = cfg.steps // cfg.eval_every + 1 + (cfg.steps % cfg.eval_every > 0)
    if n_evals < MIN_POINTS:
        raise LmscaleError(f"steps={cfg.steps} with eval_every={cfg.eval_every} gives {n_evals} evaluations; the "
                           f"detector needs at least {MIN_POINTS}")
    if experiment == "induction" and not cfg.depths:
        raise LmscaleError("depths is empty; expected model depths such as [1, 2]")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LmscaleError(f"--out {str(out)!r} is a file; expected a directory")
    out.mkdir(parents=True, exist_ok=True)
    if experiment == "induction":
        curves, chance = run_induction(cfg, progress), 1 / cfg.vocab
    else:
        curves, chance = run_grokking(cfg, progress), 1 / cfg.p
    summary = summarize(experiment, curves, chance)
    write_curves(out, experiment, curves)
    write_eval_table(out, eval_rows(experiment, curves, chance))
    fig = curves_figure(out, experiment, curves, summary)
    atomic_write_json(out / f"{experiment}_summary.json", {"config": cfg.model_dump(), "models": summary})
    return {"summary": summary, "figure": str(fig.png), "out": str(out)}


__all__ = ["InductionConfig", "GrokkingConfig", "run_induction", "run_grokking", "run_experiment", "summarize",
           "induction_batch", "grokking_split", "eval_rows", "EXPERIMENTS"]
