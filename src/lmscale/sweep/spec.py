"""Sweep specs: a YAML file that expands into a table of runs over model size N and data D.

A spec names a base run config, a model ladder, token budgets, seeds and optional extra grid
axes. Token budgets come in three kinds:

- ``absolute``: tokens per run, the same for every ladder member;
- ``per_param``: tokens = multiplier x N (total parameters, Chinchilla's convention);
- ``isoflop``: compute budgets C (FLOPs); every ladder member gets D = C / (FLOPs per token),
  counted exactly (6 N_matmul + attention, `lmscale.model.sizing`) or as 6N, optionally kept only
  where D/N falls in a tokens-per-parameter window.

Tokens are realised in whole optimizer steps (D = steps x batch x context), so the table records
the D and C actually trained, not the requested ones. With ``branches: wsd`` all budgets of one
(shape, seed, grid point) share one trunk run with a constant learning rate, and each shorter
budget is a cooldown branched from the trunk's checkpoint (Hägele et al. 2024).
"""

from __future__ import annotations

import collections
import copy
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from lmscale.config import Strict, _format_validation_error, load_yaml
from lmscale.errors import LmscaleError
from lmscale.model.sizing import count_flops, count_params
from lmscale.sweep.registry import MAX_ID_CHARS
from lmscale.train.config import RunConfig

SPEC_VERSION = 1
# The most runs one spec may expand to. Expanding and printing the plan costs ~1 ms a run
# (validation, counting, the table): `sweep plan` of 10,000 runs took 9 s on the busy 2-core VM,
# and the registry holds a few MiB. A 10^6-run grid is refused at once (counted, not expanded)
# instead of running for minutes without output. Bigger studies: several sweeps.
MAX_RUNS = 10_000


class LadderSpec(Strict):
    """Model sizes: a depth dial (width = depth x aspect_ratio, rounded to head_dim) or explicit shapes."""

    depths: list[int] | None = Field(None, description="size dial values (n_layer)")
    shapes: list[dict[str, Any]] | None = Field(None, description="explicit model settings per member")
    aspect_ratio: int = Field(64, gt=0, description="depth dial: width / depth")
    head_dim: int = Field(64, gt=0, description="depth dial: width per attention head")

    @model_validator(mode="after")
    def _one(self) -> "LadderSpec":
        if (self.depths is None) == (self.shapes is None):
            raise ValueError("ladder: give exactly one of 'depths' (a size dial) or 'shapes' (explicit shapes)")
        members = self.depths if self.depths is not None else self.shapes
        if not members:
            raise ValueError("ladder: expected at least one model size")
        if self.depths is not None and any(d <= 0 for d in self.depths):
            raise ValueError(f"ladder.depths={self.depths}: expected positive depths")
        return self

    def members(self) -> list[dict[str, Any]]:
        if self.shapes is not None:
            return [dict(s) for s in self.shapes]
        out = []
        for d in self.depths:
            width = math.ceil(d * self.aspect_ratio / self.head_dim) * self.head_dim
            out.append({"depth": d, "width": width, "heads": width // self.head_dim})
        return out


class IsoflopSpec(Strict):
    budgets: list[float] = Field(..., min_length=1, description="compute budgets C in training FLOPs")
    flops: Literal["exact", "6N"] = Field("exact", description="FLOPs per token: exact count or 6 x N_total")
    tokens_per_param: tuple[float, float] | None = Field(
        None, description="keep only ladder members with D/N in [low, high] for each budget"
    )
    min_points: int = Field(3, ge=1, description="fewest model sizes a budget may keep (a parabola needs 3)")

    @model_validator(mode="after")
    def _positive(self) -> "IsoflopSpec":
        if any(c <= 0 for c in self.budgets):
            raise ValueError(f"tokens.isoflop.budgets={self.budgets}: expected positive FLOP counts")
        if self.tokens_per_param is not None:
            lo, hi = self.tokens_per_param
            if not 0 < lo < hi:
                raise ValueError(f"tokens.isoflop.tokens_per_param={[lo, hi]}: expected 0 < low < high")
        return self


class TokensSpec(Strict):
    absolute: list[float] | None = Field(None, description="tokens per run")
    per_param: list[float] | None = Field(None, description="tokens = multiplier x N_total")
    isoflop: IsoflopSpec | None = None

    @model_validator(mode="after")
    def _one(self) -> "TokensSpec":
        given = [k for k in ("absolute", "per_param", "isoflop") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"tokens: give exactly one of 'absolute', 'per_param' or 'isoflop' (got {given or 'none'})"
            )
        for k in ("absolute", "per_param"):
            v = getattr(self, k)
            if v is not None and (not v or any(x <= 0 for x in v)):
                raise ValueError(f"tokens.{k}={v}: expected a non-empty list of positive numbers")
        return self


class SweepSpec(Strict):
    name: str = Field(..., pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", description="sweep name (sweeps/<name>)")
    family: str | None = Field(None, description="model family label in results (default: the sweep name)")
    base: str | dict[str, Any] = Field(
        default_factory=dict, description="base run config: a path (relative to the spec) or an inline mapping"
    )
    ladder: LadderSpec
    tokens: TokensSpec
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="dotted config key -> values (product)")
    set: dict[str, Any] = Field(default_factory=dict, description="dotted config key -> value for every run")
    branches: Literal["none", "wsd"] = Field(
        "none", description="wsd: one constant-LR trunk per model, shorter budgets branch cooldowns from it"
    )
    vmap_seeds: bool = Field(False, description="train runs that differ only in seed together in one vmapped step")

    @model_validator(mode="after")
    def _checks(self) -> "SweepSpec":
        if len(set(self.seeds)) != len(self.seeds) or any(not 0 <= s < 2**32 for s in self.seeds):
            raise ValueError(f"seeds={self.seeds}: expected distinct integers in [0, 2^32)")
        for k, v in self.grid.items():
            if not v:
                raise ValueError(f"grid.{k}: expected a non-empty list of values")
            if k.split(".")[0] in ("data", "seed", "name"):
                raise ValueError(f"grid key {k!r}: one sweep trains on one corpus with the 'seeds' list; expected model/train keys")
        owners = self.expansion_keys()
        for what, section in (("grid", self.grid), ("set", self.set)):
            for k, v in section.items():
                values = v if what == "grid" else [v]
                hit = next((h for x in values if (h := _overridden(k, x, owners, replaces=what == "grid"))), None)
                if hit:
                    raise ValueError(f"{what} key {k!r} would be overridden: {owners[hit]} sets {hit} of every run; "
                                     f"expected a key the expansion leaves alone (give sizes in 'ladder', budgets in 'tokens')")
        n = self.max_runs()
        if n > MAX_RUNS:
            dims = [f"{len(self.ladder.members())} model sizes", f"{_n_budgets(self.tokens)} token budgets",
                    f"{len(self.seeds)} seeds"] + [f"{len(v)} {k}" for k, v in self.grid.items()]
            raise ValueError(f"the spec expands to up to {n:,} runs ({' x '.join(dims)}); expected at most {MAX_RUNS:,} "
                             "runs per sweep (split the study into several sweeps)")
        return self

    def expansion_keys(self) -> dict[str, str]:
        """Dotted config keys the expansion sets on every run -> who sets them. A grid or set key
        naming one would be silently replaced (pairs of identical runs, or a ladder not trained)."""
        if self.ladder.shapes is not None:
            sized = sorted({k for shape in self.ladder.shapes for k in shape})
        else:
            sized = ["depth", "width", "heads"]
        out = {f"model.{k}": "the ladder" for k in sized}
        out |= {"train.steps": "the token budget ('tokens')", "seed": "the 'seeds' list", "name": "the sweep (run ids)"}
        return out

    def max_runs(self) -> int:
        """Runs the spec expands to at most (IsoFLOP windows may keep fewer): counted, not expanded."""
        return math.prod([len(self.ladder.members()), _n_budgets(self.tokens), len(self.seeds)]
                         + [len(v) for v in self.grid.values()])


def _n_budgets(t: "TokensSpec") -> int:
    return len(t.absolute or t.per_param or (t.isoflop.budgets if t.isoflop else []))


def _overridden(key: str, value: Any, owners: dict[str, str], replaces: bool) -> str | None:
    """The expansion key that `key` set to `value` would lose to, if any: the key itself or one
    under it; for a section key, one its mapping value sets, or (`replaces`: grid values replace
    the section after the ladder is applied) any the ladder sets in it."""
    for o, who in owners.items():
        if key == o or key.startswith(o + "."):
            return o
        if o.startswith(key + "."):
            if replaces and who == "the ladder":
                return o
            node = value
            for part in o[len(key) + 1:].split("."):
                if not isinstance(node, dict) or part not in node:
                    break
                node = node[part]
            else:
                return o
    return None


@dataclass
class PlannedRun:
    """One point of the sweep: a run config plus its sizes in the units the laws use."""

    run_id: str
    trunk: str  # the run whose trajectory this point shares (itself unless a WSD branch)
    job: str  # runs of one job are trained together (trunk + branches, x seeds when vmapped)
    family: str
    config: dict[str, Any]
    seed: int
    n_params: int  # N, total parameters
    n_nonembed: int  # N, non-embedding parameters (Kaplan)
    tokens: int  # D actually trained = steps x batch x context
    flops: float  # C = FLOPs per token (exact convention) x D
    flops_6n: float  # C = 6 N_total D
    budget: float | None  # the requested compute budget (isoflop sweeps)
    steps: int
    fork_step: int | None  # WSD branch: the trunk step it branches from
    order: int = 0
    grid: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        m = self.config["model"]
        return {
            "run_id": self.run_id, "trunk": self.trunk, "job": self.job, "family": self.family, "seed": self.seed,
            "N": self.n_params, "N_nonembed": self.n_nonembed, "D": self.tokens, "C": self.flops,
            "C_6N": self.flops_6n, "budget": self.budget, "steps": self.steps, "fork_step": self.fork_step,
            "depth": m["depth"], "width": m["width"], "heads": m["heads"], **self.grid,
        }


def set_dotted(d: dict[str, Any], key: str, value: Any, what: str) -> None:
    node = d
    parts = key.split(".")
    if any(not p for p in parts):
        raise LmscaleError(f"{what} key {key!r}: expected a dotted config key such as train.optimizer.lr")
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise LmscaleError(f"{what} key {key!r}: '{p}' is a value, not a section")
        node = nxt
    node[parts[-1]] = copy.deepcopy(value)


def load_spec(path: str | Path) -> tuple[SweepSpec, dict[str, Any]]:
    """Validate a sweep YAML; returns the spec and its base config mapping (resolved from a path)."""
    path = Path(path)
    raw = load_yaml(path)
    return parse_spec(raw, source=str(path), root=path.parent)


def parse_spec(raw: dict[str, Any], source: str = "", root: Path | None = None) -> tuple[SweepSpec, dict[str, Any]]:
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as err:
        raise LmscaleError(_format_validation_error(err, source).replace("invalid config", "invalid sweep spec")) from None
    if isinstance(spec.base, str):
        base_path = Path(spec.base).expanduser()
        if not base_path.is_absolute():
            base_path = (root or Path.cwd()) / base_path
        base = load_yaml(base_path)
    else:
        base = copy.deepcopy(spec.base)
    return spec, base


def _short(x: float) -> str:
    """Compact, filename-safe number: 1e6 -> '1e6', 2.5e5 -> '2.5e5', 0.001 -> '0.001'."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return re.sub(r"[^A-Za-z0-9_.-]", "_", str(x))
    if x != 0 and (abs(x) >= 1e4 or abs(x) < 1e-3):
        m, e = f"{x:.3g}".split("e") if "e" in f"{x:.3g}" else (f"{x:.3g}", "0")
        return f"{m}e{int(e)}"
    return f"{x:.4g}"


def expand(spec: SweepSpec, base: dict[str, Any], vocab_size: int) -> list[PlannedRun]:
    """Expand a spec into its runs (deterministic order: grid point, model size, budget, seed).

    `vocab_size` is the tokenizer's (padded by the config), needed to count parameters.
    """
    family = spec.family or spec.name
    base = copy.deepcopy(base)
    for k, v in spec.set.items():
        set_dotted(base, k, v, "set")
    base.setdefault("model", {})
    keys = list(spec.grid)
    combos = list(itertools.product(*(spec.grid[k] for k in keys))) or [()]
    runs: list[PlannedRun] = []
    for combo in combos:
        grid = dict(zip(keys, combo))
        gsuffix = "".join(f"-{k.split('.')[-1]}{_short(v)}" for k, v in grid.items())
        for shape in spec.ladder.members():
            cfg_raw = copy.deepcopy(base)
            cfg_raw["model"].update(shape)
            for k, v in grid.items():
                set_dotted(cfg_raw, k, v, "grid")
            cfg = _validate(cfg_raw, shape, grid)
            m = cfg.model
            pad = m.pad_vocab_to
            model = m.model_copy(update={"vocab_size": m.vocab_size or -(-vocab_size // pad) * pad})
            n = count_params(model)
            fpt = count_flops(model).per_token
            tokens_per_step = cfg.train.batch_size * model.context
            targets = _targets(spec, n.total, fpt)
            if not targets:
                continue
            shape_id = f"{family}-L{m.depth}W{m.width}" + (f"H{m.heads}" if spec.ladder.shapes else "") + gsuffix
            for seed in spec.seeds:
                points = []
                for d_req, budget in targets:
                    steps = max(1, round(d_req / tokens_per_step))
                    points.append((steps, budget))
                if len(set(points)) != len(points):
                    raise LmscaleError(
                        f"model {shape}: token budgets {[round(d) for d, _ in targets]} give duplicate runs of "
                        f"{sorted(p[0] for p in points)} steps ({tokens_per_step} tokens/step); expected budgets at least one step apart"
                    )
                points = sorted(points, key=lambda p: (p[0], p[1] or 0))
                trunk_steps = points[-1][0]
                for steps, budget in points:
                    tokens = steps * tokens_per_step
                    run_id = f"{shape_id}-D{_short(float(tokens))}-s{seed}"
                    raw = copy.deepcopy(cfg_raw)
                    raw["name"], raw["seed"] = run_id, seed
                    set_dotted(raw, "train.steps", steps, "tokens")
                    fork = None
                    trunk_id = run_id
                    if spec.branches == "wsd":
                        trunk_id = f"{shape_id}-D{_short(float(trunk_steps * tokens_per_step))}-s{seed}"
                        fork = _fork_step(cfg, steps, trunk_steps, run_id)
                        if steps == trunk_steps or fork == 0:
                            fork = None
                    _validate(raw, shape, grid)
                    job = f"{shape_id}-s{seed}" if spec.branches == "wsd" else run_id
                    if spec.vmap_seeds:
                        job = f"{shape_id}" + (f"-D{_short(float(tokens))}" if spec.branches != "wsd" else "")
                    runs.append(PlannedRun(
                        run_id=run_id, trunk=trunk_id, job=job, family=family, config=raw, seed=seed,
                        n_params=n.total, n_nonembed=n.non_embedding, tokens=tokens, flops=fpt * tokens,
                        flops_6n=6.0 * n.total * tokens, budget=budget, steps=steps, fork_step=fork, grid=grid,
                    ))
    dup = sorted(i for i, n in collections.Counter(r.run_id for r in runs).items() if n > 1)
    if dup:
        raise LmscaleError(
            f"sweep {spec.name!r} expands to duplicate runs {dup[:3]}; expected distinct (shape, tokens, seed, grid) "
            "points — two budgets round to the same number of steps, or the ladder repeats a shape"
        )
    if not runs:
        raise LmscaleError(f"sweep {spec.name!r} expands to no runs; expected budgets that keep at least one model")
    long = next((r.run_id for r in runs if len(r.run_id) > MAX_ID_CHARS), None)
    if long is not None:
        raise LmscaleError(f"run id {long!r} has {len(long)} characters; expected at most {MAX_ID_CHARS} "
                           "(a shorter sweep name or family, or fewer grid keys)")
    # Cheapest jobs first, so partial sweeps already give a usable small-scale table.
    job_cost: dict[str, float] = {}
    for r in runs:
        job_cost[r.job] = job_cost.get(r.job, 0.0) + r.flops
    job_rank = {j: i for i, j in enumerate(sorted(job_cost, key=lambda j: (job_cost[j], j)))}
    for i, r in enumerate(sorted(runs, key=lambda r: (job_rank[r.job], r.steps, r.seed))):
        r.order = i
    return sorted(runs, key=lambda r: r.order)


def _validate(raw: dict[str, Any], shape: dict[str, Any], grid: dict[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        where = f"(model {shape}" + (f", grid {grid}" if grid else "") + ")"
        raise LmscaleError(_format_validation_error(err, where).replace("invalid config", "sweep expands to an invalid run config")) from None


def _targets(spec: SweepSpec, n_total: int, fpt: float) -> list[tuple[float, float | None]]:
    t = spec.tokens
    if t.absolute is not None:
        return [(float(d), None) for d in t.absolute]
    if t.per_param is not None:
        return [(m * n_total, None) for m in t.per_param]
    iso = t.isoflop
    per_token = fpt if iso.flops == "exact" else 6.0 * n_total
    out = []
    for c in iso.budgets:
        d = c / per_token
        if iso.tokens_per_param is not None and not iso.tokens_per_param[0] <= d / n_total <= iso.tokens_per_param[1]:
            continue
        out.append((d, float(c)))
    return out


def _fork_step(cfg: RunConfig, steps: int, trunk_steps: int, run_id: str) -> int:
    """The step where a WSD branch leaves the trunk: its own decay start (as `schedule_fn` computes it)."""
    s = cfg.train.schedule
    if s.kind != "wsd":
        raise LmscaleError(
            f"branches: wsd needs train.schedule.kind: wsd in the base config (got {s.kind!r}); "
            "expected a warmup-stable-decay schedule so that every budget shares the constant-LR trunk"
        )
    decay = max(1, int(round(s.decay_fraction * steps)))
    fork = steps - decay
    trunk_decay_start = trunk_steps - max(1, int(round(s.decay_fraction * trunk_steps)))
    if fork > trunk_decay_start:
        raise LmscaleError(f"run {run_id}: its cooldown starts after the trunk's; expected shorter budgets than the trunk")
    return fork


def check_isoflop_coverage(spec: SweepSpec, runs: list[PlannedRun]) -> list[str]:
    """Warnings for IsoFLOP budgets that keep too few model sizes to fit a parabola."""
    iso = spec.tokens.isoflop
    if iso is None:
        return []
    out = []
    for c in iso.budgets:
        sizes = {r.n_params for r in runs if r.budget == c}
        if len(sizes) < iso.min_points:
            out.append(f"budget C={c:.3g} FLOPs keeps {len(sizes)} model size(s); an IsoFLOP parabola needs >= {iso.min_points}")
    return out


def spec_text_for_dir(spec: SweepSpec, base: dict[str, Any]) -> dict[str, Any]:
    """The spec as stored in a sweep directory: base inlined, so the directory is self-contained."""
    d = spec.model_dump(mode="json")
    d["base"] = base
    return {"version": SPEC_VERSION, "spec": d}


def spec_from_dir_record(record: dict[str, Any]) -> tuple[SweepSpec, dict[str, Any]]:
    return parse_spec(record["spec"], source="(sweep directory)")


__all__ = [
    "SweepSpec", "LadderSpec", "TokensSpec", "IsoflopSpec", "PlannedRun", "load_spec", "parse_spec", "expand",
    "check_isoflop_coverage", "spec_text_for_dir", "spec_from_dir_record", "set_dotted",
]
