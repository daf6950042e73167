"""Reference learners for in-context regression, vectorised over a batch of prompts (numpy, float64).

Every learner answers
    predict_prefixes(xs, ys, query_xs=None) -> (B, k): column i predicts x_i (or query_xs[:, i])
        from the pairs 0..i-1 only; 0 at i = 0 (Garg's baselines);
    predict(ctx_xs, ctx_ys, query_xs) -> (B, q): predictions for arbitrary queries from all context;
linear learners (`learner.linear`) also
    weights(ctx_xs, ctx_ys) -> (B, d) and prefix_weights(xs, ys) -> (B, k+1, d) (after 0..k pairs).

Learners (`make_learner(name, task=None, **kw)`, the `LEARNERS` table):
- ``zero``: predicts 0.
- ``least_squares``: the minimum-norm least-squares solution, pinv(X) y, for every prefix (k < d
  interpolates with the smallest |w|). Computed as solve(X^T X + I - P, X^T y) with P the projector on
  span(x_1..x_i) built by Gram-Schmidt: exact min-norm without a per-prefix SVD or eigh (~10x slower).
- ``ridge(lam)``: (X^T X + lam I)^{-1} X^T y, Akyürek's convention (sums, not means): the Bayes
  posterior mean for w ~ N(0, tau^2 I) and noise sigma is lam = sigma^2/tau^2; ``lam="bayes"`` takes
  it from `task`. lam = 0 is least squares.
- ``gd(steps, lr, convention)``: `steps` full-batch gradient steps from w_0 = 0 on the i pairs.
  'von_oswald' (default): L(w) = (1/2N) sum_i (w.x_i - y_i)^2, w <- w - lr (1/N) X^T (X w - y), so one
  step predicts (lr/N) sum_i y_i x_i.x_q, the one-layer linear-attention construction (von Oswald et
  al. 2023, Prop. 1). 'akyurek': w <- w - 2 lr (X^T X w - X^T y + lam w) (Akyürek et al. App., sums).
- ``sgd(lr, lam)``: one pass over the pairs in order, batch 1 (Akyürek): w <- w - 2 lr (x x^T w - x y + lam w).
- ``knn(k=3, weighting)``: mean of the k nearest context labels ('uniform', Garg) or weighted by
  |x - x_j|^-2 ('inverse_square', Akyürek; exact matches take all the weight); min(k, i) neighbours.
- ``averaging``: w = mean_i(y_i x_i) (Garg).
- ``lasso(alpha)``: argmin (1/2N)|y - X w|^2 + alpha |w|_1, sklearn's convention without intercept
  (Garg plots alpha = 0.01), by cyclic coordinate descent on X^T X, all prompts and prefixes at once
  (JAX, float32) to sklearn's duality-gap tolerance; the slowest learner (underdetermined prefixes).
- ``dmmse(pool, noise)``: the Bayes posterior mean over a finite task pool (Raventós et al. 2023):
  w = sum_m softmax_m(-sum_{j<i} (y_j - w_m.x_j)^2 / 2 sigma^2) w_m; the pool mean at i = 0; `task`
  gives pool_weights(task) and its noise. noise = 0 is the noiseless limit (an argmin).

Inputs may be numpy or JAX arrays; outputs are numpy float64. Large batches are processed in chunks
of prompts to bound memory.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from lmscale.errors import LmscaleError

_CHUNK_ELEMS = 8_000_000  # float64 elements per temporary (64 MB)


def _f64(a, name: str, ndim: int) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != ndim:
        raise LmscaleError(f"{name} has shape {arr.shape}; expected {ndim} dimensions")
    if not np.all(np.isfinite(arr)):
        raise LmscaleError(f"{name} contains NaN or inf; expected finite values")
    return arr


def _check_prompts(xs, ys, query_xs=None, same_k: bool = True):
    xs = _f64(xs, "xs", 3)
    ys = _f64(ys, "ys", 2)
    if xs.shape[:2] != ys.shape:
        raise LmscaleError(f"xs {xs.shape} and ys {ys.shape} disagree; expected xs (B, k, d) and ys (B, k)")
    if query_xs is None:
        return xs, ys, None
    q = _f64(query_xs, "query_xs", 3)
    if q.shape[0] != xs.shape[0] or q.shape[2] != xs.shape[2] or (same_k and q.shape[1] != xs.shape[1]):
        want = "(B, k, d)" if same_k else "(B, q, d)"
        raise LmscaleError(f"query_xs {q.shape} does not match xs {xs.shape}; expected {want} with the same B and d")
    return xs, ys, q


def _chunks(batch: int, per_prompt: int):
    step = max(1, _CHUNK_ELEMS // max(per_prompt, 1))
    return [slice(s, min(batch, s + step)) for s in range(0, batch, step)]


def _prefix_stats(xs, ys):
    """Cumulative X^T X (B, k+1, d, d) and X^T y (B, k+1, d) after 0..k pairs."""
    b, k, d = xs.shape
    gram = np.empty((b, k + 1, d, d))
    gram[:, 0] = 0
    for i in range(k):  # a running sum: no (B, k, d, d) temporary of outer products
        np.add(gram[:, i], xs[:, i, :, None] * xs[:, i, None, :], out=gram[:, i + 1])
    xty = np.zeros((b, k + 1, d))
    np.cumsum(xs * ys[..., None], axis=1, out=xty[:, 1:])
    return gram, xty


def _final_stats(xs, ys):
    """X^T X (B, d, d) and X^T y (B, d) of all pairs."""
    return np.einsum("bki,bkj->bij", xs, xs), np.einsum("bkd,bk->bd", xs, ys)


def _span_projectors(xs, rtol: float = 1e-12, every_prefix: bool = True):
    """Projectors (B, k+1, d, d) onto span(x_1..x_i), by Gram-Schmidt with re-orthogonalisation
    (only the last, (B, d, d), unless every_prefix). A point whose new component has squared norm
    <= rtol |x|^2 adds no direction (duplicates, zeroed curriculum coordinates), which is what makes
    the least-squares solve exactly min-norm."""
    b, k, d = xs.shape
    out = np.zeros((b, k + 1, d, d)) if every_prefix else None
    proj = np.zeros((b, d, d))
    for i in range(k):
        x = xs[:, i]
        r = x - np.einsum("bij,bj->bi", proj, x)
        r = r - np.einsum("bij,bj->bi", proj, r)
        n2 = np.einsum("bi,bi->b", r, r)
        keep = n2 > rtol * np.maximum(np.einsum("bi,bi->b", x, x), 1e-300)
        u = np.where(keep[:, None], r / np.sqrt(np.where(keep, n2, 1.0))[:, None], 0.0)
        proj = proj + u[:, :, None] * u[:, None, :]
        if every_prefix:
            out[:, i + 1] = proj
    return out if every_prefix else proj


class Learner:
    """Base class: subclasses implement `_prefix_predictions` or (linear ones) `_prefix_weights`."""

    name = "learner"
    linear = False

    @property
    def label(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"

    # Linear learners override `_prefix_weights(xs, ys) -> (B, k+1, d)`.
    def _prefix_weights(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        raise AttributeError(f"learner {self.label!r} is not linear")

    def prefix_weights(self, xs, ys) -> np.ndarray:
        """(B, k+1, d): the weight vector after 0, 1, ..., k pairs (linear learners)."""
        if not self.linear:
            raise LmscaleError(f"learner {self.label!r} is not linear; it has no weight vector")
        xs, ys, _ = _check_prompts(xs, ys)
        b, k, d = xs.shape
        out = np.empty((b, k + 1, d))
        for sl in _chunks(b, (k + 1) * d * d):
            out[sl] = self._prefix_weights(xs[sl], ys[sl])
        return out

    def weights(self, ctx_xs, ctx_ys) -> np.ndarray:
        """(B, d): the weight vector fitted on all context pairs (linear learners)."""
        if not self.linear:
            raise LmscaleError(f"learner {self.label!r} is not linear; it has no weight vector")
        xs, ys, _ = _check_prompts(ctx_xs, ctx_ys)
        return self._weights(xs, ys)

    def _weights(self, xs, ys) -> np.ndarray:
        # Learners whose fit on all pairs is cheaper than every prefix override this.
        return self.prefix_weights(xs, ys)[:, -1]

    def _predict_prefixes(self, xs, ys, qs) -> np.ndarray:
        pw = self.prefix_weights(xs, ys)[:, :-1]
        return np.einsum("bkd,bkd->bk", pw, qs)

    def predict_prefixes(self, xs, ys, query_xs=None) -> np.ndarray:
        """(B, k): column i predicts x_i (or query_xs[:, i]) from the pairs 0..i-1; 0 at i = 0."""
        xs, ys, qs = _check_prompts(xs, ys, query_xs)
        return self._predict_prefixes(xs, ys, xs if qs is None else qs)

    def _predict(self, ctx_xs, ctx_ys, qs) -> np.ndarray:
        return np.einsum("bd,bqd->bq", self.weights(ctx_xs, ctx_ys), qs)

    def predict(self, ctx_xs, ctx_ys, query_xs) -> np.ndarray:
        """(B, q): predictions for query_xs (B, q, d) from all pairs of (ctx_xs, ctx_ys)."""
        xs, ys, qs = _check_prompts(ctx_xs, ctx_ys, query_xs, same_k=False)
        return self._predict(xs, ys, qs)


class Zero(Learner):
    name = "zero"
    linear = True

    def _prefix_weights(self, xs, ys):
        return np.zeros((xs.shape[0], xs.shape[1] + 1, xs.shape[2]))


class LeastSquares(Learner):
    name = "least_squares"
    linear = True

    def _prefix_weights(self, xs, ys):
        gram, xty = _prefix_stats(xs, ys)
        eye = np.eye(xs.shape[2])
        return np.linalg.solve(gram + (eye - _span_projectors(xs)), xty[..., None])[..., 0]

    def _weights(self, xs, ys):
        gram, xty = _final_stats(xs, ys)
        eye = np.eye(xs.shape[2])
        return np.linalg.solve(gram + (eye - _span_projectors(xs, every_prefix=False)), xty[..., None])[..., 0]


class Ridge(Learner):
    name = "ridge"
    linear = True

    def __init__(self, lam: float = 0.1):
        if not lam >= 0:
            raise LmscaleError(f"ridge lam={lam}; expected lam >= 0")
        self.lam = float(lam)

    @property
    def label(self) -> str:
        return f"ridge(lam={self.lam:g})"

    def _prefix_weights(self, xs, ys):
        if self.lam == 0:
            return LeastSquares()._prefix_weights(xs, ys)
        gram, xty = _prefix_stats(xs, ys)
        return np.linalg.solve(gram + self.lam * np.eye(xs.shape[2]), xty[..., None])[..., 0]

    def _weights(self, xs, ys):
        if self.lam == 0:
            return LeastSquares()._weights(xs, ys)
        gram, xty = _final_stats(xs, ys)
        return np.linalg.solve(gram + self.lam * np.eye(xs.shape[2]), xty[..., None])[..., 0]


GD_CONVENTIONS = ("von_oswald", "akyurek")


class GD(Learner):
    name = "gd"
    linear = True

    def __init__(self, steps: int = 1, lr: float = 1.0, convention: str = "von_oswald", lam: float = 0.0):
        if int(steps) < 1 or int(steps) != steps:
            raise LmscaleError(f"gd steps={steps}; expected an integer >= 1")
        if not lr > 0:
            raise LmscaleError(f"gd lr={lr}; expected lr > 0")
        if convention not in GD_CONVENTIONS:
            raise LmscaleError(f"gd convention={convention!r}; expected one of {', '.join(GD_CONVENTIONS)}")
        if not lam >= 0:
            raise LmscaleError(f"gd lam={lam}; expected lam >= 0")
        if convention == "von_oswald" and lam:
            raise LmscaleError("gd lam is Akyürek's regulariser; expected convention='akyurek' with lam > 0")
        self.steps, self.lr, self.convention, self.lam = int(steps), float(lr), convention, float(lam)

    @property
    def label(self) -> str:
        lam = f", lam={self.lam:g}" if self.lam else ""
        conv = "" if self.convention == "von_oswald" else f", {self.convention}"
        return f"gd(steps={self.steps}, lr={self.lr:g}{conv}{lam})"

    def _run(self, gram, xty, n):
        """`steps` iterations from zero; gram (..., d, d), xty (..., d), n pairs broadcastable to xty."""
        w = np.zeros(xty.shape)
        for _ in range(self.steps):
            grad = np.einsum("...ij,...j->...i", gram, w) - xty
            if self.convention == "von_oswald":
                w = w - self.lr * grad / np.maximum(n, 1)  # N = 0 has a zero gradient
            else:
                w = w - 2 * self.lr * (grad + self.lam * w)
        return w

    def _prefix_weights(self, xs, ys):
        gram, xty = _prefix_stats(xs, ys)
        return self._run(gram, xty, np.arange(xs.shape[1] + 1)[None, :, None])

    def _weights(self, xs, ys):
        gram, xty = _final_stats(xs, ys)
        return self._run(gram, xty, xs.shape[1])


class SGD(Learner):
    name = "sgd"
    linear = True

    def __init__(self, lr: float = 0.01, lam: float = 0.0):
        if not lr > 0:
            raise LmscaleError(f"sgd lr={lr}; expected lr > 0")
        if not lam >= 0:
            raise LmscaleError(f"sgd lam={lam}; expected lam >= 0")
        self.lr, self.lam = float(lr), float(lam)

    @property
    def label(self) -> str:
        return f"sgd(lr={self.lr:g}" + (f", lam={self.lam:g})" if self.lam else ")")

    def _prefix_weights(self, xs, ys):
        b, k, d = xs.shape
        out = np.zeros((b, k + 1, d))
        w = np.zeros((b, d))
        for i in range(k):
            x = xs[:, i]
            resid = np.einsum("bd,bd->b", x, w) - ys[:, i]
            w = w - 2 * self.lr * (x * resid[:, None] + self.lam * w)
            out[:, i + 1] = w
        return out


class Averaging(Learner):
    name = "averaging"
    linear = True

    def _prefix_weights(self, xs, ys):
        b, k, d = xs.shape
        out = np.zeros((b, k + 1, d))
        np.cumsum(xs * ys[..., None], axis=1, out=out[:, 1:])
        out[:, 1:] /= np.arange(1, k + 1)[None, :, None]
        return out


KNN_WEIGHTINGS = ("uniform", "inverse_square")


class KNN(Learner):
    name = "knn"

    def __init__(self, k: int = 3, weighting: str = "uniform"):
        if int(k) < 1 or int(k) != k:
            raise LmscaleError(f"knn k={k}; expected an integer >= 1")
        if weighting not in KNN_WEIGHTINGS:
            raise LmscaleError(f"knn weighting={weighting!r}; expected one of {', '.join(KNN_WEIGHTINGS)}")
        self.k, self.weighting = int(k), weighting

    @property
    def label(self) -> str:
        return f"{self.k}-nn" + ("" if self.weighting == "uniform" else f" ({self.weighting})")

    def _knn(self, ctx, ctx_y, qs, prefix: bool) -> np.ndarray:
        b, n, d = ctx.shape
        q = qs.shape[1]
        out = np.zeros((b, q))
        kk = min(self.k, n)
        if kk == 0:
            return out
        for sl in _chunks(b, q * n * (d + 2)):
            dist = ((qs[sl, :, None, :] - ctx[sl, None, :, :]) ** 2).sum(-1)  # (b, q, n)
            if prefix:  # query i sees the pairs j < i only
                dist = np.where(np.arange(n)[None, :] < np.arange(q)[:, None], dist, np.inf)
            idx = np.argpartition(dist, kk - 1, axis=-1)[..., :kk]
            dk = np.take_along_axis(dist, idx, axis=-1)
            yk = np.take_along_axis(np.broadcast_to(ctx_y[sl, None, :], dist.shape), idx, axis=-1)
            valid = np.isfinite(dk)
            if self.weighting == "uniform":
                wt = valid.astype(np.float64)
            else:
                exact = valid & (dk == 0)
                has_exact = exact.any(-1, keepdims=True)
                with np.errstate(divide="ignore"):
                    wt = np.where(has_exact, exact, np.where(valid, 1.0 / dk, 0.0))
            tot = wt.sum(-1)
            out[sl] = np.where(tot > 0, (wt * np.where(valid, yk, 0.0)).sum(-1) / np.where(tot > 0, tot, 1.0), 0.0)
        return out

    def _predict_prefixes(self, xs, ys, qs):
        return self._knn(xs, ys, qs, prefix=True)

    def _predict(self, ctx_xs, ctx_ys, qs):
        return self._knn(ctx_xs, ctx_ys, qs, prefix=False)


class Lasso(Learner):
    name = "lasso"
    linear = True

    def __init__(self, alpha: float = 0.01, max_iter: int = 10000, tol: float = 1e-4):
        if not alpha > 0:
            raise LmscaleError(f"lasso alpha={alpha}; expected alpha > 0 (alpha = 0 is least squares)")
        if int(max_iter) < 1:
            raise LmscaleError(f"lasso max_iter={max_iter}; expected >= 1")
        if not tol > 0:
            raise LmscaleError(f"lasso tol={tol}; expected tol > 0")
        self.alpha, self.max_iter, self.tol = float(alpha), int(max_iter), float(tol)
        self.sweeps = 0  # coordinate-descent sweeps used by the last call (the worst prompt)

    @property
    def label(self) -> str:
        return f"lasso(alpha={self.alpha:g})"

    def _prefix_weights(self, xs, ys):
        b, k, d = xs.shape
        gram, xty = _prefix_stats(xs, ys)
        yy = np.zeros((b, k + 1))
        np.cumsum(ys**2, axis=1, out=yy[:, 1:])
        a = self.alpha * np.broadcast_to(np.arange(k + 1, dtype=np.float64)[None, :], (b, k + 1))
        w, sweeps = _lasso_cd(gram.reshape(-1, d, d), xty.reshape(-1, d), yy.reshape(-1), a.reshape(-1),
                              self.max_iter, self.tol)
        self.sweeps = max(self.sweeps, sweeps)
        return w.reshape(b, k + 1, d)

    def _weights(self, xs, ys):
        gram, xty = _final_stats(xs, ys)
        a = np.full(xs.shape[0], self.alpha * xs.shape[1])
        w, self.sweeps = _lasso_cd(gram, xty, (ys**2).sum(1), a, self.max_iter, self.tol)
        return w

    def prefix_weights(self, xs, ys) -> np.ndarray:
        self.sweeps = 0
        return super().prefix_weights(xs, ys)


@functools.cache
def _lasso_sweeps() -> Callable:
    """`n` cyclic coordinate-descent sweeps for min (1/2)|y - X w|^2 + a |w|_1 (the Lasso objective
    times N) in Gram form (G = X^T X, b = X^T y, yy = y^T y), rows independent, from w; returns w and
    each row's duality gap relative to y^T y (sklearn's stopping rule, `enet_coordinate_descent_gram`)."""
    import jax
    import jax.numpy as jnp

    def run(gram, xty, yy, a, w, n):
        # Coordinate-major layout (d, d, R) / (d, R): each coordinate update touches contiguous slabs.
        d = gram.shape[-1]
        g = jnp.transpose(gram, (1, 2, 0))
        diag = jnp.diagonal(gram, axis1=1, axis2=2).T
        safe = jnp.where(diag > 0, diag, 1.0)
        wt, b = w.T, xty.T

        def coord(j, carry):
            wt, c = carry  # c = b - G w
            wj = wt[j]
            z = c[j] + diag[j] * wj
            new = jnp.where(diag[j] > 0, jnp.sign(z) * jnp.maximum(jnp.abs(z) - a, 0.0) / safe[j], 0.0)
            return wt.at[j].set(new), c - (new - wj)[None, :] * g[j]

        def sweep(_, carry):
            return jax.lax.fori_loop(0, d, coord, carry)

        c = b - jnp.einsum("ijr,jr->ir", g, wt)
        wt, c = jax.lax.fori_loop(0, n, sweep, (wt, c))
        wb = jnp.sum(wt * b, axis=0)
        r2 = jnp.maximum(yy - 2 * wb + jnp.sum(wt * (b - c), axis=0), 0.0)  # |y - X w|^2
        dual = jnp.max(jnp.abs(c), axis=0)
        const = jnp.where(dual > a, a / jnp.maximum(dual, 1e-30), 1.0)
        gap = 0.5 * r2 * (1 + const**2) + a * jnp.sum(jnp.abs(wt), axis=0) - const * (yy - wb)
        return wt.T, jnp.where(yy > 0, gap / jnp.maximum(yy, 1e-30), 0.0)

    return jax.jit(run)  # n traced: one compile per row bucket, not per round length


def _lasso_cd(gram, xty, yy, a, max_iter: int, tol: float, sweeps_per_round: int = 8):
    """Coordinate descent until each row's duality gap is below tol * y^T y (as sklearn, whose
    Lasso Garg's baseline uses), re-running only the rows not yet converged. Rows are padded to
    powers of two so few shapes compile. float32 (JAX); returns float64 weights and the sweeps used."""
    import jax.numpy as jnp

    rows, d = xty.shape
    w = np.zeros((rows, d), np.float32)
    todo = np.arange(rows)
    used = 0
    rounds = 0
    while todo.size and used < max_iter:
        # Few rows are left after the first rounds (the slow underdetermined prefixes): give them
        # longer rounds so that dispatch and gathering do not dominate.
        n = min(sweeps_per_round << min(rounds, 6), max_iter - used)
        rounds += 1
        size = max(64, 1 << int(np.ceil(np.log2(todo.size))))
        take = np.concatenate([todo, np.full(size - todo.size, todo[0])])
        new_w, gap = _lasso_sweeps()(
            jnp.asarray(gram[take], jnp.float32), jnp.asarray(xty[take], jnp.float32),
            jnp.asarray(yy[take], jnp.float32), jnp.asarray(a[take], jnp.float32), jnp.asarray(w[take]), n,
        )
        w[todo] = np.asarray(new_w)[: todo.size]
        used += n
        todo = todo[np.asarray(gap)[: todo.size] > tol]
    return w.astype(np.float64), used


class DMMSE(Learner):
    name = "dmmse"
    linear = True

    def __init__(self, pool: Any = None, noise: float | None = None, task: Any = None):
        if pool is None:
            if task is None:
                raise LmscaleError("dmmse needs a task pool; expected pool=(M, d) weights or task=TaskConfig with pool_size")
            from lmscale.icl.tasks import pool_weights

            pool = pool_weights(task)
        if noise is None:
            noise = task.noise if task is not None else None
        if noise is None or not noise >= 0:
            raise LmscaleError(f"dmmse noise={noise}; expected the label-noise std sigma >= 0")
        pool = _f64(pool, "dmmse pool", 2)
        if pool.shape[0] < 1:
            raise LmscaleError("dmmse pool is empty; expected M >= 1 weight vectors")
        self.pool, self.noise = pool, float(noise)

    @property
    def label(self) -> str:
        return f"dmmse(M={self.pool.shape[0]})"

    def _prefix_weights(self, xs, ys):
        b, k, d = xs.shape
        m = self.pool.shape[0]
        if d != self.pool.shape[1]:
            raise LmscaleError(f"dmmse pool has d={self.pool.shape[1]} but prompts have d={d}; expected the same d")
        # Noise 0 is the limit sigma -> 0 (posterior on the tasks that fit exactly); 1e-10 absorbs
        # float32 rounding of the labels.
        two_s2 = 2.0 * max(self.noise**2, 1e-10)
        out = np.empty((b, k + 1, d))
        for sl in _chunks(b, (k + 1) * m):
            resid = ys[sl, :, None] - np.einsum("bkd,md->bkm", xs[sl], self.pool)
            sse = np.zeros((resid.shape[0], k + 1, m))
            np.cumsum(resid**2, axis=1, out=sse[:, 1:])
            logits = -(sse - sse.min(-1, keepdims=True)) / two_s2
            post = np.exp(logits)
            post /= post.sum(-1, keepdims=True)
            out[sl] = post @ self.pool
        return out


def best_gd_lr(ctx_xs, ctx_ys, query_xs, query_ys) -> float:
    """The step size minimising the squared error of ONE von Oswald GD step from zero (closed form:
    the prediction is lr * a with a = (1/N) sum_i y_i x_i.x_q, so lr* = sum a y / sum a^2)."""
    xs, ys, qs = _check_prompts(ctx_xs, ctx_ys, query_xs, same_k=False)
    qy = _f64(query_ys, "query_ys", 2)
    if qy.shape != qs.shape[:2]:
        raise LmscaleError(f"query_ys {qy.shape} does not match query_xs {qs.shape}; expected (B, q)")
    a = np.einsum("bd,bqd->bq", np.einsum("bk,bkd->bd", ys, xs) / xs.shape[1], qs)
    den = float((a * a).sum())
    if den == 0:
        raise LmscaleError("best_gd_lr: the one-step GD direction is zero on every query; expected informative prompts")
    return float((a * qy).sum() / den)


LEARNERS: dict[str, type[Learner]] = {
    "zero": Zero,
    "least_squares": LeastSquares,
    "ridge": Ridge,
    "gd": GD,
    "sgd": SGD,
    "knn": KNN,
    "averaging": Averaging,
    "lasso": Lasso,
    "dmmse": DMMSE,
}
_ALIASES = {"ols": "least_squares", "lstsq": "least_squares", "nn": "knn", "3nn": "knn"}


def make_learner(name: str, task: Any = None, **kw) -> Learner:
    """A learner by name (`LEARNERS`, or the aliases ols/lstsq/nn/3nn). `task` (a TaskConfig) supplies
    ridge's lam='bayes' (sigma^2/tau^2) and dmmse's pool and noise; other learners ignore it."""
    key = _ALIASES.get(name, name)
    if key not in LEARNERS:
        raise LmscaleError(f"unknown learner {name!r}; expected one of {', '.join(LEARNERS)}")
    if key == "ridge" and kw.get("lam") == "bayes":
        if task is None:
            raise LmscaleError("ridge lam='bayes' needs the task (sigma^2/tau^2); expected task=TaskConfig")
        kw["lam"] = task.noise**2 / task.tau**2
    if key == "dmmse":
        kw.setdefault("task", task)
    try:
        return LEARNERS[key](**kw)
    except TypeError as err:
        raise LmscaleError(f"learner {name!r}: bad arguments {sorted(kw)} ({err})") from None
