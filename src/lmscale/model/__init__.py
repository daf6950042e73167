"""Decoder-only transformer (pure functions over a params pytree), sizing and ladders."""

from lmscale.model.sizing import FlopCount, ParamCount, count_flops, count_params, ladder
from lmscale.model.transformer import apply, init, loss_fn

__all__ = ["FlopCount", "ParamCount", "apply", "count_flops", "count_params", "init", "ladder", "loss_fn"]
