"""Synthetic evaluation tables with a known truth: the mirage arithmetic of Schaeffer et al. (2023).

Per-token cross-entropy falls as a power law, -log p(N) = (N/c)^alpha with alpha < 0, so the
per-token accuracy p(N) = exp(-(N/c)^alpha) is smooth in log N, while exact match over an answer of
L tokens, p^L = exp(-L (N/c)^alpha), stays near zero and then shoots up. The continuous metrics of
the same model (log p(answer) = L log p, normalised edit distance ~ 1 - p) stay smooth.

`mirage_rows` renders a ladder into EvalRow rows (optionally with binomial sampling noise and Wilson
intervals), for tests, demos and `lmscale emergence synthetic`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lmscale.emergence.results import EvalRow


def token_accuracy(N, c: float, alpha: float) -> np.ndarray:
    """p(N) = exp(-(N/c)^alpha), alpha < 0 (per-token cross-entropy (N/c)^alpha falls with N)."""
    return np.exp(-((np.asarray(N, float) / c) ** alpha))


def exact_match(N, c: float, alpha: float, L: float) -> np.ndarray:
    """p(N)^L: all L answer tokens right."""
    return token_accuracy(N, c, alpha) ** L


def wilson_interval(k, n, z: float = 1.959963984540054) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion k/n (defined at k = 0 and k = n, unlike Wald)."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    # Exact bounds at k = 0 and k = n (the formula leaves rounding residue there).
    return np.where(k <= 0, 0.0, np.clip(mid - half, 0, 1)), np.where(k >= n, 1.0, np.clip(mid + half, 0, 1))


@dataclass(frozen=True)
class SyntheticTask:
    """A task whose per-token probability is `kind`: 'power' (the mirage, smooth) or 'logistic'
    (a real jump in the per-token probability itself, centred at N = c, width `width` decades)."""

    name: str
    L: int
    c: float
    alpha: float = -0.3
    kind: str = "power"
    width: float = 0.15

    def p(self, N) -> np.ndarray:
        if self.kind == "logistic":
            z = (np.log10(np.asarray(N, float)) - math.log10(self.c)) / self.width
            return 0.02 + 0.97 / (1 + np.exp(-z))
        return token_accuracy(N, self.c, self.alpha)


# The demo suite: one mirage, one truly sharp task, one smooth task, one that has not emerged yet.
DEFAULT_TASKS = (
    SyntheticTask("mirage_add", L=30, c=1.87e4, alpha=-0.6),
    SyntheticTask("jump_copy", L=4, c=3e7, kind="logistic"),
    SyntheticTask("smooth_short", L=1, c=1e3, alpha=-0.25),
    SyntheticTask("hard_mul", L=30, c=3e10, alpha=-0.2),
)


def loss_of(N) -> np.ndarray:
    """The synthetic ladder's validation loss, 0.9 + 25 N^-0.3 nats/token (below log 64 = 4.16 from N = 1e4 up)."""
    return 0.9 + 25 * np.asarray(N, float) ** -0.3


def ladder(n_scales: int = 13, n_min: float = 1e4, n_max: float = 1e10) -> np.ndarray:
    return np.geomspace(n_min, n_max, n_scales)


def mirage_rows(N=None, tasks=DEFAULT_TASKS, n_examples: int = 0, vocab: int = 64, seed: int = 0,
                family: str = "synthetic", tokens_per_param: float = 20.0) -> list[EvalRow]:
    """EvalRow rows for every task x scale x metric (exact_match, token_accuracy, token_prob, logprob,
    edit_distance). With n_examples > 0, exact match and token accuracy are binomial draws (the
    answers of n_examples examples) with Wilson 95% intervals; with 0 they are the exact expectations.
    val_loss is the aggregate power law `loss_of(N)` (nats/token); D = tokens_per_param N; C = 6 N D."""
    N = ladder() if N is None else np.asarray(N, float)
    rng = np.random.default_rng(seed)
    rows: list[EvalRow] = []
    for i, n in enumerate(N):
        run = f"syn-{i:02d}"
        D = tokens_per_param * n
        common = dict(run_id=run, family=family, seed=seed, N=float(n), N_nonembed=float(n), D=float(D),
                      C=float(6 * n * D), step=1000, val_loss=float(loss_of(n)))
        for t in tasks:
            p = float(t.p(n))
            em, lo_em, hi_em = p ** t.L, math.nan, math.nan
            tok, lo_tok, hi_tok = p, math.nan, math.nan
            if n_examples > 0:
                k = rng.binomial(n_examples, em)
                em = k / n_examples
                lo_em, hi_em = map(float, wilson_interval(k, n_examples))
                kt = rng.binomial(n_examples * t.L, p)
                tok = kt / (n_examples * t.L)
                lo_tok, hi_tok = map(float, wilson_interval(kt, n_examples * t.L))
            m = dict(common, task=t.name, k_shot=0, n_examples=n_examples if n_examples > 0 else -1,
                     answer_tokens=float(t.L))
            rows += [
                EvalRow(**m, metric="exact_match", value=em, ci_low=lo_em, ci_high=hi_em, chance=vocab ** -t.L),
                EvalRow(**m, metric="token_accuracy", value=tok, ci_low=lo_tok, ci_high=hi_tok, chance=1 / vocab),
                EvalRow(**m, metric="token_prob", value=p, chance=1 / vocab),
                EvalRow(**m, metric="logprob", value=t.L * math.log(p), chance=-t.L * math.log(vocab)),
                EvalRow(**m, metric="edit_distance", value=1 - p, chance=1 - 1 / vocab),
            ]
    return rows


__all__ = ["token_accuracy", "exact_match", "wilson_interval", "SyntheticTask", "DEFAULT_TASKS", "ladder",
           "loss_of", "mirage_rows"]
