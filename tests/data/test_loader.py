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
