from __future__ import annotations

import pytest

from tests.helpers import tiny_config


@pytest.fixture
def sweep_spec(text_corpus):
    """A tiny WSD-branched sweep: 2 model sizes x 2 token budgets on the tiny corpus."""

    def make(**kw):
        base = tiny_config(text_corpus, **{"train.schedule": {"kind": "wsd", "warmup": 2, "min_lr": 3e-4, "decay_fraction": 0.25},
                                           "train.checkpoint_every": 8, "train.eval_every": 8})
        spec = {
            "name": "tiny-sweep",
            "base": base,
            "ladder": {"shapes": [{"depth": 1, "width": 16, "heads": 2}, {"depth": 1, "width": 32, "heads": 2}]},
            "tokens": {"absolute": [8 * 32 * 12, 8 * 32 * 24]},
            "branches": "wsd",
        }
        spec.update(kw)
        return spec

    return make
