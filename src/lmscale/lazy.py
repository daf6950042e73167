"""Lazy package exports: `from lmscale.laws import ChinchillaLaw` works, but importing the package
(as the `lmscale` command does to register its sub-commands) loads no JAX, SciPy or matplotlib."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable


def lazy_getattr(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that imports `exports[name]` (a module path) on first use of `name`."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
            # Cache it on the package. This also matters when a name equals its submodule's
            # (laws.compare): importing the submodule binds the package attribute to the module.
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
