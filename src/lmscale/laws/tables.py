"""Plain-text tables and JSON-safe conversion for the result objects of `lmscale.laws`."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np


def fmt(x: Any, digits: int = 4) -> str:
    """A number in `digits` significant figures; scientific outside [1e-3, 1e5); '-' for None/NaN."""
    if x is None:
        return "-"
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(v):
        return "-" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}"


def fmt_interval(lo: Any, hi: Any) -> str:
    return f"({fmt(lo)}, {fmt(hi)})"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> str:
    cells = [[str(h) for h in headers]] + [[c if isinstance(c, str) else fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [title] if title else []
    out += [line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]]
    return "\n".join(out)


def jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays to Python; NaN and inf become None (strict JSON has neither)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


def allocation_lines(est, with_se: bool = False) -> list[str]:
    """The power laws N_opt ~ C^a, D_opt ~ C^b of an Approach-1/2 estimator and its allocation at the
    target compute, with bootstrap intervals when it has been bootstrapped; then its warnings."""
    boot = est.bootstrap_

    def iv(k: str) -> str:
        return f" {boot.confidence:.0%} CI ({fmt(boot.interval(k)[0])}, {fmt(boot.interval(k)[1])})" if boot else ""

    def se(k: str) -> str:
        return f" (SE {fmt(getattr(est, k + '_se_'))})" if with_se else ""

    at = est.predict(est.target_compute_)
    lines = [f"a = {fmt(est.a_)}{se('a')}{iv('a')}   N_opt = {fmt(est.N_coef_)} C^a",
             f"b = {fmt(est.b_)}{se('b')}{iv('b')}   D_opt = {fmt(est.D_coef_)} C^b",
             f"at C = {fmt(est.target_compute_)} FLOPs: N_opt {fmt(at['N_opt'])}{iv('N_opt')}, D_opt {fmt(at['D_opt'])}"
             f"{iv('D_opt')}, tokens/param {fmt(at['tokens_per_param'])}{iv('tokens_per_param')}"]
    return lines + [f"warning: {w}" for w in est.warnings_]
