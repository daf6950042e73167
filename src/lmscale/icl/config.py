"""One `ICLConfig` per in-context-learning experiment: task, prompt format, model, training, evaluation.

Loaded from YAML with ``--set key=value`` overrides through the same machinery as lmscale's main
config (`lmscale.config.load_yaml` / `apply_overrides`); validation errors are one-line
`LmscaleError`s naming the bad value. Sections:

- ``task``: a `lmscale.icl.tasks.TaskConfig` (function class, d, tau, noise, pool_size, ...);
- ``format`` ('garg' | 'akyurek'), ``n_points`` (k, examples per prompt, the last one the query);
- ``model``: kind 'gpt' (the foundation's GPT-2 blocks with a linear read-in of vectors and a scalar
  read-out at x positions) or 'lsa' (von Oswald's linear self-attention, no softmax, no LN); with
  the prompt shape it maps onto a registered model (``icl_gpt`` / ``icl_lsa`` in
  `lmscale.model.icl`; `lmscale.icl.model.model_spec`);
- ``train``: steps, batch_size, seed, seeds (an ensemble trained by one vmapped step, each member in
  its own run directory), the foundation's optimizer/schedule sections (ICL defaults: Adam lr 1e-3,
  no weight decay, no clipping), an optional Garg curriculum;
- ``eval``: prompts, bootstrap, reference learners, task overrides for evaluation (OOD, fresh tasks);
- ``sweep`` (optional): the variants `lmscale icl sweep` trains and compares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from lmscale.config import (
    MAX_BATCH,
    MAX_CONTEXT,
    MAX_DEPTH,
    MAX_HEADS,
    MAX_STEPS,
    MAX_WIDTH,
    OptimizerConfig,
    ScheduleConfig,
    Strict,
    format_validation_error,
    apply_overrides,
    load_yaml,
)
from lmscale.errors import LmscaleError
from lmscale.icl.prompts import Curriculum
from lmscale.icl.tasks import TaskConfig


class ICLModelConfig(Strict):
    kind: Literal["gpt", "lsa"] = Field("gpt", description="'gpt' (GPT-2 blocks) or 'lsa' (linear self-attention)")
    # Upper bounds: lmscale.config's absolute caps (what this machine holds is checked on loading).
    depth: int = Field(3, gt=0, le=MAX_DEPTH, description="transformer blocks / LSA layers")
    width: int = Field(64, gt=0, le=MAX_WIDTH, description="gpt: residual width (n_embd)")
    heads: int = Field(2, gt=0, le=MAX_HEADS, description="attention heads")
    mlp_ratio: float = Field(4.0, gt=0, le=64)
    init_std: float = Field(0.02, gt=0, description="gpt: N(0, init_std) init of the GPT-2 blocks")
    read_init: Literal["torch", "normal"] = Field(
        "torch",
        description="gpt: read-in/read-out init; 'torch': U(+-1/sqrt(fan_in)) weights and biases (Garg's nn.Linear "
        "outside GPT2Model), 'normal': N(0, init_std) weights, zero biases",
    )
    lsa_init_std: float = Field(0.002, gt=0, description="lsa: N(0, std/depth) init (von Oswald: 0.002/L)")
    lsa_key_size: int | None = Field(None, gt=0, le=MAX_WIDTH, description="lsa: key/query size (default: token size d+1)")
    token_dim: int | None = Field(
        None, gt=0, description="optional check: the read-in input size; must equal the format's token size for task.d"
    )

    @model_validator(mode="after")
    def _consistent(self) -> "ICLModelConfig":
        if self.kind == "gpt" and self.width % self.heads:
            raise ValueError(f"model.width={self.width} is not divisible by model.heads={self.heads}")
        return self


class ICLOptimizerConfig(OptimizerConfig):
    """The foundation's optimizer section with ICL defaults (Garg/Akyürek: Adam, no decay, no clipping)."""

    lr: float = Field(1e-3, gt=0, description="peak learning rate")
    beta2: float = Field(0.999, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float | None = Field(None, gt=0)


class ICLScheduleConfig(ScheduleConfig):
    kind: Literal["cosine", "wsd", "constant"] = "cosine"
    warmup: int = Field(0, ge=0)
    min_lr: float = Field(1e-4, ge=0)


class ICLTrainConfig(Strict):
    steps: int = Field(1000, gt=0, le=MAX_STEPS)
    batch_size: int = Field(64, gt=0, le=MAX_BATCH, description="prompts per step (fresh every step)")
    seed: int = Field(0, ge=0, lt=2**31)
    seeds: int = Field(1, gt=0, le=1024, description="ensemble members trained in one vmapped step (seeds seed, seed+1, ...)")
    optimizer: ICLOptimizerConfig = ICLOptimizerConfig()
    schedule: ICLScheduleConfig = ICLScheduleConfig()
    curriculum: Curriculum | None = Field(None, description="Garg's curriculum (dims/points: start, end, inc, interval)")
    log_every: int = Field(100, gt=0, description="steps per metrics record")
    checkpoint_every: int = Field(1000, gt=0, description="a multiple of log_every")
    keep_checkpoints: int = Field(2, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> "ICLTrainConfig":
        if self.checkpoint_every % self.log_every:
            raise ValueError(
                f"train.checkpoint_every={self.checkpoint_every} is not a multiple of train.log_every={self.log_every}"
            )
        if self.schedule.warmup > self.steps:
            raise ValueError(f"train.schedule.warmup={self.schedule.warmup} exceeds train.steps={self.steps}")
        return self


class LearnerSpec(Strict):
    """A reference learner: `lmscale.icl.learners.make_learner(name, **args)`."""

    name: str
    args: dict[str, float | int | str | bool] = {}
    label: str | None = None

    @property
    def display(self) -> str:
        if self.label:
            return self.label
        return self.name + "".join(f" {k}={v}" for k, v in self.args.items())


class ICLEvalConfig(Strict):
    prompts: int = Field(1280, gt=0, le=MAX_BATCH, description="evaluation prompts (Garg: 1280)")
    bootstrap: int = Field(1000, ge=0, le=1_000_000, description="bootstrap resamples for the error intervals")
    confidence: float = Field(0.9, gt=0, lt=1)
    seed: int = Field(12345, ge=0, description="evaluation prompts come from this seed, never the training stream")
    learners: list[LearnerSpec] = [
        LearnerSpec(name="least_squares"),
        LearnerSpec(name="knn", args={"k": 3}),
        LearnerSpec(name="averaging"),
    ]
    task_overrides: dict[str, Any] = Field(
        {}, description="task fields changed for evaluation (OOD prompts, fresh tasks: {pool_size: null})"
    )
    probe_prompts: int = Field(4096, gt=1, le=MAX_BATCH, description="prompts for fitting probes (a quarter more are held out)")


class SweepVariant(Strict):
    name: str = Field(..., pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.=-]*$")
    set: list[str] = Field([], description="--set overrides applied to the base config")


class SweepConfig(Strict):
    kind: Literal["depth", "noise", "diversity", "generic"] = "generic"
    distance: Literal["mspd", "spd"] = Field(
        "mspd", description="'mspd': SPD averaged over k < d (Akyürek); 'spd': over all k (Raventós' Δ)"
    )
    variants: list[SweepVariant] = Field(..., min_length=1)


class ICLConfig(Strict):
    name: str = Field("icl", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.=-]*$")  # sweep runs: <name>-<variant>
    task: TaskConfig
    format: Literal["garg", "akyurek"] = "garg"
    n_points: int = Field(..., le=MAX_CONTEXT // 2, description="examples per prompt k (every prefix is predicted)")
    model: ICLModelConfig = ICLModelConfig()
    train: ICLTrainConfig = ICLTrainConfig()
    eval: ICLEvalConfig = ICLEvalConfig()
    sweep: SweepConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "ICLConfig":
        from lmscale.icl.prompts import token_dim

        if self.n_points < 1:
            raise ValueError(f"n_points={self.n_points}; expected k >= 1 examples per prompt")
        if self.model.kind == "lsa" and self.n_points < 2:
            raise ValueError(f"n_points={self.n_points}; the LSA needs >= 2 (context examples and one query)")
        want = token_dim(self.task.d, self.format) if self.model.kind == "gpt" else self.task.d + 1
        if self.model.token_dim is not None and self.model.token_dim != want:
            raise ValueError(
                f"model.token_dim={self.model.token_dim} does not match task.d={self.task.d} in format "
                f"'{self.format}'; expected {want}"
            )
        c = self.train.curriculum
        if c is not None:
            if c.dims.end != self.task.d:
                raise ValueError(f"train.curriculum.dims.end={c.dims.end} does not match task.d={self.task.d}; expected equal")
            if c.points.end != self.n_points:
                raise ValueError(f"train.curriculum.points.end={c.points.end} does not match n_points={self.n_points}; expected equal")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def validate_icl_config(raw: dict[str, Any], source: str = "") -> ICLConfig:
    try:
        return ICLConfig.model_validate(raw)
    except ValidationError as err:
        raise LmscaleError(format_validation_error(err, source)) from None


def load_icl_config(path: str | Path, overrides: list[str] | None = None) -> ICLConfig:
    """An `ICLConfig` from a YAML file plus ``--set`` overrides (the main config's machinery),
    refused in one line if training it cannot fit in this machine's memory (`check_memory`)."""
    raw = apply_overrides(load_yaml(path), overrides or [])
    return check_memory(check_learners(validate_icl_config(raw, source=str(path))))


def with_overrides(cfg: ICLConfig, overrides: list[str], source: str = "") -> ICLConfig:
    """`cfg` with ``--set``-style overrides applied (sweep variants), checked as `load_icl_config`."""
    return check_memory(check_learners(validate_icl_config(apply_overrides(cfg.to_dict(), overrides),
                                                           source=source or cfg.name)))


def check_learners(cfg: ICLConfig) -> ICLConfig:
    """`cfg`, or a one-line `LmscaleError` for a reference learner that does not exist or takes other
    arguments: found before training, not when evaluation first builds the learners."""
    from lmscale.icl.evaluate import make_learners

    make_learners(cfg)  # as evaluation builds them (dMMSE's pool_size argument included)
    return cfg


def memory_needs(cfg: ICLConfig) -> list:
    """Lower bounds of the bytes an ICL experiment allocates (`lmscale.train.limits`): the model's
    training (every ensemble member at once), the task pool, the evaluation prompts and the hidden
    states the probes collect. Closed forms from the config: nothing is built."""
    from lmscale.train.limits import ADAM_BYTES_PER_PARAM, Need, transformer_needs

    m, t, k, d = cfg.model, cfg.train, cfg.n_points, cfg.task.d
    tok = d if (cfg.format == "garg" and m.kind == "gpt") else d + 1
    if m.kind == "gpt":
        D, F, T = m.width, max(1, int(round(m.width * m.mlp_ratio))), 2 * k
        params = m.depth * (4 * D * D + 2 * D * F + F + 9 * D) + 2 * D + T * D + tok * D + 2 * D + 1
        names = {"depth": f"model.depth={m.depth}", "width": f"model.width={m.width}", "context": f"n_points={k}",
                 "batch": f"train.batch_size={t.batch_size}" + (f" x train.seeds={t.seeds}" if t.seeds > 1 else "")}
        needs = transformer_needs(params=params, depth=m.depth, width=D, mlp_hidden=F, heads=m.heads, context=T, vocab=1,
                                  micro_batch=t.batch_size, copies=t.seeds, names=names)[:2]
        hidden = float(cfg.eval.probe_prompts) * 1.25 * (m.depth + 1) * T * D * 4
        needs.append(Need("the probes' hidden states", hidden, f"eval.probe_prompts={cfg.eval.probe_prompts}",
                          f"{cfg.eval.probe_prompts:,} prompts x 1.25 x {m.depth + 1} layers x {T} tokens x {D} floats"))
    else:
        e, dk = d + 1, m.lsa_key_size or d + 1
        params = m.depth * m.heads * (2 * e * dk + 2 * e * e)
        act = float(t.batch_size) * t.seeds * (k + 1) * m.depth * m.heads * (2 * dk + 2 * e + k + 1) * 4
        needs = [Need("parameters, gradients and Adam state", float(params) * ADAM_BYTES_PER_PARAM * t.seeds,
                      f"task.d={d}, model.depth={m.depth}, model.heads={m.heads}",
                      f"{params:.3g} parameters x {ADAM_BYTES_PER_PARAM} bytes x {t.seeds} members"),
                 Need("the activations of one batch", act, f"train.batch_size={t.batch_size}, n_points={k}, task.d={d}")]
    if cfg.task.pool_size is not None:
        needs.append(Need("the task pool", float(cfg.task.pool_size) * d * 4, f"task.pool_size={cfg.task.pool_size}",
                          f"{cfg.task.pool_size:,} tasks x {d} floats"))
    needs.append(Need("the evaluation prompts", float(cfg.eval.prompts) * k * (d + 1) * 4 * 2, f"eval.prompts={cfg.eval.prompts}",
                      f"{cfg.eval.prompts:,} x {k} points x {d + 1} floats, twice"))
    return needs


def check_memory(cfg: ICLConfig) -> ICLConfig:
    """`cfg`, or a one-line `LmscaleError` when its experiment cannot fit in this machine's memory."""
    from lmscale.train.limits import check_fits

    check_fits(memory_needs(cfg), "a smaller model, batch, prompt count or pool")
    return cfg
