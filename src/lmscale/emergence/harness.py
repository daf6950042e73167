"""The evaluation harness: every model x task under several metrics, with bootstrap intervals.

    rows = evaluate("runs/tiny", "add3,add3r,parity", k_shot=2, n_examples=300, seed=0)
    write_eval_table("runs/tiny", rows)     # lmscale.emergence.results

Per task and model, on the task's held-out test split (`lmscale.emergence.tasks`):

- exact_match: greedy decoding (batched, jitted) of up to L tokens; the generation must equal
  answer + newline. L = answer tokens + 1 (the newline ends the answer and is scored with it).
- token_accuracy: fraction of the L answer tokens that are the argmax under teacher forcing.
  (So exact_match = 1 exactly when token_accuracy = 1: greedy decoding follows the answer as
  long as every argmax is right.)
- edit_distance: Levenshtein distance in tokens between the greedy output (up to and including
  its first newline) and answer + newline, divided by L.
- logprob: log p(answer + newline | prompt) in nats, teacher-forced; token_prob = exp(logprob/L).
- mc_accuracy, brier: where the task has choices, each choice's log-likelihood (choice +
  newline) normalised over the choices (a softmax); accuracy of the most likely, and the
  multi-class Brier score sum_j (q_j - [j = answer])^2.
- pass_until: PassUntil's estimated pass rate of temperature-1 sampling (`passuntil`).

Intervals are percentile bootstraps over examples (the mean of each metric). Models are any
`EvalModel`: a pure `apply(params, tokens) -> logits` plus its tokenizer and context, so tests can
hand-build one with known logits; `model_from_run` opens a run directory.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from lmscale.data.tasks import TERMINATOR, Example, Task, get_task, parse_tasks
from lmscale.emergence.fewshot import with_shots
from lmscale.emergence.passuntil import pass_until, token_pass_draw
from lmscale.emergence.results import METRICS, EvalRow, derive_token_prob
from lmscale.errors import LmscaleError

HARNESS_METRICS = ("exact_match", "token_accuracy", "edit_distance", "logprob", "token_prob", "mc_accuracy", "brier",
                   "pass_until")
MIN_WIDTH = 16  # sequence widths are powers of two from this (capped at the context), to share compilations


@dataclass
class EvalModel:
    """A model the harness can evaluate: `apply(params, tokens[B, T]) -> logits[B, T, vocab]` (pure)."""

    run_id: str
    apply: Callable[[Any, Any], Any]
    params: Any
    context: int
    tokenizer: Any
    vocab_limit: int | None = None  # ids >= this (embedding padding) are never predicted
    info: dict[str, Any] = field(default_factory=dict)  # EvalRow fields: N, N_nonembed, D, C, step, val_loss, ...
    # Models with equal keys share compiled functions (checkpoints of one run, the same config twice).
    jit_key: Any = None
    _fns: dict = field(default_factory=dict, repr=False)

    def fns(self):
        """(score, greedy): jitted once per model (or jit_key); each compiles once per batch shape."""
        if not self._fns:
            if self.jit_key is not None and self.jit_key in _JITTED:
                self._fns.update(_JITTED[self.jit_key])
            else:
                import jax

                self._fns["score"] = jax.jit(partial(_score, self.apply, self.vocab_limit))
                self._fns["greedy"] = jax.jit(partial(_greedy, self.apply, self.vocab_limit))
                if self.jit_key is not None:
                    _JITTED[self.jit_key] = dict(self._fns)
        return self._fns["score"], self._fns["greedy"]


_JITTED: dict[Any, dict] = {}


def _masked(logits, vocab_limit):
    import jax.numpy as jnp

    if vocab_limit is None or vocab_limit >= logits.shape[-1]:
        return logits
    return jnp.where(jnp.arange(logits.shape[-1]) < vocab_limit, logits, -jnp.inf)


def _score(apply, vocab_limit, params, seq):
    """Teacher-forced log p and argmax-correctness of every next token: seq (B, W+1) -> two (B, W)."""
    import jax
    import jax.numpy as jnp

    logits = _masked(apply(params, seq[:, :-1]), vocab_limit)
    logp = jax.nn.log_softmax(logits, axis=-1)
    tgt = seq[:, 1:]
    lp = jnp.take_along_axis(logp, tgt[..., None], axis=-1)[..., 0]
    return lp, jnp.argmax(logits, axis=-1) == tgt


def _greedy(apply, vocab_limit, params, buf, lengths, n_new):
    """Greedy continuation of right-padded prompts: buf (B, W+1), lengths (B,) -> buf with n_new tokens written."""
    import jax
    import jax.numpy as jnp

    rows = jnp.arange(buf.shape[0])

    def body(i, buf):
        pos = lengths + i - 1
        logits = _masked(apply(params, buf[:, :-1]), vocab_limit)
        nxt = jnp.argmax(logits[rows, pos], axis=-1).astype(buf.dtype)
        return buf.at[rows, pos + 1].set(nxt)

    return jax.lax.fori_loop(0, n_new, body, buf)


# ----------------------------------------------------------------------------------------------
# Opening models


def model_from_run(run_dir: str | Path, run_id: str | None = None, info: dict[str, Any] | None = None) -> EvalModel:
    """The newest checkpoint of a run directory (`lmscale.train.run.load_run`) as an EvalModel."""
    from lmscale.model.registry import get_model
    from lmscale.model.sizing import count_flops, count_params
    from lmscale.train.run import load_run

    run_dir = Path(run_dir)
    run = load_run(run_dir)
    m = run.cfg.model
    n = count_params(m)
    d = float(run.step * run.cfg.train.batch_size * m.context)
    base = {"N": float(n.total), "N_nonembed": float(n.non_embedding), "D": d, "C": count_flops(m).per_token * d,
            "step": int(run.step), "seed": int(run.cfg.seed), "family": "", "val_loss": math.nan}
    if run.summary and run.summary.get("final_val_loss") is not None and run.summary.get("step") == run.step:
        base["val_loss"] = float(run.summary["final_val_loss"])
    base.update(info or {})
    return EvalModel(run_id or run_dir.name, get_model(m).apply, run.params, m.context, run.tokenizer,
                     run.tokenizer.vocab_size, base, jit_key=(m.kind, m, run.tokenizer.vocab_size))


# ----------------------------------------------------------------------------------------------
# Per-example evaluation


@dataclass
class TaskResult:
    """Per-example metric values of one task on one model (NaN where a metric does not apply)."""

    task: str
    k_shot: int
    examples: list[Example]
    values: dict[str, np.ndarray]  # metric -> (n,) per-example values
    answer_tokens: np.ndarray  # L per example (answer + terminator)
    outputs: list[str]  # greedy generations (decoded, up to the first terminator)
    chance: dict[str, float]
    seconds: dict[str, float]


def edit_distance(a: Sequence[int], b: Sequence[int]) -> int:
    """Levenshtein distance (insertions, deletions, substitutions of one token each)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def _width(n: int, context: int) -> int:
    """The padded input width for sequences of n tokens: a power of two >= n (>= MIN_WIDTH), at most `context`."""
    return min(context, max(MIN_WIDTH, 1 << max(0, n - 1).bit_length()))


def _batches(n: int, size: int) -> Iterable[np.ndarray]:
    """Index batches of exactly `size` (the last one padded by repeating its first index)."""
    for i in range(0, n, size):
        idx = np.arange(i, min(n, i + size))
        yield np.concatenate([idx, np.repeat(idx[:1], size - len(idx))]), len(idx)


def _teacher_forced(model: EvalModel, prompts: list[np.ndarray], targets: list[np.ndarray], width: int,
                    batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log p, correct, mask), each (n, max target length): teacher-forced over every target token."""
    import jax.numpy as jnp

    score, _ = model.fns()
    n, lmax = len(prompts), max(len(t) for t in targets)
    seq = np.zeros((n, width + 1), np.int32)
    for i, (p, t) in enumerate(zip(prompts, targets)):
        seq[i, : len(p)] = p
        seq[i, len(p): len(p) + len(t)] = t
    lp = np.zeros((n, lmax))
    ok = np.zeros((n, lmax), bool)
    mask = np.zeros((n, lmax), bool)
    for idx, k in _batches(n, batch_size):
        out_lp, out_ok = (np.asarray(x) for x in score(model.params, jnp.asarray(seq[idx])))
        for r in range(k):
            i = idx[r]
            s, L = len(prompts[i]) - 1, len(targets[i])
            lp[i, :L], ok[i, :L], mask[i, :L] = out_lp[r, s: s + L], out_ok[r, s: s + L], True
    return lp, ok, mask


def _greedy_outputs(model: EvalModel, prompts: list[np.ndarray], n_new: int, width: int, batch_size: int) -> np.ndarray:
    import jax.numpy as jnp

    _, greedy = model.fns()
    n = len(prompts)
    buf = np.zeros((n, width + 1), np.int32)
    lengths = np.array([len(p) for p in prompts], np.int32)
    for i, p in enumerate(prompts):
        buf[i, : len(p)] = p
    out = np.zeros((n, n_new), np.int64)
    for idx, k in _batches(n, batch_size):
        res = np.asarray(greedy(model.params, jnp.asarray(buf[idx]), jnp.asarray(lengths[idx]), jnp.int32(n_new)))
        for r in range(k):
            i = idx[r]
            out[i] = res[r, lengths[i]: lengths[i] + n_new]
    return out


def evaluate_task(
    model: EvalModel,
    task: Task,
    k_shot: int = 0,
    n_examples: int = 200,
    seed: int = 0,
    metrics: Sequence[str] = HARNESS_METRICS,
    batch_size: int = 64,
    pass_r: int = 4,
    pass_budget: int = 10_000,
    examples: list[Example] | None = None,
) -> TaskResult:
    """Per-example values of `metrics` for one task (its test split unless `examples` is given)."""
    secs: dict[str, float] = {}
    t0 = time.perf_counter()
    base = examples if examples is not None else task.examples("test", n_examples, seed=seed)
    exs = with_shots(task, base, k_shot, seed=seed)
    tok = model.tokenizer
    term = tok.encode(TERMINATOR)
    prompts = [np.asarray(tok.encode(e.prompt), np.int32) for e in exs]
    targets = [np.concatenate([tok.encode(e.answer), term]).astype(np.int32) for e in exs]
    n_new = max(len(t) for t in targets)
    longest = max(len(p) for p in prompts)
    if longest + n_new > model.context + 1:
        raise LmscaleError(
            f"task {task.name!r} ({k_shot}-shot): prompts of up to {longest} tokens plus {n_new} answer tokens exceed "
            f"the context of {model.run_id!r} ({model.context} tokens); expected fewer shots (--k-shot) or a model "
            "with a longer context"
        )
    width = _width(longest + n_new - 1, model.context)
    L = np.array([len(t) for t in targets], float)
    values: dict[str, np.ndarray] = {}
    nan = np.full(len(exs), np.nan)
    secs["prepare"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    lp, ok, mask = _teacher_forced(model, prompts, targets, width, batch_size)
    values["token_accuracy"] = (ok & mask).sum(1) / L
    values["logprob"] = np.where(mask, lp, 0.0).sum(1)
    secs["teacher_forced"] = time.perf_counter() - t0

    outputs = [""] * len(exs)
    if {"exact_match", "edit_distance"} & set(metrics):
        t0 = time.perf_counter()
        gen = _greedy_outputs(model, prompts, n_new, width, batch_size)
        em, ed = np.zeros(len(exs)), np.zeros(len(exs))
        for i, (g, t) in enumerate(zip(gen, targets)):
            stop = np.flatnonzero(g == term[-1])
            g = g[: stop[0] + 1] if stop.size else g
            em[i] = float(len(g) == len(t) and bool((g == t).all()))
            ed[i] = edit_distance(g.tolist(), t.tolist()) / len(t)
            outputs[i] = tok.decode(g[:-1] if stop.size else g)
        values["exact_match"], values["edit_distance"] = em, ed
        secs["greedy"] = time.perf_counter() - t0

    with_choices = [i for i, e in enumerate(exs) if e.choices]
    if {"mc_accuracy", "brier"} & set(metrics) and with_choices:
        t0 = time.perf_counter()
        flat_p, flat_t, owner = [], [], []
        for i in with_choices:
            for c in exs[i].choices:
                flat_p.append(prompts[i])
                flat_t.append(np.concatenate([tok.encode(c), term]).astype(np.int32))
                owner.append(i)
        cw = _width(longest + max(len(t) for t in flat_t) - 1, model.context)
        if longest + max(len(t) for t in flat_t) > model.context + 1:
            raise LmscaleError(f"task {task.name!r} ({k_shot}-shot): a choice does not fit in the context of "
                               f"{model.run_id!r} ({model.context} tokens); expected fewer shots (--k-shot)")
        clp, _, cmask = _teacher_forced(model, flat_p, flat_t, cw, batch_size)
        ll = np.where(cmask, clp, 0.0).sum(1)
        mc, brier = nan.copy(), nan.copy()
        pos = 0
        for i in with_choices:
            m = len(exs[i].choices)
            s = ll[pos: pos + m]
            q = np.exp(s - s.max())
            q /= q.sum()
            onehot = np.eye(m)[exs[i].label]
            mc[i] = float(np.argmax(s) == exs[i].label)
            brier[i] = float(((q - onehot) ** 2).sum())
            pos += m
        values["mc_accuracy"], values["brier"] = mc, brier
        secs["choices"] = time.perf_counter() - t0

    if "pass_until" in metrics:
        t0 = time.perf_counter()
        res = pass_until(token_pass_draw(np.exp(lp), mask), len(exs), r=pass_r, budget=pass_budget, seed=seed)
        values["pass_until"] = res.rate
        secs["pass_until"] = time.perf_counter() - t0

    token_chance = task.token_chance
    n_ch = [len(e.choices) for e in exs if e.choices]
    mean_ch = float(np.mean(n_ch)) if n_ch else math.nan
    chance = {
        "exact_match": float(np.mean([e.chance for e in exs])),
        "pass_until": float(np.mean([e.chance for e in exs])),
        "token_accuracy": token_chance,
        "logprob": float(np.mean(L) * math.log(token_chance)),
        "edit_distance": math.nan,
        "mc_accuracy": 1.0 / mean_ch,
        "brier": 1.0 - 1.0 / mean_ch,
    }
    values = {k: v for k, v in values.items() if k in metrics}
    return TaskResult(task.name, k_shot, exs, values, L, outputs, chance, secs)


# ----------------------------------------------------------------------------------------------
# Aggregation


def bootstrap_mean(values: np.ndarray, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap interval of the mean over the finite values."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if n_boot < 1 or v.size == 1:
        return mean, math.nan, math.nan
    rng = np.random.default_rng([seed, 0xB007])
    means = v[rng.integers(0, v.size, (n_boot, v.size))].mean(axis=1)
    a = (1 - confidence) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return mean, float(lo), float(hi)


def result_rows(model: EvalModel, res: TaskResult, n_boot: int = 1000, confidence: float = 0.95,
                seed: int = 0) -> list[EvalRow]:
    """Long-format rows (one per metric) of one task result, with the model's N, D, C, step, loss."""
    info = {k: model.info[k] for k in ("N", "N_nonembed", "D", "C", "step", "val_loss", "family", "seed")
            if k in model.info and model.info[k] is not None}
    if "N" not in info:
        raise LmscaleError(f"model {model.run_id!r} has no parameter count N; expected info['N']")
    rows = []
    for metric, v in res.values.items():
        if metric not in METRICS or not np.isfinite(v).any():
            continue
        mean, lo, hi = bootstrap_mean(v, n_boot, confidence, seed)
        rows.append(EvalRow(run_id=model.run_id, task=res.task, k_shot=res.k_shot, metric=metric, value=mean,
                            ci_low=lo, ci_high=hi, n_examples=int(np.isfinite(v).sum()), chance=res.chance[metric],
                            answer_tokens=float(res.answer_tokens.mean()), **info))
    return rows


def evaluate(
    model: EvalModel | str | Path,
    tasks: str | Sequence[str] | Sequence[Task],
    k_shot: int = 0,
    n_examples: int = 200,
    seed: int = 0,
    metrics: Sequence[str] | None = None,
    batch_size: int = 64,
    pass_r: int = 4,
    pass_budget: int = 10_000,
    n_boot: int = 1000,
    confidence: float = 0.95,
    log: Callable[[str], None] | None = None,
) -> list[EvalRow]:
    """Rows of every (task, metric) for one model (an EvalModel or a run directory)."""
    metrics = check_metrics(metrics)
    if isinstance(model, (str, Path)):
        model = model_from_run(model)
    task_list = parse_tasks(tasks) if isinstance(tasks, str) else [t if isinstance(t, Task) else get_task(t) for t in tasks]
    rows: list[EvalRow] = []
    for task in task_list:
        t0 = time.perf_counter()
        need = tuple(metrics) + (("logprob",) if "token_prob" in metrics and "logprob" not in metrics else ())
        res = evaluate_task(model, task, k_shot, n_examples, seed, need, batch_size, pass_r, pass_budget)
        task_rows = result_rows(model, res, n_boot, confidence, seed)
        if "token_prob" in metrics:
            task_rows += derive_token_prob(task_rows)
        rows += [r for r in task_rows if r.metric in metrics]
        if log:
            em = res.values.get("exact_match")
            log(f"{model.run_id} {task.name} ({k_shot}-shot, {len(res.examples)} examples): "
                + (f"exact match {float(np.mean(em)):.3f}, " if em is not None else "")
                + f"log p {float(np.mean(res.values['logprob'])) if 'logprob' in res.values else float('nan'):.3f} nats "
                f"in {time.perf_counter() - t0:.1f}s")
    return rows


def check_metrics(metrics: Sequence[str] | str | None) -> tuple[str, ...]:
    if metrics is None:
        return HARNESS_METRICS
    names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    bad = [m for m in names if m not in HARNESS_METRICS]
    if bad or not names:
        raise LmscaleError(f"--metrics {','.join(names) or '(empty)'}: unknown metric {bad[0] if bad else ''!r}; "
                           f"expected a comma-separated subset of {', '.join(HARNESS_METRICS)}")
    return tuple(names)
