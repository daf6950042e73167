"""Token formats for in-context regression prompts, and Garg's curriculum.

API (stable):

    tokens = encode(xs, ys, fmt)      # xs (B, k, d), ys (B, k) -> (B, 2k, token_dim(d, fmt))
    x_positions(k)                    # (k,) token indices of x_1..x_k: predictions are read there
    y_channel(fmt)                    # the token channel holding y (0 in both formats)
    Curriculum(dims=Schedule(...), points=Schedule(...)).at(step) -> (d_active, n_points)

Formats (the prediction for x_i is read at token 2i, the x_i token; the model has seen the pairs
before it, so one causal pass predicts every prefix):
- ``garg`` (Garg et al. 2022, `src/models.py:_combine`): x_i as is, then y_i zero-padded to d
  dimensions, y in channel 0; token_dim = d.
- ``akyurek`` (Akyürek et al. 2022, `sampler_lib.py`; also Raventós et al.): x-token [0, x_i] and
  y-token [y_i, 0_d] in R^{d+1}; token_dim = d + 1, y in channel 0, which x-tokens leave empty.

Works on numpy or JAX arrays (JAX in, JAX out), inside jit. The token formats are the models':
they live in `lmscale.model.icl` (the model layer never imports the lab) and are re-exported here.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from lmscale.config import Strict
from lmscale.errors import LmscaleError
from lmscale.model.icl import FORMATS, decode, encode, token_dim, x_positions, y_channel, y_positions

__all__ = ["FORMATS", "Curriculum", "Schedule", "decode", "encode", "token_dim", "x_positions", "y_channel", "y_positions"]


class Schedule(Strict):
    """One curriculum axis (Garg's `src/curriculum.py`): start, +inc every `interval` steps, capped at end."""

    start: int = Field(..., ge=1)
    end: int = Field(..., ge=1)
    inc: int = Field(0, ge=0)
    interval: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _order(self) -> "Schedule":
        if self.end < self.start:
            raise ValueError(f"curriculum end={self.end} < start={self.start}; expected start <= end")
        return self

    def at(self, step: int) -> int:
        # Garg updates after each step when step_count % interval == 0, so step t trains with
        # start + inc * (t // interval).
        if step < 0:
            raise LmscaleError(f"step={step}; expected a step >= 0")
        return min(self.end, self.start + self.inc * (int(step) // self.interval))


class Curriculum(Strict):
    """Garg's curriculum over input dimensions and prompt points. `at(step)` gives Python ints, since
    n_points sets array shapes (each distinct value compiles once)."""

    dims: Schedule
    points: Schedule

    @classmethod
    def constant(cls, d: int, n_points: int) -> "Curriculum":
        return cls(dims=Schedule(start=d, end=d), points=Schedule(start=n_points, end=n_points))

    @classmethod
    def garg(cls, d: int = 20, n_points: int = 41, kind: str = "linear") -> "Curriculum":
        """Garg's schedules: dims 5 -> d (+1 per 2000 steps); points 11 -> n (+2) for linear and
        sparse, 26 -> n (+5) for trees and nets (`src/conf/*.yaml`)."""
        p0, pinc = (11, 2) if kind in ("linear", "sparse_linear") else (26, 5)
        return cls(dims=Schedule(start=min(5, d), end=d, inc=1, interval=2000),
                   points=Schedule(start=min(p0, n_points), end=n_points, inc=pinc, interval=2000))

    def at(self, step: int) -> tuple[int, int]:
        return self.dims.at(step), self.points.at(step)

    def full_at(self) -> int:
        """The first step at which both axes reach their end."""
        def first(s: Schedule) -> int:
            if s.start == s.end:
                return 0
            if s.inc == 0:
                raise LmscaleError(f"curriculum start={s.start} < end={s.end} with inc=0 never reaches end")
            return -(-(s.end - s.start) // s.inc) * s.interval
        return max(first(self.dims), first(self.points))
