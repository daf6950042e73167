"""ICL configs: every shipped config validates; bad values are one-line errors naming them."""

from pathlib import Path

import pytest

from lmscale.errors import LmscaleError
from lmscale.icl.config import load_icl_config, validate_icl_config, with_overrides

ROOT = Path(__file__).resolve().parents[2]
BASE = {"task": {"d": 3}, "n_points": 5}


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "icl").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    cfg = load_icl_config(path)
    for v in cfg.sweep.variants if cfg.sweep else []:
        with_overrides(cfg.model_copy(update={"sweep": None}), v.set)


def test_icl_defaults_differ_from_lm_defaults():
    cfg = validate_icl_config(BASE | {"train": {"optimizer": {"beta1": 0.8}}})
    o = cfg.train.optimizer  # setting one field keeps the ICL defaults of the others
    assert (o.lr, o.beta1, o.beta2, o.weight_decay, o.grad_clip) == (1e-3, 0.8, 0.999, 0.0, None)


@pytest.mark.parametrize(
    "raw, needle",
    [
        (BASE | {"n_points": 0}, "n_points=0"),
        (BASE | {"task": {"d": 3, "noise": -0.1}}, "task.noise=-0.1"),
        (BASE | {"model": {"token_dim": 7}}, "model.token_dim=7 does not match task.d=3"),
        (BASE | {"train": {"curriculum": {"dims": {"start": 2, "end": 4}, "points": {"start": 3, "end": 5}}}},
         "train.curriculum.dims.end=4 does not match task.d=3"),
        (BASE | {"model": {"width": 30, "heads": 4}}, "model.width=30 is not divisible by model.heads=4"),
        (BASE | {"modle": {}}, "unknown key 'modle'"),
        (BASE | {"train": {"log_every": 30, "checkpoint_every": 100}}, "not a multiple of train.log_every=30"),
    ],
)
def test_bad_configs_one_line(raw, needle):
    with pytest.raises(LmscaleError) as e:
        validate_icl_config(raw, "x.yaml")
    assert needle in str(e.value) and "\n" not in str(e.value)
