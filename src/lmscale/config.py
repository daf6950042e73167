"""Config building blocks: the strict pydantic base, the data and train sections, YAML loading.

A run is described by one `lmscale.train.config.RunConfig` (model, data, train, mesh); each
section is validated by its own layer's class: `DataConfig` and `TrainConfig` here, the model by
its registered config class (`lmscale.model.registry`), the mesh and sharding rules by
`lmscale.parallel.mesh.MeshConfig`. Configs come from YAML files (loaded with a safe loader that
also rejects duplicate keys) plus ``--set key=value`` overrides, and are validated by pydantic:
unknown keys, wrong types and inconsistent sizes are `LmscaleError`s that name the bad value
and what is expected.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lmscale.errors import LmscaleError


# Absolute caps on sizes, checked by every config section before anything is built. They are far
# beyond any real model (GPT-3 175B: depth 96, width 12,288, 96 heads, context 2,048; the largest
# vocabularies ~256k) and well below the sizes that break the machinery: width=1e9 overflowed
# XLA's shape arithmetic and aborted the process, depth=1e6 never finished tracing the unrolled
# layer loop, steps past 2^31 overflow the int32 step counter. What this machine can hold is a
# separate, tighter check (lmscale.train.limits).
MAX_DEPTH = 1024  # layers
MAX_WIDTH = 2**17  # residual width, 131,072
MAX_HEADS = 1024
MAX_CONTEXT = 2**20  # tokens, 1,048,576
MAX_VOCAB = 2**24  # token ids, 16,777,216
MAX_BATCH = 2**24  # sequences (or prompts) per step
MAX_STEPS = 2**31 - 1  # int32 step counters
MAX_TOKENS_PER_STEP = 2**31 - 1  # batch x context: int32 token positions


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, instances are immutable."""

    # coerce_numbers_to_str: `--set data.corpus=2024` names a file, not a number.
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False, coerce_numbers_to_str=True
    )


class TokenizerConfig(Strict):
    kind: Literal["char", "byte", "bpe"] = "char"
    vocab_size: int = Field(4096, ge=260, le=MAX_VOCAB, description="BPE only: target vocabulary size")
    path: str | None = Field(None, description="BPE only: load this tokenizer.json instead of training one")


class DataConfig(Strict):
    corpus: str = Field(
        "shakespeare",
        description="'shakespeare' (embedded), a text file, a directory of text files, a .jsonl file, or hf:NAME_OR_PATH",
    )
    format: Literal["auto", "text", "dir", "jsonl", "hf"] = "auto"
    text_field: str = Field("text", description="JSONL / HF datasets: the field holding the text")
    hf_split: str = "train"
    hf_config: str | None = None
    val_corpus: str | None = Field(None, description="held-out corpus (same format rules); else val_fraction")
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="last fraction of documents held out")
    val_plays: list[str] | None = Field(None, description="shakespeare only: held-out play slugs (default in corpus)")
    tokenizer: TokenizerConfig = TokenizerConfig()


class OptimizerConfig(Strict):
    lr: float = Field(6e-4, gt=0, description="peak learning rate")
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.1, ge=0, description="decoupled; applied to matrices only, never norms/biases/embeddings")
    grad_clip: float | None = Field(1.0, gt=0, description="global-norm clipping; null disables")


class ScheduleConfig(Strict):
    kind: Literal["cosine", "wsd", "constant"] = "cosine"
    warmup: int = Field(100, ge=0, le=MAX_STEPS, description="linear warmup steps")
    min_lr: float = Field(6e-5, ge=0, description="final learning rate of cosine / WSD decay")
    decay_steps: int | None = Field(None, gt=0, le=MAX_STEPS, description="cosine: steps to reach min_lr (default: train.steps)")
    decay_fraction: float = Field(0.2, gt=0, le=1, description="WSD: fraction of steps spent in the final decay")
    decay_shape: Literal["linear", "sqrt", "cosine"] = Field("sqrt", description="WSD decay shape (1-sqrt is Hägele et al.'s)")


class TrainConfig(Strict):
    steps: int = Field(5000, gt=0, le=MAX_STEPS, description="optimizer steps")
    batch_size: int = Field(64, gt=0, le=MAX_BATCH, description="sequences per optimizer step (global, over all devices)")
    grad_accum: int = Field(1, gt=0, le=MAX_BATCH, description="micro-batches per step; batch_size must divide by it")
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    precision: Literal["float32", "bfloat16"] = Field("float32", description="compute dtype; params stay float32")
    eval_every: int = Field(250, gt=0, description="steps between validation evaluations")
    eval_sequences: int = Field(200, gt=0, le=MAX_BATCH, description="validation sequences per periodic evaluation")
    final_eval_sequences: int | None = Field(None, gt=0, description="sequences in the final evaluation (null: all)")
    log_every: int = Field(10, gt=0)
    checkpoint_every: int = Field(500, gt=0)
    keep_checkpoints: int = Field(2, gt=0, description="checkpoints kept on disk (older ones are deleted)")

    @model_validator(mode="after")
    def _consistent(self) -> "TrainConfig":
        if self.batch_size % self.grad_accum:
            raise ValueError(
                f"train.batch_size={self.batch_size} is not divisible by train.grad_accum={self.grad_accum}"
            )
        if self.schedule.warmup > self.steps:
            raise ValueError(
                f"train.schedule.warmup={self.schedule.warmup} exceeds train.steps={self.steps}; expected warmup <= steps"
            )
        return self


# ----------------------------------------------------------------------------------------------
# Loading, overrides and error formatting


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line naming every bad value of a pydantic error, prefixed `invalid config <source>`."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "value_error":  # our own cross-field checks already name the values
            parts.append(msg)
        elif e["type"] == "extra_forbidden":
            parts.append(f"unknown key '{loc}'")
        elif loc:
            parts.append(f"{loc}={e.get('input')!r}: {msg}")
        else:
            parts.append(msg)
    return f"invalid config {source}: " + "; ".join(parts)


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise LmscaleError(f"--set {item!r}: expected key=value, e.g. --set train.steps=100")
    key, value = item.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise LmscaleError(f"--set {item!r}: expected a dotted key such as train.optimizer.lr")
    try:
        parsed = safe_load_unique(value) if value.strip() else ""
    except YAMLRefused as err:  # `--set 'k=[&a [1], *a]'`: an alias bomb is refused here too
        raise LmscaleError(f"--set {key}: {err}") from None
    except yaml.YAMLError:
        parsed = value
    return key.split("."), parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    for item in overrides:
        path, value = parse_override(item)
        node = out
        for part in path[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise LmscaleError(f"--set {item!r}: '{part}' is a value, not a section")
            node = nxt
        node[path[-1]] = value
    return out


# The one YAML loader of the project: every YAML file lmscale reads (configs, run and ICL
# config.yaml, sweep specs and records) goes through `safe_load_unique` / `read_yaml`. Beyond
# PyYAML's safe loader it refuses what a config never needs but an attacker can abuse:
# - aliases (`*a` of an anchor `&a`, merge keys `<<: *a`): a 1 KiB "billion laughs" file of
#   nested aliases expands to gigabytes once anything walks it (pydantic, repr in an error
#   message, JSON dumps), which aborted `train` after 107 s and hung `sweep plan`;
# - nesting deeper than MAX_YAML_DEPTH levels (PyYAML's composer recurses: RecursionError);
# - texts over MAX_YAML_BYTES (the pure-Python parser needs ~10 s per MiB on a busy 2-core VM;
#   lmscale's own configs are a few KiB);
# - duplicate keys (plain YAML silently keeps the last one).
MAX_YAML_BYTES = 256 * 1024  # bytes
MAX_YAML_DEPTH = 64  # nesting levels; lmscale's configs are at most 5 deep


class YAMLRefused(yaml.YAMLError):
    """Valid YAML that lmscale refuses to load (an alias, too deep, too large, a duplicate key)."""


class _UniqueKeySafeLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, aliases/anchors and deep nesting (see above)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        # An alias of a defined anchor is the bomb's building block; an undefined one is an error
        # PyYAML reports itself (and `--set k=*.txt` then falls back to the string). An anchor
        # nothing refers to is harmless.
        if isinstance(event, yaml.AliasEvent) and event.anchor in self.anchors:
            raise YAMLRefused(f"YAML alias '*{event.anchor}' at line {event.start_mark.line + 1} refused; expected plain "
                              "values (aliases can expand a small file to gigabytes)")
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise YAMLRefused(f"YAML nested more than {MAX_YAML_DEPTH} levels deep at line {event.start_mark.line + 1}; "
                                  "expected a config a few sections deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            fresh = key not in seen
        except TypeError:  # an unhashable key (`? [a, b]: 1`): construct_mapping reports it
            break
        if not fresh:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeySafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def safe_load_unique(text: str) -> Any:
    """Parse YAML text with the project's loader; raises a `yaml.YAMLError` (`YAMLRefused` for the
    refusals above), so callers' `except yaml.YAMLError` clauses cover every refusal."""
    if len(text) > MAX_YAML_BYTES:
        raise YAMLRefused(f"{len(text):,} characters of YAML refused; expected at most {MAX_YAML_BYTES:,} "
                          "(lmscale's configs are a few KiB)")
    loader = _UniqueKeySafeLoader(text)
    try:
        return loader.get_single_data()
    except RecursionError:  # belt and braces: the depth cap should come first
        raise YAMLRefused(f"YAML nested too deeply; expected at most {MAX_YAML_DEPTH} levels") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path, what: str = "config file", expected: str = "a YAML file") -> Any:
    """The parsed contents of a YAML file, every failure a one-line `LmscaleError` naming the file:
    missing, not a file, unreadable (permissions, I/O), larger than MAX_YAML_BYTES, not UTF-8
    text (a binary file), invalid YAML, or refused by the loader (aliases, depth, duplicates)."""
    path = Path(path)
    name = str(path)
    if not path.is_file():
        what_is = "a directory" if path.is_dir() else "not found"
        raise LmscaleError(f"{what} {name!r} is {what_is}; expected {expected}")
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise LmscaleError(f"{what} {name!r} is {size:,} bytes; expected at most {MAX_YAML_BYTES:,} bytes of YAML "
                               "(lmscale's configs are a few KiB)")
        data = path.read_bytes()
    except OSError as err:
        raise LmscaleError(f"cannot read {what} {name!r} ({err.strerror or err}); expected a readable file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise LmscaleError(f"{what} {name!r} is not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); "
                           f"expected {expected}") from None
    try:
        return safe_load_unique(text)
    except YAMLRefused as err:
        raise LmscaleError(f"{what} {name!r}: {err}") from None
    except yaml.YAMLError as err:
        raise LmscaleError(f"{what} {name!r} is not valid YAML: {err}") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML config file as a mapping (an empty file is an empty mapping)."""
    raw = read_yaml(path, "config file", "a YAML file such as configs/baby-gpt.yaml")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise LmscaleError(f"config file {str(path)!r} holds a {type(raw).__name__}; expected a mapping of sections")
    return raw


def config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts."""
    keys = sorted(set(a) | set(b))
    out: list[str] = []
    for k in keys:
        ka = f"{prefix}{k}"
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, ka + ".")
        elif va != vb:
            out.append(f"{ka} ({va!r} -> {vb!r})")
    return out


_format_validation_error = format_validation_error  # the name older modules import


def validate_section(cls: type[BaseModel], raw: Any, source: str = ""):
    """`cls.model_validate(raw)` with errors as one-line `LmscaleError`s."""
    try:
        return cls.model_validate(raw)
    except ValidationError as err:
        raise LmscaleError(format_validation_error(err, source)) from None
