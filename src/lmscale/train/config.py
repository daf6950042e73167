"""`RunConfig`: one training run (model, data, train, mesh), validated strictly, loaded from YAML.

The ``model`` section is the discriminated union of the registered models' configs: its
``kind`` (default ``decoder``) picks the class (`lmscale.model.registry`), which validates the
rest; unknown keys and kinds are errors naming the value and what is expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SerializeAsAny, ValidationError, field_validator, model_validator

from lmscale.config import (
    MAX_TOKENS_PER_STEP,
    DataConfig,
    Strict,
    TrainConfig,
    apply_overrides,
    format_validation_error,
    load_yaml,
)
from lmscale.errors import LmscaleError
from lmscale.model.base import ModelSpec
from lmscale.model.decoder import DecoderConfig
from lmscale.model.registry import validate_model_spec
from lmscale.parallel.mesh import MeshConfig


class RunConfig(Strict):
    name: str = Field("run", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", description="run name (runs/<name>)")
    seed: int = Field(0, ge=0, lt=2**32)
    model: SerializeAsAny[ModelSpec] = Field(default_factory=DecoderConfig, description="the model: model.kind picks it")
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    mesh: MeshConfig = Field(default_factory=MeshConfig)

    @field_validator("model", mode="wrap")
    @classmethod
    def _model_kind(cls, value: Any, handler):
        # A wrap validator, so the chosen class's own ValidationError nests under 'model.'.
        del handler
        return validate_model_spec(value)

    @model_validator(mode="after")
    def _tokens_per_step(self) -> "RunConfig":
        context = getattr(self.model, "context", None)
        if context is not None and self.train.batch_size * context > MAX_TOKENS_PER_STEP:
            raise ValueError(
                f"train.batch_size={self.train.batch_size} x model.context={context} = "
                f"{self.train.batch_size * context:,} tokens per step exceeds {MAX_TOKENS_PER_STEP:,} (int32 positions); "
                "expected a smaller batch or context"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def validate_config(raw: dict[str, Any], source: str = "") -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        raise LmscaleError(format_validation_error(err, source)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    raw = apply_overrides(load_yaml(path), overrides or [])
    return validate_config(raw, source=str(path))
