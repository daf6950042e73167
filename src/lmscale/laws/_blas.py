"""Run fits with OpenBLAS on one thread.

Fitting calls BLAS only on tiny arrays (scipy's L-BFGS-B factorises a 2m x 2m matrix each step;
the batched objective does (256, n) matrix-vector products), where OpenBLAS's worker threads cost
far more than they save: on a busy 2-core machine a 40-iteration scipy polish took 0.5 s with
them and 14 ms without. Parallelism comes from our own thread pool over blocks of starts instead.

`single_threaded_blas()` sets the thread count of every OpenBLAS loaded in the process (numpy's
and scipy's bundled copies) to 1 and restores it afterwards. It uses threadpoolctl when that is
installed, else finds the libraries in /proc/self/maps; where neither works it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading

_LOCK = threading.Lock()
_DEPTH = 0
_SAVED: list[tuple[object, int]] = []
_NAMES = [(f"{p}_set_num_threads{s}", f"{p}_get_num_threads{s}") for p in ("scipy_openblas", "openblas") for s in ("64_", "")]


def _libraries() -> list[tuple[object, object]]:
    """(set, get) function pairs of the OpenBLAS libraries mapped into this process."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and ln.split()[-1].startswith("/")})
    except OSError:
        return []
    out = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _NAMES:
            setter, getter = getattr(lib, set_name, None), getattr(lib, get_name, None)
            if setter is not None and getter is not None:
                getter.restype = ctypes.c_int
                setter.argtypes = [ctypes.c_int]
                out.append((setter, getter))
                break
    return out


@contextlib.contextmanager
def single_threaded_blas():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
        return
    global _DEPTH
    with _LOCK:
        if _DEPTH == 0:
            _SAVED.clear()
            for setter, getter in _libraries():
                try:
                    _SAVED.append((setter, int(getter())))
                    setter(1)
                except (OSError, ValueError):
                    continue
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0:
                for setter, n in _SAVED:
                    setter(n)
                _SAVED.clear()
