"""Synthetic scaling data generated from known laws (for parameter-recovery tests)."""

from __future__ import annotations

import numpy as np

from lmscale.laws.data import ScalingData

TRUE_CHINCHILLA = {"A": 400.0, "B": 1500.0, "E": 1.8, "alpha": 0.33, "beta": 0.30}


def chinchilla_loss(p, N, D):
    return p["E"] + p["A"] / np.asarray(N, float) ** p["alpha"] + p["B"] / np.asarray(D, float) ** p["beta"]


def chinchilla_grid(p=TRUE_CHINCHILLA, noise=1e-3, seed=0, n_sizes=8, n_tokens=6, runs=False) -> ScalingData:
    """n_sizes x n_tokens points, N 1e7-3e9 params, D 2e8-2e11 tokens, multiplicative log-normal noise."""
    rng = np.random.default_rng(seed)
    N = np.repeat(np.geomspace(1e7, 3e9, n_sizes), n_tokens)
    D = np.tile(np.geomspace(2e8, 2e11, n_tokens), n_sizes)
    L = chinchilla_loss(p, N, D) * np.exp(rng.normal(0, noise, len(N)))
    run = np.repeat([f"size{i}" for i in range(n_sizes)], n_tokens) if runs else None
    return ScalingData.from_arrays(N=N, D=D, loss=L, run=run)


def isoflop_set(alpha=0.3, beta=0.3, A=400.0, B=400.0, E=1.7, budgets=(1e18, 1e19, 1e20, 1e21), n=7, span=1.5,
                noise=0.0, seed=0, offset=0.0, jitter=0.0):
    """IsoFLOP profiles sampled symmetrically (in ln N, +-span) around the true optimum of each budget.

    With alpha = beta the iso-compute loss is symmetric in ln N about the optimum, so a parabola's
    vertex is exactly the optimum and N_opt ~ C^0.5 exactly. `offset` shifts the sampling centre
    (ln N; a number, or one per budget); `jitter` perturbs each point's C by a relative amount (nearly
    equal budgets).
    """
    rng = np.random.default_rng(seed)
    p = {"A": A, "B": B, "E": E, "alpha": alpha, "beta": beta}
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    a = beta / (alpha + beta)
    N_all, D_all, C_all = [], [], []
    offsets = np.broadcast_to(np.asarray(offset, float), (len(budgets),))
    for C, off in zip(budgets, offsets):
        n_opt = G * (C / 6) ** a
        x = np.log(n_opt) + off + np.linspace(-span, span, n)
        Cj = C * (1 + jitter * rng.uniform(-1, 1, n))
        N = np.exp(x)
        N_all.append(N)
        D_all.append(Cj / (6 * N))
        C_all.append(Cj)
    N, D, C = map(np.concatenate, (N_all, D_all, C_all))
    L = chinchilla_loss(p, N, D) * np.exp(rng.normal(0, noise, len(N)) if noise else 0.0)
    return ScalingData.from_arrays(N=N, D=D, C=C, loss=L, run=[f"r{i}" for i in range(len(N))]), p


def training_curves(alpha=0.3, beta=0.3, A=400.0, B=400.0, E=1.7, n_sizes=25, n_evals=80):
    """Loss along training (D from 1e6 to 1e12 tokens, like evaluations from early steps on) for
    n_sizes model sizes, from the Chinchilla law."""
    p = {"A": A, "B": B, "E": E, "alpha": alpha, "beta": beta}
    Ns = np.geomspace(1e7, 1e10, n_sizes)
    N, D, curve = [], [], []
    for i, n in enumerate(Ns):
        d = np.geomspace(1e6, 1e12, n_evals)
        N.append(np.full(n_evals, n))
        D.append(d)
        curve += [f"run{i}"] * n_evals
    N, D = np.concatenate(N), np.concatenate(D)
    return ScalingData.from_arrays(N=N, D=D, loss=chinchilla_loss(p, N, D), run=curve, curve=curve), p


def noisy_cli_grid(seed=0, noise=1e-3):
    """7 sizes x 5 token counts on Chinchilla's law with log-normal noise: the CLI tests' runs (N, D, loss)."""
    rng = np.random.default_rng(seed)
    N = np.repeat(np.geomspace(1e7, 3e9, 7), 5)
    D = np.tile(np.geomspace(2e8, 2e11, 5), 7)
    return N, D, chinchilla_loss(TRUE_CHINCHILLA, N, D) * np.exp(rng.normal(0, noise, len(N)))


def objective_and_checked_gradient(form, theta):
    """A form's Huber objective on `chinchilla_grid()`, with its analytic gradient at the rows of `theta` checked
    against central finite differences (rtol 1e-6)."""
    from lmscale.laws.objective import HuberLogObjective

    data = chinchilla_grid()
    obj = HuberLogObjective(form, form.features(N=data.N, D=data.D), data.loss, delta=0.1)
    th = np.asarray(theta, float)
    _, g = obj(th)
    h = 1e-6
    num = np.stack([(obj(th + h * e)[0] - obj(th - h * e)[0]) / (2 * h) for e in np.eye(th.shape[1])], axis=1)
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-9)
    return obj
