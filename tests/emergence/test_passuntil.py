import numpy as np
import pytest

from lmscale.emergence.passuntil import bernoulli_draw, pass_until, token_pass_draw
from lmscale.errors import LmscaleError


def test_tiny_pass_rate_is_estimated_without_bias():
    p = 1e-3
    res = pass_until(bernoulli_draw(np.full(400, p)), 400, r=4, budget=100_000, chunk=2048, seed=0)
    assert res.resolved.all() and (res.passes == 4).all()
    # (r-1)/(K-1) is unbiased for a negative-binomial K; its relative sd per instance is about
    # 1/sqrt(r-2), so the mean of 400 has a relative standard error of about 3.5%.
    assert res.rate.mean() == pytest.approx(p, rel=0.12)
    assert np.median(res.samples) == pytest.approx(4 / p, rel=0.25)


def test_per_instance_rates_budget_and_extremes():
    p = np.array([0.0, 1.0, 0.5, 2e-2] * 50)
    res = pass_until(bernoulli_draw(p), len(p), r=3, budget=5000, chunk=64, seed=1)
    assert (res.rate[p == 0] == 0).all() and (res.samples[p == 0] == 5000).all()
    assert (res.rate[p == 1] == 1).all() and (res.samples[p == 1] == 3).all()
    for q in (0.5, 2e-2):
        assert res.rate[p == q].mean() == pytest.approx(q, rel=0.25)
    # Below the budget's resolution: few passes, estimated as passes / budget.
    low = pass_until(bernoulli_draw(np.full(100, 1e-5)), 100, r=4, budget=1000, seed=2)
    assert not low.resolved.any() and np.allclose(low.rate, low.passes / 1000) and (low.samples == 1000).all()
    with pytest.raises(LmscaleError):
        pass_until(bernoulli_draw(p), len(p), r=0)


def test_token_draw_passes_with_the_product_of_token_probabilities():
    probs = np.array([[0.5, 0.4, 0.9], [0.2, 0.3, 0.0]])
    mask = np.array([[True, True, False], [True, True, False]])  # the third column is padding
    draw = token_pass_draw(probs, mask)
    ok = draw(np.random.default_rng(0), np.arange(2), 200_000)
    assert ok.mean(axis=1) == pytest.approx([0.2, 0.06], abs=0.004)
