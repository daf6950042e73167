import numpy as np
import pytest

from lmscale.data.loader import BatchLoader, eval_starts, n_windows
from lmscale.errors import LmscaleError


def make(n=1000, T=16, B=5, seed=0):
    return BatchLoader(np.arange(n, dtype=np.int64), T, B, seed)


def test_batches_are_a_pure_function_of_step():
    a, b = make(), make()
    for step in (0, 7, 123, 5):
        assert np.array_equal(a.batch(step), b.batch(step))
    assert not np.array_equal(make(seed=1).batch(0), a.batch(0))


def test_windows_are_contiguous_and_in_range():
    loader = make()
    x = loader.batch(3)
    assert x.shape == (5, 17) and x.dtype == np.int32
    assert np.all(np.diff(x, axis=1) == 1)  # tokens are arange: a window is consecutive ids
    assert x.max() < 1000


def test_without_replacement_within_each_epoch():
    loader = make(n=1000, T=16, B=4)
    W = n_windows(1000, 16)
    assert W == 61
    steps_per_epoch = -(-W // 4)
    starts = np.concatenate([loader.starts(s) for s in range(3 * steps_per_epoch)])
    for e in range(2):
        epoch = starts[e * W : (e + 1) * W]
        assert len(np.unique(epoch)) == W  # every window exactly once
        offsets = np.unique(epoch % 16)
        assert len(offsets) == 1  # one phase per epoch: windows tile the data
    assert loader.epochs_seen(steps_per_epoch * 2) == pytest.approx(2 * steps_per_epoch * 4 / W)


def test_context_longer_than_data():
    with pytest.raises(LmscaleError, match="model.context=64 is too long for the train split"):
        BatchLoader(np.arange(100), 64, 2, 0)


def test_eval_starts_evenly_spaced_disjoint():
    s = eval_starts(1001, 10, None)
    assert np.array_equal(s, np.arange(100) * 10)
    sub = eval_starts(1001, 10, 7)
    assert len(sub) == 7 and sub[0] == 0 and sub[-1] == 990 and np.all(np.diff(sub) >= 10)


def test_consecutive_epochs_have_different_orders_and_phases():
    """Each epoch draws its own permutation (and phase) from (seed, epoch): never the same order twice."""
    loader = make(n=1000, T=16, B=4)
    W = n_windows(1000, 16)
    steps = 5 * W  # 5 epochs of W batches (4 windows each: epoch boundaries fall inside batches)
    starts = np.concatenate([loader.starts(s) for s in range(-(-steps // 4))])[:steps]
    epochs = [starts[e * W:(e + 1) * W] for e in range(5)]
    orders = [tuple(np.argsort(e)) for e in epochs]
    assert len(set(orders)) == 5
    for a, b in zip(epochs, epochs[1:]):
        # Relative order of the windows (by their index in the data), not just the phase, changes.
        assert not np.array_equal(np.argsort(a), np.argsort(b))
    assert len({int(e[0] % 16) for e in epochs}) > 1  # phases differ too


def test_order_follows_the_documented_recipe():
    """Epoch e: phase then permutation from PCG64([seed, 0x10AD, e]); batch i takes entries i*B..i*B+B-1.
    A pure function of (seed, step): no wall clock, no process state."""
    T, B, n, seed = 16, 5, 1000, 11
    W = n_windows(n, T)
    loader = make(n=n, T=T, B=B, seed=seed)
    flat = []
    for e in range(3):
        rng = np.random.Generator(np.random.PCG64([seed, 0x10AD, e]))
        offset = int(rng.integers(T))
        flat += list(offset + T * rng.permutation(W))
    for step in (0, 1, 12, 13, 24, 30):
        np.testing.assert_array_equal(loader.starts(step), flat[step * B:(step + 1) * B])
