"""Synthetic scaling data drawn from a known Chinchilla law, fitted once per session."""

from __future__ import annotations

import csv
import struct
from pathlib import Path

import numpy as np
import pytest

from lmscale.laws.data import ScalingData

TRUE = {"A": 406.4, "B": 410.7, "E": 1.69, "alpha": 0.34, "beta": 0.28}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chinchilla(N, D):
    N, D = np.asarray(N, float), np.asarray(D, float)
    return TRUE["E"] + TRUE["A"] / N ** TRUE["alpha"] + TRUE["B"] / D ** TRUE["beta"]


def true_optimum(C):
    """N_opt, D_opt of the true law under C = 6ND (Hoffmann et al.'s closed form)."""
    a, b = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"]), TRUE["alpha"] / (TRUE["alpha"] + TRUE["beta"])
    G = (TRUE["alpha"] * TRUE["A"] / (TRUE["beta"] * TRUE["B"])) ** (1 / (TRUE["alpha"] + TRUE["beta"]))
    C = np.asarray(C, float)
    return G * (C / 6) ** a, (C / 6) ** b / G


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def num(rows, key) -> np.ndarray:
    return np.array([float(r[key]) if r[key] != "" else np.nan for r in rows])


def check_png(path: Path, min_bytes: int = 20_000) -> tuple[int, int]:
    """Assert a real, non-trivial PNG; return (width, height) in pixels."""
    raw = Path(path).read_bytes()
    assert raw[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert len(raw) > min_bytes, f"{path} is only {len(raw)} bytes"
    w, h = struct.unpack(">II", raw[16:24])
    assert 600 <= w <= 6000 and 400 <= h <= 4000, (w, h)
    return w, h


def has_point(rows, N, D, loss, rtol=1e-12) -> bool:
    return any(np.isclose(float(r["N"]), N, rtol=rtol) and np.isclose(float(r["D"]), D, rtol=rtol)
               and np.isclose(float(r["loss"]), loss, rtol=rtol) for r in rows)


def make_grid_data() -> ScalingData:
    """5 model sizes x 4 token counts, 0.3% multiplicative noise, C = 6ND."""
    rng = np.random.default_rng(7)
    Ns, Ds = np.geomspace(1e7, 1e9, 5), np.geomspace(2e9, 1e11, 4)
    N, D = (a.ravel() for a in np.meshgrid(Ns, Ds, indexing="ij"))
    loss = chinchilla(N, D) * np.exp(rng.normal(0, 0.003, len(N)))
    runs = [f"n{i}" for i in range(len(Ns)) for _ in range(len(Ds))]  # WSD-style: one trunk per size
    return ScalingData.from_arrays(N=N, D=D, loss=loss, run=runs, source="synthetic-grid")


def make_grid_curves(grid_data: ScalingData) -> ScalingData:
    """Training curves: each run evaluated at 1/8 .. 1 of its tokens (loss slightly above the law before the end)."""
    N, D, loss, label = [], [], [], []
    for i, (n, d, y) in enumerate(zip(grid_data.N, grid_data.D, grid_data.loss)):
        for f in (0.125, 0.25, 0.5, 0.75, 1.0):
            N.append(n)
            D.append(d * f)
            loss.append(y if f == 1.0 else chinchilla(n, d * f) * 1.03)
            label.append(f"run{i}")
    return ScalingData.from_arrays(N=N, D=D, loss=loss, curve=label, run=label, source="synthetic-curves")


@pytest.fixture(scope="session")
def grid_data() -> ScalingData:
    return make_grid_data()


@pytest.fixture(scope="session")
def grid_curves(grid_data) -> ScalingData:
    return make_grid_curves(grid_data)


@pytest.fixture(scope="session")
def isoflop_data() -> ScalingData:
    return make_isoflop_data()


@pytest.fixture(scope="session")
def fitted(grid_data):
    from lmscale.laws.bootstrap import bootstrap
    from lmscale.laws.estimators import ChinchillaLaw

    law = ChinchillaLaw().fit(grid_data)
    boot = bootstrap(law, 40, seed=0)
    return law, boot


@pytest.fixture(scope="session")
def extrapolation(fitted, grid_data):
    """The law refitted without the largest model, which it then predicts (the held-out points of the figures)."""
    from lmscale.laws.extrapolation import extrapolation_check

    return extrapolation_check(fitted[0], grid_data, "largest")


def make_isoflop_data() -> ScalingData:
    """Three IsoFLOP budgets, 7 sizes each spanning ~1.5 decades around the true optimum, D = C/(6N)."""
    rng = np.random.default_rng(3)
    N, D, loss, budget = [], [], [], []
    for C in (1e18, 1e19, 1e20):
        n_opt, _ = true_optimum(C)
        for n in n_opt * np.geomspace(0.2, 5.0, 7):
            d = C / (6 * n)
            N.append(n)
            D.append(d)
            loss.append(chinchilla(n, d) * np.exp(rng.normal(0, 0.001)))
            budget.append(C)
    return ScalingData.from_arrays(N=N, D=D, loss=loss, budget=budget, source="synthetic-isoflop")


@pytest.fixture(scope="session")
def grid_figures(tmp_path_factory, grid_data, grid_curves, fitted, extrapolation):
    """Every figure of the grid data, written once: (directory, paths, overlaid Kaplan laws and Approach 1)."""
    from lmscale.laws.estimators import KaplanLaw
    from lmscale.report import envelope_law, write_fit_figures

    from lmscale.laws import EnvelopeAllocation

    law, boot = fitted
    env_law = envelope_law(grid_data, grid_curves)
    n_law = KaplanLaw("N").fit(grid_data.subset(grid_data.D == grid_data.D.max()))
    approach1 = EnvelopeAllocation().fit(grid_curves)
    out = tmp_path_factory.mktemp("grid-figures")
    paths = write_fit_figures(grid_data, law, out, curves=grid_curves, bootstrap=boot, extrapolation=extrapolation,
                              kaplan_laws=[env_law, n_law], envelope_fit=approach1)
    return out, paths, {"C": env_law, "N": n_law, "approach1": approach1}


@pytest.fixture(scope="session")
def iso_law(isoflop_data):
    from lmscale.laws.estimators import ChinchillaLaw

    return ChinchillaLaw().fit(isoflop_data)
