"""Primitive ops with hand-written backward passes that XLA:CPU runs fast.

With autodiff, the weight gradient of ``x @ w`` contracts both operands over their leading
(token) axis, and XLA:CPU transposes the large activation gradient to feed its matmul kernels,
often fused into an elementwise producer (e.g. the GELU derivative) where the strided write is
slow. Measured on a 2-core AVX-512 CPU (baby GPT step), these transposes cost ~40% of the
step. Here the backward is written as plain ``g @ w.T`` and ``x.T @ g`` (transposing the small
operands), and GELU saves its derivative in the forward pass, so the backward is one multiply.
Gradients equal autodiff's to float rounding (tests/model/test_ops.py).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


@jax.custom_vjp
def dense(x, w):
    """``x @ w`` for x of shape (N, K) and w of shape (K, M)."""
    return x @ w


def _dense_fwd(x, w):
    return x @ w, (x, w)


def _dense_bwd(res, g):
    x, w = res
    return (g @ w.T).astype(x.dtype), (x.T @ g).astype(w.dtype)


dense.defvjp(_dense_fwd, _dense_bwd)


def linear(x, w, in_dims: int = 1, cpu_kernels: bool = True):
    """Contract the last `in_dims` axes of x with the first `in_dims` axes of w (any ranks).

    With `cpu_kernels`, through `dense` on 2-D views of both operands (fast on XLA:CPU); else as
    one `jnp.tensordot`, which keeps every named weight axis: reshaping a (D, 3, H, Dh) weight
    whose H axis is tensor-sharded to (D, 3*H*Dh) makes GSPMD all-gather it (measured: 4
    all-gathers per layer at mesh tensor=4, none with tensordot; tests/parallel/test_hlo.py).
    """
    if not cpu_kernels:
        return jnp.tensordot(x, w, axes=in_dims)
    lead, k_shape = x.shape[: x.ndim - in_dims], x.shape[x.ndim - in_dims :]
    out_shape = w.shape[in_dims:]
    k, m = math.prod(k_shape), math.prod(out_shape)
    y = dense(x.reshape(-1, k), w.reshape(k, m))
    return y.reshape(*lead, *out_shape)


_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _gelu_parts(x):
    x32 = x.astype(jnp.float32)
    cdf = 0.5 * (1.0 + jax.lax.erf(x32 * _INV_SQRT2))
    y = x32 * cdf
    dy = cdf + x32 * jnp.exp(-0.5 * x32 * x32) * _INV_SQRT2PI
    return y.astype(x.dtype), dy.astype(x.dtype)


def gelu(x, cpu_kernels: bool = True):
    """Exact (erf) GELU, as torch.nn.GELU() and nanoGPT; with `cpu_kernels`, the derivative is saved
    in the forward pass (one multiply in the backward pass)."""
    return _gelu(x) if cpu_kernels else jax.nn.gelu(x, approximate=False)


@jax.custom_vjp
def _gelu(x):
    return _gelu_parts(x)[0]


def _gelu_fwd(x):
    return _gelu_parts(x)


def _gelu_bwd(dy, g):
    return (g * dy,)


_gelu.defvjp(_gelu_fwd, _gelu_bwd)
