"""Erdős–Rényi graphs: the giant-component fraction in closed form and by Monte Carlo.

In G(S, c/S) a giant component exists iff the mean degree c > 1; its fraction of the S vertices
solves gamma = 1 - exp(-c gamma), i.e. gamma = 1 + W0(-c e^-c)/c (Lambert W, principal branch).
The sampler draws the edge count from Binomial(S(S-1)/2, c/S) and then that many distinct
vertex pairs uniformly (exactly G(S, p) conditioned on its edge count), so graphs with 1e5
vertices take milliseconds; `scipy.sparse.csgraph` finds the components.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmscale.errors import LmscaleError


def giant_fraction(c) -> np.ndarray:
    """Fraction of vertices in the giant component of G(S, c/S) as S -> inf (0 for c <= 1).

    Lambert W gives the start; Newton steps on phi(u) = (1 - e^-u)/u = 1/c with u = c gamma
    then make it accurate to rounding near the threshold, where W0 sits on its branch point and
    loses half the digits (gamma ~ 2(c - 1) there), and for huge c, where e^-c underflows.
    """
    from scipy.special import lambertw

    c = np.asarray(c, float)
    if np.any(np.isnan(c)) or np.any(c < 0):
        raise LmscaleError(f"mean degree c = {c[np.isnan(c) | (c < 0)].ravel()[0]}; expected a number >= 0")
    out = np.zeros(c.shape)
    above = c > 1.0
    if not above.any():
        return out
    ca = c[above]
    with np.errstate(all="ignore"):
        w = np.real(lambertw(-ca * np.exp(-ca), 0))
        u = ca + w  # = c * gamma
        # Near threshold the series gamma = 2d - 8d^2/3 (d = c - 1) is the better start.
        d = ca - 1.0
        u = np.where(d < 1e-3, ca * (2 * d - 8 * d * d / 3), u)
        u = np.clip(u, 1e-300, None)
        for _ in range(6):
            phi = -np.expm1(-u) / u
            # phi'(u) = (u e^-u + expm1(-u)) / u^2, with its series where that cancels.
            dphi = np.where(u < 1e-4, -0.5 + u / 3 - u * u / 8, (u * np.exp(-u) + np.expm1(-u)) / (u * u))
            u = np.clip(u - (phi - 1.0 / ca) / dphi, 1e-300, None)
    out[above] = np.minimum(u / ca, 1.0)
    return out


def sample_er_edges(n_vertices: int, c: float, rng: np.random.Generator) -> np.ndarray:
    """(m, 2) distinct undirected edges (i < j) of one G(n, c/n) graph."""
    if n_vertices < 2:
        raise LmscaleError(f"n_vertices = {n_vertices}; expected at least 2")
    if not 0 <= c <= n_vertices - 1:
        raise LmscaleError(f"mean degree c = {c}; expected 0 <= c <= n_vertices - 1 = {n_vertices - 1}")
    n_pairs = n_vertices * (n_vertices - 1) // 2
    m = int(rng.binomial(n_pairs, c / n_vertices))
    keys = np.empty(0, np.int64)
    # Draw pairs with replacement and drop duplicates until m distinct ones remain (sparse: ~1 round).
    while len(keys) < m:
        need = m - len(keys)
        i = rng.integers(0, n_vertices, size=need + need // 8 + 16)
        j = rng.integers(0, n_vertices, size=len(i))
        keep = i != j
        lo, hi = np.minimum(i, j)[keep], np.maximum(i, j)[keep]
        keys = np.unique(np.concatenate([keys, lo.astype(np.int64) * n_vertices + hi]))
    if len(keys) > m:
        keys = rng.choice(keys, size=m, replace=False)
    return np.stack([keys // n_vertices, keys % n_vertices], axis=1)


def largest_component_fraction(n_vertices: int, edges: np.ndarray) -> float:
    """Size of the largest connected component over n_vertices."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    e = np.asarray(edges, np.int64).reshape(-1, 2)
    adj = coo_matrix((np.ones(len(e), np.int8), (e[:, 0], e[:, 1])), shape=(n_vertices, n_vertices)).tocsr()
    _, labels = connected_components(adj, directed=False)
    return float(np.bincount(labels).max() / n_vertices)


@dataclass(frozen=True)
class GiantComponentMC:
    """Monte Carlo estimate of the largest-component fraction against the Lambert-W value."""

    c: float
    n_vertices: int
    n_graphs: int
    mean: float
    stderr: float
    theory: float

    @property
    def z(self) -> float:
        """(mean - theory) / stderr: sampling errors between the simulation and the formula."""
        return (self.mean - self.theory) / self.stderr if self.stderr > 0 else float("nan")


def giant_fraction_mc(c: float, n_vertices: int = 20_000, n_graphs: int = 8, seed: int = 0) -> GiantComponentMC:
    """Sample n_graphs graphs G(n_vertices, c/n_vertices); mean and standard error of the largest component."""
    if n_graphs < 2:
        raise LmscaleError(f"n_graphs = {n_graphs}; expected at least 2 (for a standard error)")
    rng = np.random.default_rng(seed)
    fr = np.array([largest_component_fraction(n_vertices, sample_er_edges(n_vertices, c, rng)) for _ in range(n_graphs)])
    return GiantComponentMC(c=float(c), n_vertices=int(n_vertices), n_graphs=int(n_graphs), mean=float(fr.mean()),
                            stderr=float(fr.std(ddof=1) / np.sqrt(n_graphs)), theory=float(giant_fraction(c)))


__all__ = ["giant_fraction", "sample_er_edges", "largest_component_fraction", "GiantComponentMC", "giant_fraction_mc"]
