"""Monte-Carlo check of the waterfall formulas: sample concept–text graphs and run the peeling decoder.

Only erased (unknown) concepts take part in peeling, and edges are independent of erasures, so the
sampler draws the erased subgraph directly: K ~ Bin(n, eps) unknown concepts out of the pool
n = round(R/eps), then E ~ Bin(K T, p) distinct (concept, text) pairs uniformly among the K T
possible ones (integers + unique + top-up; never a dense R x T matrix). The (dv, dc)-regular
sampler is the configuration model (random socket matching; rare double edges are kept).

Peeling: a text with exactly one unknown concept teaches it. Each text keeps its count of unknown
neighbours and the SUM of their indices, so a degree-1 text names its concept without a search;
every round resolves all current degree-1 texts at once with numpy (CSR by concept, ufunc.at
updates), touching only the edges of newly learned concepts.

P_B (block erasure: some concept stays unknown) and P_b (unknown concepts / pool size n) are
estimated over independent trials, each seeded from (seed, trial), with binomial and
across-trial standard errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lmscale.errors import LmscaleError
from lmscale.theory.ensemble import ConceptTextEnsemble, RegularEnsemble


@dataclass(frozen=True)
class ErasedGraph:
    """The erased subgraph: `n_var` unknown variables, `n_chk` checks, edges sorted by variable."""

    n_var: int
    n_chk: int
    var: np.ndarray  # int64, non-decreasing
    chk: np.ndarray  # int64
    pool: int  # all variables (erased or not): the block length n

    @property
    def n_edges(self) -> int:
        return int(self.var.size)


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort + neighbour compare: several times faster than np.unique on int64)."""
    s = np.sort(x)
    if s.size < 2:
        return s
    keep = np.empty(s.size, dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def _distinct_uniform(rng: np.random.Generator, population: int, k: int) -> np.ndarray:
    """k distinct integers uniform in [0, population), sorted (sampling with rejection of repeats)."""
    out = _sorted_unique(rng.integers(0, population, size=k, dtype=np.int64))
    while out.size < k:
        extra = rng.integers(0, population, size=k - out.size, dtype=np.int64)
        out = _sorted_unique(np.concatenate([out, extra]))
    return out


def sample_concept_text(ensemble: ConceptTextEnsemble, rng: np.random.Generator,
                        epsilon: float | None = None) -> ErasedGraph:
    """The unknown-concept subgraph of a Bernoulli(d_t/R) concept–text graph (T texts, pool R/eps)."""
    eps = ensemble.epsilon if epsilon is None else float(epsilon)
    pool = int(round(ensemble.n))
    T = int(round(ensemble.T))
    if pool < 1 or T < 1:
        raise LmscaleError(f"the ensemble is too small to sample: pool={pool} concepts, T={T} texts")
    K = int(rng.binomial(pool, eps))
    pairs = K * T
    if pairs == 0:
        return ErasedGraph(K, T, np.zeros(0, np.int64), np.zeros(0, np.int64), pool)
    E = int(rng.binomial(pairs, min(ensemble.p, 1.0)))
    idx = _distinct_uniform(rng, pairs, E)  # sorted, so sorted by concept (= idx // T)
    return ErasedGraph(K, T, idx // T, idx % T, pool)


def sample_regular(ensemble: RegularEnsemble, rng: np.random.Generator, epsilon: float | None = None) -> ErasedGraph:
    """Configuration-model (dv, dc)-regular graph on n variables, restricted to the erased ones."""
    eps = ensemble.epsilon if epsilon is None else float(epsilon)
    if ensemble.n is None:
        raise LmscaleError("RegularEnsemble needs n (variables) to be sampled")
    n, dv, dc = int(round(ensemble.n)), int(ensemble.dv), int(ensemble.dc)
    if (n * dv) % dc:
        raise LmscaleError(f"n={n} is invalid for a ({dv},{dc})-regular graph: expected n*dv divisible by dc")
    m = n * dv // dc
    chk_of_socket = rng.permutation(np.repeat(np.arange(m, dtype=np.int64), dc))
    var_of_socket = np.repeat(np.arange(n, dtype=np.int64), dv)
    erased = rng.random(n) < eps
    keep = erased[var_of_socket]
    new_id = np.cumsum(erased) - 1
    return ErasedGraph(int(erased.sum()), m, new_id[var_of_socket[keep]], chk_of_socket[keep], n)


def peel(graph: ErasedGraph) -> int:
    """Run the peeling decoder; return the number of variables that stay unknown (a stopping set)."""
    K, m = graph.n_var, graph.n_chk
    if K == 0:
        return 0
    var, chk = graph.var, graph.chk
    ptr = np.zeros(K + 1, dtype=np.int64)
    np.cumsum(np.bincount(var, minlength=K), out=ptr[1:])
    deg = np.bincount(chk, minlength=m).astype(np.int64)
    # Sums of variable indices stay below 2^53 (edges * K < 9e15), so float64 bincount is exact.
    sums = np.bincount(chk, weights=var.astype(np.float64), minlength=m).astype(np.int64)
    known = np.zeros(K, dtype=bool)
    learned = 0
    frontier = np.flatnonzero(deg == 1)
    while frontier.size:
        v = _sorted_unique(sums[frontier])
        v = v[~known[v]]
        if v.size == 0:
            break
        known[v] = True
        learned += v.size
        starts = ptr[v]
        lens = ptr[v + 1] - starts
        total = int(lens.sum())
        offsets = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(total)
        ch = chk[offsets]
        np.subtract.at(deg, ch, 1)
        np.subtract.at(sums, ch, np.repeat(v, lens))
        frontier = _sorted_unique(ch[deg[ch] == 1])
    return K - learned


@dataclass(frozen=True)
class MonteCarlo:
    """Peeling outcomes over `trials` graphs: P_B, P_b with standard errors, and per-trial residuals."""

    trials: int
    P_B: float
    P_B_se: float
    P_b: float
    P_b_se: float
    residual: np.ndarray  # unknown variables left per trial
    pool: np.ndarray  # block length n per trial
    edges_mean: float


def simulate(ensemble, trials: int = 100, seed: int = 0, epsilon: float | None = None) -> MonteCarlo:
    """Sample `trials` graphs of a ConceptTextEnsemble or RegularEnsemble(n=...) and peel each."""
    if trials < 1:
        raise LmscaleError(f"trials={trials} is invalid: expected at least 1")
    if isinstance(ensemble, ConceptTextEnsemble):
        sampler = sample_concept_text
    elif isinstance(ensemble, RegularEnsemble):
        sampler = sample_regular
    else:
        raise LmscaleError(f"cannot sample {type(ensemble).__name__}: expected ConceptTextEnsemble or RegularEnsemble")
    residual = np.zeros(trials, dtype=np.int64)
    pool = np.zeros(trials, dtype=np.int64)
    edges = 0
    for t in range(trials):
        g = sampler(ensemble, np.random.default_rng([seed, t]), epsilon)
        residual[t] = peel(g)
        pool[t] = g.pool
        edges += g.n_edges
    fail = residual > 0
    P_B = float(fail.mean())
    frac = residual / pool
    se_b = float(frac.std(ddof=1) / math.sqrt(trials)) if trials > 1 else float("nan")
    return MonteCarlo(
        trials=trials, P_B=P_B, P_B_se=math.sqrt(max(P_B * (1 - P_B), 0.0) / trials), P_b=float(frac.mean()),
        P_b_se=se_b, residual=residual, pool=pool, edges_mean=edges / trials,
    )


def texts_for_z(R: float, z: float, d_t: float = 6.0, epsilon: float = 0.5, variant: str = "published") -> float:
    """T (texts) that puts an R-concept ensemble at waterfall argument z = sqrt(n)(eps_BP - eps)/alpha."""
    from scipy.optimize import brentq

    from lmscale.theory.finite_length import concepts_learned

    def gap(kappa: float) -> float:
        return float(concepts_learned(R, kappa * R, d_t, epsilon, variant).z) - z

    lo, hi = 1.0, 60.0
    if gap(lo) * gap(hi) > 0:
        raise LmscaleError(f"no texts-per-concept ratio in [{lo}, {hi}] gives z={z} at R={R:g}")
    return brentq(gap, lo, hi, xtol=1e-10) * R


@dataclass(frozen=True)
class Comparison:
    """Monte Carlo vs theory for one ensemble: block (P_B) and bit (P_b) erasure rates."""

    R: float
    T: float
    z: float
    trials: int
    P_B_mc: float
    P_B_se: float
    P_B_theory: float
    P_b_mc: float
    P_b_se: float
    P_b_theory: float
    P_b_de: float  # eps L(y_inf): the DE fixed point, the right prediction above threshold
    edges_mean: float


def compare_with_theory(R_values=(1e3, 1e4, 1e5), z_values=(-2.0, 0.0, 1.0, 2.0), trials: int = 50,
                        seed: int = 0, d_t: float = 6.0, epsilon: float = 0.5,
                        variant: str = "published") -> list[Comparison]:
    """Peel `trials` graphs per (R, z) and put the empirical rates beside the finite-length formula."""
    from lmscale.theory.density_evolution import asymptotic_bit_erasure
    from lmscale.theory.finite_length import waterfall

    rows = []
    for i, R in enumerate(R_values):
        for j, z in enumerate(z_values):
            T = float(round(texts_for_z(R, z, d_t, epsilon, variant)))
            e = ConceptTextEnsemble(R=float(R), T=T, d_t=d_t, epsilon=epsilon)
            w = waterfall(e, variant)
            mc = simulate(e, trials, seed=seed * 1_000_003 + i * 1009 + j)
            rows.append(Comparison(
                R=float(R), T=T, z=float(w.z), trials=trials, P_B_mc=mc.P_B, P_B_se=mc.P_B_se,
                P_B_theory=float(w.P_B), P_b_mc=mc.P_b, P_b_se=mc.P_b_se, P_b_theory=float(w.P_b),
                P_b_de=float(asymptotic_bit_erasure(e)), edges_mean=mc.edges_mean,
            ))
    return rows
