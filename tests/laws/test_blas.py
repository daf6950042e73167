"""OpenBLAS is held to one thread during fits and restored afterwards."""

import scipy.optimize  # noqa: F401  (loads scipy's bundled OpenBLAS, like a fit does)

from lmscale.laws._blas import _libraries, single_threaded_blas


def test_single_threaded_blas_sets_and_restores():
    libs = _libraries()
    before = [get() for _, get in libs]
    with single_threaded_blas():
        with single_threaded_blas():  # nesting (a fit inside an extrapolation check) is fine
            assert all(get() == 1 for _, get in libs)
        assert all(get() == 1 for _, get in libs)
    assert [get() for _, get in libs] == before
