"""One tiny trained GPT run and one tiny trained LSA run per test session, shared by the tests of
training, evaluation, probes, experiments and the CLI (each training config compiles once: the
compiled train step and predictions are cached per config: `lmscale.icl.train.icl_trainer`,
`lmscale.icl.model.compiled`)."""

import copy

import pytest

from lmscale.icl.config import validate_icl_config
from lmscale.icl.train import train

# d = 2, k = 4, two blocks of width 8 (test_model uses the same shapes: eager ops compile per shape). A large N(0, 0.5) init puts the untrained loss (about 4.6)
# far above the zero predictor's E[y²] = d = 2, so 100 Adam steps visibly reduce it.
TINY = {
    "name": "tiny", "task": {"d": 2}, "n_points": 4,
    "model": {"depth": 2, "width": 8, "heads": 1, "init_std": 0.5, "read_init": "normal"},
    "train": {"steps": 100, "batch_size": 32, "log_every": 50, "checkpoint_every": 50, "optimizer": {"lr": 3e-3},
              "schedule": {"kind": "cosine", "warmup": 10, "min_lr": 1e-4}},
    "eval": {"prompts": 64, "bootstrap": 20, "learners": [{"name": "least_squares"}, {"name": "zero"}]},
}

# von Oswald's LSA at d = N = 3, x ~ U(-1, 1), from a larger init than his 0.002 (which starts on
# a saddle for longer): 400 Adam steps reach the tuned one-step-GD loss within about 1%.
TINY_LSA = {
    "name": "tiny-lsa", "task": {"d": 3, "x_dist": "uniform"}, "n_points": 4,
    "model": {"kind": "lsa", "depth": 1, "heads": 1, "lsa_init_std": 0.2},
    "train": {"steps": 400, "batch_size": 512, "log_every": 100, "checkpoint_every": 400,
              "optimizer": {"lr": 1e-2}, "schedule": {"kind": "constant"}},
    "eval": {"seed": 7},
}


@pytest.fixture(scope="session")
def tiny_raw():
    return copy.deepcopy(TINY)


def _trained(tmp_path_factory, raw: dict):
    """(config, run dir) of `raw` trained to the end (tests must not write into it; use out=)."""
    cfg = validate_icl_config(copy.deepcopy(raw))
    run = tmp_path_factory.mktemp("icl") / cfg.name
    train(cfg, run)
    return cfg, run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    return _trained(tmp_path_factory, TINY)


@pytest.fixture(scope="session")
def lsa_run(tmp_path_factory):
    return _trained(tmp_path_factory, TINY_LSA)
