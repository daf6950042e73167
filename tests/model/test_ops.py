import jax
import jax.numpy as jnp
import numpy as np

from lmscale.model.ops import dense, gelu, linear


def test_dense_gradients_equal_autodiff():
    kx, kw, kg = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (24, 8))
    w = jax.random.normal(kw, (8, 5))
    g = jax.random.normal(kg, (24, 5))
    ours = jax.vjp(dense, x, w)[1](g)
    ref = jax.vjp(lambda a, b: a @ b, x, w)[1](g)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_linear_contracts_trailing_dims():
    x = jax.random.normal(jax.random.key(1), (2, 3, 4, 5))
    w = jax.random.normal(jax.random.key(2), (4, 5, 6))
    np.testing.assert_allclose(
        np.asarray(linear(x, w, in_dims=2)), np.asarray(jnp.einsum("abcd,cde->abe", x, w)), rtol=1e-5, atol=1e-5
    )


def test_gelu_value_and_gradient_match_exact_gelu():
    x = jnp.linspace(-6, 6, 1001)
    np.testing.assert_allclose(np.asarray(gelu(x)), np.asarray(jax.nn.gelu(x, approximate=False)), atol=1e-6)
    ours = jax.grad(lambda v: gelu(v).sum())(x)
    ref = jax.grad(lambda v: jax.nn.gelu(v, approximate=False).sum())(x)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), atol=1e-6)
