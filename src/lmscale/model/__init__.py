"""Models: the protocol and registry (`base`, `registry`), the decoder-only transformer and its
layers, sizing, ladders and the SP/muP parametrisation."""

from lmscale.lazy import lazy_getattr

_EXPORTS = {
    **dict.fromkeys(["FlopCount", "ParamCount", "count_flops", "count_params", "ladder"], "lmscale.model.sizing"),
    **dict.fromkeys(["get_model", "kinds", "model_class", "register", "validate_model_spec"], "lmscale.model.registry"),
    **dict.fromkeys(["Execution", "Init", "Model", "ModelSpec", "Param"], "lmscale.model.base"),
    **dict.fromkeys(["Decoder", "DecoderConfig"], "lmscale.model.decoder"),
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
