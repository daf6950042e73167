"""The model registry: `model.kind` -> (config class, model class).

A model module registers itself with the `register` decorator when it is imported. Discovery
imports, once per process:

- every module of the `lmscale.model` package (so an architecture added as one new module
  under `model/` is found with no edit anywhere else);
- the modules named in ``$LMSCALE_PLUGINS`` (comma-separated, importable names), and those of
  the ``lmscale.models`` entry-point group of installed distributions: models that live
  outside lmscale.

`validate_model_spec(raw)` is the discriminated union of all registered configs: ``kind`` (default
``decoder``) picks the class, which validates the rest strictly (unknown keys are errors).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from typing import Any

from lmscale.errors import LmscaleError
from lmscale.model.base import Execution, Model, ModelSpec

DEFAULT_KIND = "decoder"
PLUGINS_ENV = "LMSCALE_PLUGINS"
ENTRY_POINT_GROUP = "lmscale.models"

_MODELS: dict[str, type[Model]] = {}
_discovered = False


def register(cls: type[Model]) -> type[Model]:
    """Class decorator: make `cls` the model of ``model.kind == cls.kind``."""
    kind = getattr(cls, "kind", None)
    config = getattr(cls, "Config", None)
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"{cls.__name__}.kind must be a non-empty string")
    if not (isinstance(config, type) and issubclass(config, ModelSpec)):
        raise TypeError(f"{cls.__name__}.Config must be a ModelSpec subclass")
    if config.model_fields["kind"].default != kind:
        raise TypeError(f"{config.__name__}.kind must default to {kind!r} (the discriminator)")
    other = _MODELS.get(kind)
    if other is not None and other.__qualname__ != cls.__qualname__:
        raise TypeError(f"model kind {kind!r} is registered twice: {other.__module__}.{other.__qualname__} and "
                        f"{cls.__module__}.{cls.__qualname__}")
    _MODELS[kind] = cls
    return cls


def discover() -> None:
    """Import the built-in model modules and the plugins (once)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    import lmscale.model as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_") and info.name not in ("cli",):
            importlib.import_module(f"{pkg.__name__}.{info.name}")
    for name in [n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise LmscaleError(f"${PLUGINS_ENV} names {name!r}, which cannot be imported ({err}); expected importable "
                               "module names, comma-separated") from None
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


def kinds() -> list[str]:
    discover()
    return sorted(_MODELS)


def model_class(kind: str) -> type[Model]:
    discover()
    if kind not in _MODELS:
        raise LmscaleError(f"unknown model.kind {kind!r}; expected one of {', '.join(sorted(_MODELS))} (registered models)")
    return _MODELS[kind]


def validate_model_spec(raw: Any) -> ModelSpec:
    """A model section (mapping or config instance) as its kind's validated config.

    Raises pydantic's ValidationError for bad fields (inside a pydantic validator it nests with
    the right locations) and ValueError for an unknown kind.
    """
    if isinstance(raw, ModelSpec):
        return raw
    if not isinstance(raw, dict):
        raise ValueError(f"the model section is a {type(raw).__name__}; expected a mapping")
    kind = raw.get("kind", DEFAULT_KIND)
    try:
        cls = model_class(str(kind))
    except LmscaleError as err:
        raise ValueError(str(err)) from None
    return cls.Config.model_validate(raw)


def get_model(spec: ModelSpec, execution: Execution | None = None) -> Model:
    """The model of a validated config section."""
    return model_class(spec.kind)(spec, execution)


def declared_logical_axes() -> dict[str, tuple[str, ...]]:
    """Logical axes that registered models add to the default sharding rules (name -> mesh axes)."""
    discover()
    out: dict[str, tuple[str, ...]] = {}
    for cls in _MODELS.values():
        out.update(cls.logical_axes)
    return out
