"""Few-shot prompts: k solved examples of the same task (its train split) before the question.

The demonstrations are whole lines (prompt, answer, newline), exactly as in the skills mixture,
so a 0-shot prompt is the bare question. They are drawn from the train split with a seed folded
from (seed, example index): the same (task, examples, k, seed) always gives the same prompts,
and an example never sees itself as a demonstration (the test split is disjoint from train).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from lmscale.data.tasks import Example, Task
from lmscale.errors import LmscaleError

POOL_PER_SHOT = 8  # demonstration pool size per shot and example (drawn once per call)


def with_shots(task: Task, examples: list[Example], k: int, seed: int = 0) -> list[Example]:
    """`examples` with k demonstrations prepended to each prompt (k = 0 returns them unchanged)."""
    if k < 0:
        raise LmscaleError(f"--k-shot={k}; expected a non-negative number of in-context examples")
    if k == 0:
        return list(examples)
    try:
        pool = task.examples("train", max(64, POOL_PER_SHOT * k), seed=seed)
    except LmscaleError:  # a small task (mul1): as many distinct demonstrations as there are
        pool = task.examples("train", k, seed=seed)
    out = []
    for i, ex in enumerate(examples):
        rng = np.random.default_rng([seed, 0xF5, i])
        shots = rng.choice(len(pool), size=k, replace=False)
        out.append(replace(ex, prompt="".join(pool[j].line() for j in shots) + ex.prompt))
    return out
