"""PassUntil (Hu et al. 2023, arXiv:2310.03262): sample until r passes, to resolve tiny pass rates.

Exact match scores a model that answers correctly once in 10^4 tries as 0; PassUntil keeps
sampling each instance (temperature 1) until it has passed `r` times or spent `budget` samples,
and estimates the instance's pass rate from the number of samples K that took:
(r - 1) / (K - 1), the unbiased estimator of a negative-binomial waiting time (r >= 2), or
s / budget when only s < r passes came within the budget.

`pass_until` is a vectorised sampler over any batch of instances: `draw(rng, idx, m)` returns
pass/fail of m samples of each instance in `idx`. `token_pass_draw` is the draw of an
autoregressive model on a unique answer: a temperature-1 sample reproduces answer tokens
a_1..a_L iff, at every position t, the token drawn from p(. | prompt, a_<t) is a_t, which has
probability p_t = p(a_t | prompt, a_<t). Drawing the token by inverse CDF with a_t placed first,
that happens iff U_t < p_t for independent uniforms U_t, so the pass events of real sampling
are exactly `all(U < p)` with the teacher-forced probabilities p (one forward pass per instance,
not one per sample). Its expectation is exp(log p(answer)), the harness's `logprob` metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from lmscale.errors import LmscaleError


@dataclass
class PassUntilResult:
    rate: np.ndarray  # per-instance estimated pass rate
    passes: np.ndarray  # passes seen (<= r)
    samples: np.ndarray  # samples drawn (up to the r-th pass, or the budget)
    r: int
    budget: int

    @property
    def resolved(self) -> np.ndarray:
        """Instances that reached r passes within the budget."""
        return self.passes >= self.r


def pass_until(
    draw: Callable[[np.random.Generator, np.ndarray, int], np.ndarray],
    n_instances: int,
    r: int = 4,
    budget: int = 10_000,
    chunk: int = 256,
    seed: int = 0,
) -> PassUntilResult:
    """Sample every instance in chunks until it has `r` passes or `budget` samples."""
    if r < 1 or budget < r or chunk < 1:
        raise LmscaleError(f"PassUntil r={r}, budget={budget}, chunk={chunk}; expected r >= 1, budget >= r, chunk >= 1")
    rng = np.random.default_rng([seed, 0x9A55])
    passes = np.zeros(n_instances, np.int64)
    samples = np.zeros(n_instances, np.int64)
    active = np.arange(n_instances)
    while active.size:
        m = int(min(chunk, budget - samples[active].min()))
        ok = np.asarray(draw(rng, active, m), bool)  # (n_active, m)
        need = r - passes[active]
        csum = np.cumsum(ok, axis=1)
        hit = csum >= need[:, None]
        done = hit.any(axis=1)
        # Samples up to and including the r-th pass, or the whole chunk (capped at the budget).
        used = np.where(done, hit.argmax(axis=1) + 1, m)
        used = np.minimum(used, budget - samples[active])
        passes[active] += np.minimum(np.take_along_axis(csum, (used - 1)[:, None], 1)[:, 0], need)
        samples[active] += used
        active = active[(passes[active] < r) & (samples[active] < budget)]
    rate = np.where(passes >= r, (r - 1) / np.maximum(samples - 1, 1) if r > 1 else 1.0 / samples, passes / samples)
    return PassUntilResult(rate.astype(float), passes, samples, r, budget)


def token_pass_draw(token_probs: np.ndarray, mask: np.ndarray) -> Callable[[np.random.Generator, np.ndarray, int], np.ndarray]:
    """The pass events of temperature-1 sampling given teacher-forced answer-token probabilities.

    token_probs, mask: (n_instances, L); positions outside `mask` (padding) always pass.
    """
    p = np.where(mask, np.asarray(token_probs, float), 1.0)

    def draw(rng: np.random.Generator, idx: np.ndarray, m: int) -> np.ndarray:
        u = rng.random((idx.size, m, p.shape[1]))
        return (u < p[idx][:, None, :]).all(axis=2)

    return draw


def bernoulli_draw(p: np.ndarray) -> Callable[[np.random.Generator, np.ndarray, int], np.ndarray]:
    """Instances that pass independently with known probabilities `p` (for checks and benchmarks)."""
    p = np.asarray(p, float)

    def draw(rng: np.random.Generator, idx: np.ndarray, m: int) -> np.ndarray:
        return rng.random((idx.size, m)) < p[idx][:, None]

    return draw
