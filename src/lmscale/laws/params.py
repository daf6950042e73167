"""What every laws estimator shares (scikit-learn's BaseEstimator, without the dependency): parameters
stored by `__init__` and read back by name, `set_params`, `clone`, a repr of the parameters that differ
from the defaults."""

from __future__ import annotations

from typing import Any

from lmscale.errors import LmscaleError


class Params:
    """Mixin: a subclass lists its constructor parameters in `_own_params` (or overrides `_param_names`)."""

    _own_params: tuple[str, ...] = ()

    def _param_names(self) -> tuple[str, ...]:
        return self._own_params

    def _check_names(self, names) -> None:
        for k in names:
            if k not in self._param_names():
                raise LmscaleError(f"unknown parameter {k!r} for {type(self).__name__}; expected one of "
                                   f"{', '.join(self._param_names())}")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters as stored (scikit-learn's get_params)."""
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params):
        """Set constructor parameters (validated by the next `fit`); returns self."""
        self._check_names(params)
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def clone(self, **overrides):
        """An unfitted copy with the same parameters, some replaced (scikit-learn's clone)."""
        self._check_names(overrides)
        return type(self)(**{**self.get_params(), **overrides})

    def __repr__(self) -> str:
        default = type(self)()
        changed = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if not _same(v, getattr(default, k)))
        return f"{type(self).__name__}({changed})"


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a is b or a == b)
    except (TypeError, ValueError):  # arrays
        return False

