"""Loss surface figure: final loss vs N, one colour per token count (or compute budget), with a joint
law L(N, D) drawn through each group, and held-out points (the extrapolation check) marked with the
prediction of the fit made without them.

Grouping, in order: points sharing D (within 10%) across sizes, one curve L(N, D_group); else points
sharing a compute budget, one curve along the iso-compute line L(N, C/(6N)); else D split into up to
six log-spaced bins, one curve per bin at the bin's geometric-mean D (labelled "D ≈").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lmscale.errors import LmscaleError
from lmscale.laws.data import ScalingData
from lmscale.laws.extrapolation import group_budgets
from lmscale.laws.tables import fmt
from lmscale.report.common import (HELD_OUT_STYLE, LABELS, FigureFiles, add_colorbar, finish_axes, group_centres,
                                   group_values, held_out_mask, is_joint, law_caption, log_colors, new_figure,
                                   require_fitted, resolve_out, save_figure, span)

COLUMNS = ["kind", "group", "group_by", "group_value", "N", "D", "C", "loss"]
MAX_LEGEND_GROUPS = 8


def surface_groups(data: ScalingData) -> tuple[str, np.ndarray, dict[int, float]]:
    """(group_by, group id per row, group value) with group_by 'D' (tokens), 'C' (FLOPs) or 'D-bin'."""
    n = len(data)
    ids = group_values(data.D, rtol=0.1)
    sizes_per = [len(np.unique(data.N[ids == g])) for g in np.unique(ids)]
    if np.median(sizes_per) >= 2:
        return "D", ids, group_centres(data.D, ids)
    if np.isfinite(data.C).all():
        cid = group_budgets(data.C, 0.1, data.budget)
        per = [len(np.unique(data.N[cid == g])) for g in np.unique(cid)]
        if np.median(per) >= 2:
            if data.budget is not None:
                vals = {int(g): float(data.budget[cid == g][0]) for g in np.unique(cid)}
            else:
                vals = group_centres(data.C, cid)
            return "C", cid, vals
    lD = np.log(data.D)
    k = int(min(6, max(1, n // 3)))
    edges = np.linspace(lD.min(), lD.max() + 1e-12, k + 1)
    bid = np.clip(np.searchsorted(edges, lD, side="right") - 1, 0, k - 1)
    _, bid = np.unique(bid, return_inverse=True)
    return "D-bin", bid.ravel(), group_centres(data.D, bid.ravel())


def loss_surface_figure(data: ScalingData, law, *, out: str | Path, extrapolation=None) -> FigureFiles:
    """Loss vs N per token count (or budget) with the fitted L(N, D) curves; writes ``loss_surface.png``/.csv.

    `law`: a fitted joint law of N and D (Chinchilla, Kaplan joint, data-constrained).
    `extrapolation`: an `ExtrapolationResult` (from `lmscale.laws.extrapolation.extrapolation_check`), or None; its held-out
    points are drawn as open red diamonds, with a cross at the prediction of the fit made without them.
    CSV columns: kind (point, held_out, held_out_prediction, fit), group, group_by (D, C or D-bin),
    group_value (tokens or FLOPs), N (parameters), D (tokens), C (FLOPs), loss (nats/token).
    """
    require_fitted(law, "loss-surface")
    if not is_joint(law):
        raise LmscaleError(f"law {law.form_.name!r} is a function of {', '.join(law.form_.variables)}; "
                           "expected a joint law of N and D (chinchilla, kaplan-joint, data-constrained) for the loss surface")
    ok = np.isfinite(data.N) & np.isfinite(data.D)
    if not ok.any():
        raise LmscaleError(f"{data.source}: no rows with both N and D; expected N (params) and D (tokens) for the loss surface")
    data = data.subset(ok)
    png = resolve_out(out, "loss_surface")
    ext = extrapolation
    held = held_out_mask(data, ext)
    by, ids, vals = surface_groups(data)
    groups = [int(g) for g in np.unique(ids)]
    color, norm, cm = log_colors(np.array([vals[g] for g in groups]), "plasma")
    unit = "FLOPs" if by == "C" else "tokens"
    caption = law_caption(law, max_width=5)
    if ext is not None:
        caption += f"\nextrapolation check: hold out {ext.description}; mean ARE {ext.mean_are:.2%}, max {ext.max_are:.2%}"
    fig, (ax,), _ = new_figure(1, width=9.0, height=5.6, caption=caption)
    rows: list[list[Any]] = []
    N_grid = span(data.N, pad=1.6)
    for g in groups:
        m = ids == g
        v = vals[g]
        col = color(v)
        name = {"D": f"D = {fmt(v, 3)} tokens", "C": f"C = {fmt(v, 3)} FLOPs", "D-bin": f"D ≈ {fmt(v, 3)} tokens"}[by]
        keep = m & ~held
        ax.scatter(data.N[keep], data.loss[keep], color=col, s=26, edgecolors="k", linewidths=0.4, zorder=4,
                   label=name if len(groups) <= MAX_LEGEND_GROUPS else None)
        rows += [["point", g, by, v, n, d, c, y] for n, d, c, y in
                 zip(data.N[keep], data.D[keep], data.C[keep], data.loss[keep])]
        if by == "C":
            Ng = N_grid
            Dg = v / (6.0 * Ng)
        else:
            Ng, Dg = N_grid, np.full_like(N_grid, v)
        yl = law.predict(Ng, Dg)
        ax.plot(Ng, yl, "-", color=col, lw=1.3, alpha=0.9)
        rows += [["fit", g, by, v, n, d, 6.0 * n * d, y] for n, d, y in zip(Ng, Dg, yl)]
    if held.any():
        ax.scatter(data.N[held], data.loss[held], c=[color(vals[int(g)]) for g in ids[held]],
                   label="held out (largest size), observed", **HELD_OUT_STYLE)
        rows += [["held_out", int(ids[i]), by, vals[int(ids[i])], data.N[i], data.D[i], data.C[i], data.loss[i]]
                 for i in np.flatnonzero(held)]
        pred = [(r["N"], r["D"], r["C"], r["predicted"]) for r in ext.rows]
        ax.scatter([p[0] for p in pred], [p[3] for p in pred], marker="x", color="red", s=40, zorder=6,
                   label=f"prediction of the fit without them (mean ARE {ext.mean_are:.2%})")
        for (n, d, c, yp), r in zip(pred, ext.rows):
            ax.plot([n, n], [r["loss"], yp], "-", color="red", lw=0.8, alpha=0.7)
        rows += [["held_out_prediction", "", by, "", n, d, c, y] for n, d, c, y in pred]
    if len(groups) > MAX_LEGEND_GROUPS:
        add_colorbar(fig, ax, norm, cm, f"{'C' if by == 'C' else 'D'} ({unit}) of each group")
    ax.plot([], [], "-", color="0.3", label=f"fitted {law.form_.name} L(N, D)" + (" along C = 6ND" if by == "C" else ""))
    finish_axes(ax, LABELS["N"], LABELS["loss"],
                title=f"loss vs N, one colour per {'compute budget' if by == 'C' else 'token count'}")
    ax.legend(fontsize=7, loc="best")
    return save_figure(fig, png, COLUMNS, rows)
