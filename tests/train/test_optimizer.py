import math

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from lmscale.config import ModelConfig, ScheduleConfig
from lmscale.model import transformer
from lmscale.train.optimizer import decay_mask, schedule_fn


def nanogpt_get_lr(it, lr=1e-3, warmup=100, decay_iters=2000, min_lr=1e-4):
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay_iters:
        return min_lr
    ratio = (it - warmup) / (decay_iters - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def test_cosine_matches_nanogpt():
    f = schedule_fn(ScheduleConfig(kind="cosine", warmup=100, min_lr=1e-4), 1e-3, 2000)
    for it in (0, 50, 99, 100, 500, 1000, 1999, 2000, 2500):
        assert float(f(it)) == pytest.approx(nanogpt_get_lr(it), rel=1e-5)


def test_wsd_shape():
    f = schedule_fn(ScheduleConfig(kind="wsd", warmup=10, min_lr=0.0, decay_fraction=0.2, decay_shape="linear"), 1.0, 100)
    assert float(f(50)) == 1.0 and float(f(79)) == 1.0
    assert float(f(80)) == pytest.approx(1.0) and float(f(90)) == pytest.approx(0.5)
    assert float(f(100)) == pytest.approx(0.0)
    g = schedule_fn(ScheduleConfig(kind="wsd", warmup=0, min_lr=0.0, decay_fraction=0.2, decay_shape="sqrt"), 1.0, 100)
    assert float(g(85)) == pytest.approx(1 - math.sqrt(0.25))


def test_constant_with_warmup():
    f = schedule_fn(ScheduleConfig(kind="constant", warmup=4), 2.0, 100)
    assert [round(float(f(i)), 6) for i in (0, 3, 4, 99)] == [0.4, 1.6, 2.0, 2.0]


def test_weight_decay_only_on_matrices_not_embeddings():
    cfg = ModelConfig(depth=2, width=32, heads=2, context=8, vocab_size=11, tie_embeddings=False)
    _, axes = transformer.init(cfg, jax.random.key(0))
    mask = decay_mask(axes)
    assert mask["embed"]["tokens"] is False and mask["embed"]["positions"] is False
    assert mask["blocks"]["norm1"]["scale"] is False and mask["blocks"]["norm1"]["bias"] is False
    assert mask["blocks"]["attn"]["bqkv"] is False and mask["blocks"]["mlp"]["b_in"] is False
    assert mask["blocks"]["attn"]["wqkv"] is True and mask["blocks"]["mlp"]["w_out"] is True
    assert mask["unembed"]["w"] is True
