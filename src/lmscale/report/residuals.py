"""Residual figure: log L̂ − log L of a fitted law against N, D and C.

In-sample residuals are those of the law fitted to all points. Held-out points (the extrapolation
check) are drawn a second time, as open red diamonds, with the residual of the law refitted without
them: the error one would have made predicting them. log L̂ − log L ≈ relative error, so the axis is
shown in percent (100 × the log residual).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lmscale.errors import LmscaleError
from lmscale.laws.data import ScalingData
from lmscale.report.common import (HELD_OUT_STYLE, LABELS, FigureFiles, finish_axes, held_out_mask, new_figure,
                                   param_name, require_fitted, resolve_out, save_figure, short_params)

COLUMNS = ["kind", "N", "D", "C", "loss", "predicted", "log_residual", "residual_pct"]
YLABEL = "100 × (log L̂ − log L)  (% of loss, nats/token)"


def residuals_figure(data: ScalingData, law, *, out: str | Path, extrapolation=None) -> FigureFiles:
    """Residuals vs N, D, C (three panels); writes ``residuals.png`` / ``residuals.csv`` (or `out`).

    `extrapolation`: an `ExtrapolationResult` (from `lmscale.laws.extrapolation.extrapolation_check`), or None.
    CSV columns: kind (in_sample, held_out), N (parameters), D (tokens), C (FLOPs), loss and predicted
    (nats/token), log_residual = ln L̂ − ln L, residual_pct = 100 × log_residual.
    """
    require_fitted(law, "residuals")
    if len(data) == 0:
        raise LmscaleError(f"{data.source}: no data points; expected final losses to compute residuals")
    png = resolve_out(out, "residuals")
    ext = extrapolation
    pred = np.asarray(law.predict(data), float)
    r = np.log(pred) - np.log(data.loss)
    held = held_out_mask(data, ext)
    rows: list[list[Any]] = [["in_sample", n, d, c, y, p, v, 100 * v]
                             for n, d, c, y, p, v in zip(data.N, data.D, data.C, data.loss, pred, r)]
    h_rows = []
    if ext is not None:
        for row in ext.rows:
            v = float(np.log(row["predicted"]) - np.log(row["loss"]))
            h_rows.append(["held_out", row["N"], row["D"], row["C"], row["loss"], row["predicted"], v, 100 * v])
    rows += h_rows
    ok_r = np.isfinite(r)
    rms = float(np.sqrt(np.mean(r[ok_r] ** 2))) if ok_r.any() else float("nan")
    caption = (f"{law.form_.name}: {param_name(law.form_.formula.split('  [')[0])};  {short_params(law)}\n"
               f"in-sample: {int(ok_r.sum())} points, RMS log residual {100 * rms:.2f}%, max |residual| "
               f"{100 * np.max(np.abs(r[ok_r])):.2f}%")
    if ext is not None:
        caption += (f"\nheld out {ext.description}, refitted on the other {ext.n_train}: "
                    f"mean ARE {ext.mean_are:.2%}, max {ext.max_are:.2%}")
    fig, axes, _ = new_figure(3, width=5.0, height=4.3, caption=caption)
    for ax, var in zip(axes, ("N", "D", "C")):
        x = getattr(data, var)
        m = ok_r & np.isfinite(x)
        if not m.any():
            ax.text(0.5, 0.5, f"no {var} values in the data", transform=ax.transAxes, ha="center")
        ax.axhline(0.0, color="k", lw=0.8)
        ax.scatter(x[m & ~held], 100 * r[m & ~held], s=22, color="tab:blue", edgecolors="k", linewidths=0.4,
                   label="in-sample (fit to all points)")
        if (m & held).any():
            ax.scatter(x[m & held], 100 * r[m & held], s=22, color="tab:orange", edgecolors="k", linewidths=0.4,
                       label="held-out points, in-sample residual")
        if h_rows:
            hx = np.array([hr[{"N": 1, "D": 2, "C": 3}[var]] for hr in h_rows], float)
            hv = np.array([hr[7] for hr in h_rows], float)
            ax.scatter(hx, hv, facecolors="none", label="held out: fit without them", **HELD_OUT_STYLE)
        finish_axes(ax, LABELS[var], YLABEL if var == "N" else "residual (%)", title=f"residuals vs {var}")
    axes[-1].legend(fontsize=7, loc="best")
    fig.suptitle(f"Residuals of the {law.form_.name} fit (positive: law over-predicts the loss)", fontsize=10)
    return save_figure(fig, png, COLUMNS, rows)
