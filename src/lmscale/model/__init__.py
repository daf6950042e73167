"""Decoder-only transformer (pure functions over a params pytree), sizing and ladders."""

from lmscale.lazy import lazy_getattr

_EXPORTS = {
    **dict.fromkeys(["FlopCount", "ParamCount", "count_flops", "count_params", "ladder"], "lmscale.model.sizing"),
    **dict.fromkeys(["apply", "init", "loss_fn"], "lmscale.model.transformer"),
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
