"""Compute-optimal frontier: closed forms against numerical minimisation along C = 6ND."""

import numpy as np
import pytest

from lmscale.laws import ChinchillaLaw
from lmscale.laws.bootstrap import bootstrap
from lmscale.laws.frontier import chinchilla_allocation, chinchilla_exponents, numeric_allocation

from .synth import chinchilla_grid, chinchilla_loss

P = {"A": 406.4, "B": 410.7, "E": 1.69, "alpha": 0.34, "beta": 0.28}


def test_closed_form_spends_exactly_the_budget():
    C = np.geomspace(1e18, 1e26, 9)
    a = chinchilla_allocation(P, C)
    np.testing.assert_allclose(6 * a["N_opt"] * a["D_opt"], C, rtol=1e-12)
    ex = chinchilla_exponents(P)
    assert ex["a"] == pytest.approx(0.28 / 0.62) and ex["b"] == pytest.approx(0.34 / 0.62)
    assert ex["a"] + ex["b"] == pytest.approx(1.0)
    G = (0.34 * 406.4 / (0.28 * 410.7)) ** (1 / 0.62)
    np.testing.assert_allclose(a["N_opt"], G * (C / 6) ** ex["a"], rtol=1e-12)
    np.testing.assert_allclose(a["loss_opt"], chinchilla_loss(P, a["N_opt"], a["D_opt"]), rtol=1e-12)


def test_frontier_minimises_loss_along_iso_compute_lines():
    C = np.geomspace(1e18, 1e26, 9)
    a = chinchilla_allocation(P, C)
    num = numeric_allocation(lambda N, D: chinchilla_loss(P, N, D), C)
    np.testing.assert_allclose(num["N_opt"], a["N_opt"], rtol=1e-6)
    np.testing.assert_allclose(num["loss_opt"], a["loss_opt"], rtol=1e-12)
    for c, n in zip(C, a["N_opt"]):
        grid = n * np.geomspace(0.5, 2, 41)
        losses = chinchilla_loss(P, grid, c / (6 * grid))
        assert losses.min() >= chinchilla_loss(P, n, c / (6 * n)) - 1e-12


def test_hoffmann_tokens_per_param():
    # Notes §3: Hoffmann's rounded parameters give ~92.8 tokens/param at C = 5.88e23.
    assert chinchilla_allocation(P, 5.88e23)["tokens_per_param"] == pytest.approx(92.8, rel=0.01)


def test_frontier_with_bootstrap_band(tmp_path):
    law = ChinchillaLaw().fit(chinchilla_grid(noise=2e-3, seed=2, runs=True))
    boot = bootstrap(law, 40, seed=1)
    fr = law.frontier(C_max=1e22, bootstrap=boot, n=12)
    assert len(fr.C) == 12 and fr.C[-1] == pytest.approx(1e22)
    assert law.frontier(n=5).C[-1] == pytest.approx(10 * law.data_.C.max())  # default: 10x the largest compute
    lo, med, hi = fr.bands["N_opt"]
    assert (lo <= med).all() and (med <= hi).all()
    assert (lo <= fr.point["N_opt"] * 1.5).all()
    np.testing.assert_allclose(6 * fr.point["N_opt"] * fr.point["D_opt"], fr.C, rtol=1e-10)
    out = tmp_path / "frontier.csv"
    fr.to_csv(out)
    head = out.read_text().splitlines()[0].split(",")
    assert head[:5] == ["C", "N_opt", "N_opt_median", "N_opt_low", "N_opt_high"]
    assert "compute-optimal frontier" in fr.summary()
