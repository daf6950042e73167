"""Compute-optimal frontier figure: N_opt(C) and D_opt(C), tokens per parameter and the optimal loss
against compute, with the bootstrap median and percentile band, the compute range the law was fitted
on, and Hoffmann et al.'s Chinchilla point (C = 5.76e23 FLOPs, N = 70e9, D = 1.4e12) when in range.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lmscale.errors import LmscaleError
from lmscale.report.common import (FigureFiles, finish_axes, law_caption, new_figure, require_fitted, resolve_out,
                                   save_figure)

CHINCHILLA_POINT = {"C": 5.76e23, "N_opt": 70e9, "D_opt": 1.4e12, "tokens_per_param": 1.4e12 / 70e9}
QUANTITIES = ("N_opt", "D_opt", "tokens_per_param", "loss_opt")
COLUMNS = (["kind", "C"] + [c for q in QUANTITIES for c in (q, f"{q}_median", f"{q}_low", f"{q}_high")]
           + ["in_data_range"])


def default_compute_range(law) -> tuple[float, float]:
    """From the smallest compute in the data to 100x the largest."""
    C = law.data_.C[np.isfinite(law.data_.C)]
    if not len(C):
        raise LmscaleError(f"{law.data_.source}: no compute values; expected C (FLOPs) or N and D to place the frontier")
    return float(C.min()), float(100.0 * C.max())


def frontier_figure(law, bootstrap=None, C_range: tuple[float, float] | None = None, *, out: str | Path,
                    n: int = 80) -> FigureFiles:
    """N_opt, D_opt (left), tokens/param (middle), L_opt (right) vs C; writes ``frontier.png``/.csv.

    `bootstrap`: a `BootstrapResult` of this law (`lmscale.laws.bootstrap.bootstrap(law, ...)`), or None; the band is its
    percentile interval at the bootstrap's confidence, the dashed line the median. `C_range`:
    (low, high) FLOPs (default: `default_compute_range`). C follows C = 6·N·D.
    CSV columns: kind (frontier, or chinchilla_reference), C (FLOPs), then for each of N_opt
    (parameters), D_opt (tokens), tokens_per_param, loss_opt (nats/token): the fitted value and the
    bootstrap median, low and high (empty without a bootstrap), and in_data_range.
    """
    require_fitted(law, "frontier")
    if not law.has_allocation():
        raise LmscaleError(f"law {law.form_.name!r} has no compute-optimal allocation; "
                           "expected a joint law of N and D (chinchilla, kaplan-joint, data-constrained)")
    boot = bootstrap
    if boot is not None and (boot.theta is None or not boot.converged.any()):
        raise LmscaleError(f"bootstrap of {boot.law!r} has no converged resamples with parameters; "
                           "expected a BootstrapResult from bootstrap(law, ...)")
    lo, hi = C_range if C_range is not None else default_compute_range(law)
    if not (0 < lo < hi and np.isfinite(hi)):
        raise LmscaleError(f"compute range ({lo!r}, {hi!r}); expected 0 < low < high FLOPs")
    png = resolve_out(out, "frontier")
    C = np.geomspace(lo, hi, n)
    with np.errstate(over="ignore", invalid="ignore"):  # resamples with runaway parameters give inf/NaN, left out
        fr = law.frontier(C, bootstrap=boot)
    dC = law.data_.C[np.isfinite(law.data_.C)]
    d_lo, d_hi = (float(dC.min()), float(dC.max())) if len(dC) else (np.nan, np.nan)
    in_range = (C >= d_lo * (1 - 1e-12)) & (C <= d_hi * (1 + 1e-12))
    show_ref = lo <= CHINCHILLA_POINT["C"] <= hi

    ex = ""
    if hasattr(law, "a_"):
        ex = f"N_opt ∝ C^a, a = {law.a_:.3f};  D_opt ∝ C^b, b = {law.b_:.3f}"
        if boot is not None and "a" in boot.samples:
            alo, ahi = boot.interval("a")
            ex += f"  (a: {boot.confidence:.0%} interval {alo:.3f} to {ahi:.3f})"
    caption = law_caption(law, boot, max_width=5) + (f"\n{ex}" if ex else "")
    caption += (f"\nshaded grey: compute range of the fitted data ({d_lo:.3g} to {d_hi:.3g} FLOPs); "
                "beyond it the frontier is an extrapolation")
    fig, (ax, axr, axl), _ = new_figure(3, width=5.3, height=4.8, caption=caption)
    styles = {"N_opt": ("tab:blue", "N_opt (parameters)"), "D_opt": ("tab:green", "D_opt (tokens)")}
    panels = {"N_opt": ax, "D_opt": ax, "tokens_per_param": axr, "loss_opt": axl}
    colors = {**{k: v[0] for k, v in styles.items()}, "tokens_per_param": "tab:purple", "loss_opt": "tab:red"}
    names = {**{k: v[1] for k, v in styles.items()}, "tokens_per_param": "D_opt / N_opt", "loss_opt": "L_opt"}
    labelled: set[int] = set()
    for q in QUANTITIES:
        a, col = panels[q], colors[q]
        first = id(a) not in labelled
        labelled.add(id(a))
        a.plot(C, fr.point[q], "-", color=col, lw=1.8, label=f"{names[q]} (fit)")
        if q in fr.bands:
            blo, bmed, bhi = fr.bands[q]
            a.fill_between(C, blo, bhi, color=col, alpha=0.18, lw=0,
                           label=f"{fr.confidence:.0%} bootstrap band ({boot.n_converged} resamples)" if first else None)
            a.plot(C, bmed, "--", color=col, lw=1.0, label="bootstrap median" if first else None)
    for a in (ax, axr, axl):
        if np.isfinite(d_lo):
            a.axvspan(d_lo, d_hi, color="0.5", alpha=0.12, lw=0, label="compute range of the fitted data")
    if show_ref:
        ref = CHINCHILLA_POINT
        ax.scatter([ref["C"]], [ref["N_opt"]], marker="*", s=180, color="tab:blue", edgecolors="k", zorder=6,
                   label="Chinchilla: 70e9 params")
        ax.scatter([ref["C"]], [ref["D_opt"]], marker="*", s=180, color="tab:green", edgecolors="k", zorder=6,
                   label="Chinchilla: 1.4e12 tokens")
        axr.scatter([ref["C"]], [ref["tokens_per_param"]], marker="*", s=180, color="tab:purple", edgecolors="k",
                    zorder=6, label="Chinchilla: 20 tokens/param")
    finish_axes(ax, "C (training FLOPs, C = 6ND)", "N_opt (parameters, total) / D_opt (tokens)", logy=True,
                title="compute-optimal model size and data")
    finish_axes(axr, "C (training FLOPs, C = 6ND)", "D_opt / N_opt (tokens per parameter)", logy=True,
                title="tokens per parameter at the optimum")
    finish_axes(axl, "C (training FLOPs, C = 6ND)", "L_opt (nats/token)", title="loss at the optimum")
    for a in (ax, axr, axl):
        a.legend(fontsize=7, loc="best")
    fig.suptitle(f"Compute-optimal frontier of the fitted {law.form_.name} law (C = 6ND)", fontsize=10)

    rows: list[list[Any]] = []
    for i, c in enumerate(C):
        r: list[Any] = ["frontier", c]
        for q in QUANTITIES:
            r.append(fr.point[q][i])
            if q in fr.bands:
                blo, bmed, bhi = fr.bands[q]
                r += [bmed[i], blo[i], bhi[i]]
            else:
                r += [None, None, None]
        rows.append(r + [bool(in_range[i])])
    if show_ref:
        ref = CHINCHILLA_POINT
        rows.append(["chinchilla_reference", ref["C"], ref["N_opt"], None, None, None, ref["D_opt"], None, None, None,
                     ref["tokens_per_param"], None, None, None, None, None, None, None, False])
    return save_figure(fig, png, COLUMNS, rows)


__all__ = ["frontier_figure", "default_compute_range", "CHINCHILLA_POINT"]
