"""Token formats and Garg's curriculum (lmscale.icl.prompts)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from lmscale.errors import LmscaleError
from lmscale.icl.prompts import Curriculum, Schedule, decode, encode, token_dim, x_positions, y_channel, y_positions


def _prompt(b=2, k=3, d=4):
    rng = np.random.default_rng(0)
    return rng.standard_normal((b, k, d)).astype(np.float32), rng.standard_normal((b, k)).astype(np.float32)


def test_garg_format_interleaves_and_pads_y():
    xs, ys = _prompt()
    t = encode(xs, ys, "garg")
    assert t.shape == (2, 6, 4) and token_dim(4, "garg") == 4
    np.testing.assert_array_equal(t[:, x_positions(3)], xs)
    np.testing.assert_array_equal(t[:, y_positions(3), y_channel("garg")], ys)
    assert np.all(t[:, 1::2, 1:] == 0)


def test_akyurek_format():
    xs, ys = _prompt()
    t = encode(xs, ys, "akyurek")
    assert t.shape == (2, 6, 5) and token_dim(4, "akyurek") == 5
    np.testing.assert_array_equal(t[:, 0::2, 0], 0)  # x-token [0, x]
    np.testing.assert_array_equal(t[:, 0::2, 1:], xs)
    np.testing.assert_array_equal(t[:, 1::2, 0], ys)  # y-token [y, 0_d]
    np.testing.assert_array_equal(t[:, 1::2, 1:], 0)


@pytest.mark.parametrize("fmt", ["garg", "akyurek"])
def test_decode_inverts_encode_numpy_and_jax(fmt):
    xs, ys = _prompt(d=1)
    for arr_x, arr_y in [(xs, ys), (jnp.asarray(xs), jnp.asarray(ys))]:
        t = encode(arr_x, arr_y, fmt)
        assert isinstance(t, type(arr_x))
        dx, dy = decode(t, fmt)
        np.testing.assert_array_equal(np.asarray(dx), xs)
        np.testing.assert_array_equal(np.asarray(dy), ys)


def test_positions():
    np.testing.assert_array_equal(x_positions(4), [0, 2, 4, 6])
    np.testing.assert_array_equal(y_positions(2), [1, 3])
    with pytest.raises(LmscaleError, match="k=0"):
        x_positions(0)


def test_format_errors():
    xs, ys = _prompt()
    with pytest.raises(LmscaleError, match="prompt format 'gpt'"):
        encode(xs, ys, "gpt")
    with pytest.raises(LmscaleError, match="expected xs"):
        encode(xs, ys[:, :2], "garg")
    with pytest.raises(LmscaleError, match="d=0"):
        token_dim(0, "garg")


def test_garg_curriculum_schedule():
    c = Curriculum.garg(d=20, n_points=41)
    assert c.at(0) == (5, 11) and c.at(1999) == (5, 11)
    assert c.at(2000) == (6, 13) and c.at(4000) == (7, 15)
    assert c.at(30000) == (20, 41) and c.at(10**6) == (20, 41)
    assert c.full_at() == 30000
    tree = Curriculum.garg(d=20, n_points=101, kind="decision_tree")
    assert tree.at(0) == (5, 26) and tree.at(2000) == (6, 31) and tree.full_at() == 30000
    assert Curriculum.constant(5, 11).at(12345) == (5, 11)
    assert Schedule(start=1, end=10, inc=3, interval=5).at(14) == 7


def test_curriculum_errors():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="end=3 < start=5"):
        Schedule(start=5, end=3)
    with pytest.raises(LmscaleError, match="step=-1"):
        Schedule(start=1, end=2).at(-1)
