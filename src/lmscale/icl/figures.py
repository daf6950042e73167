"""Figures of the ICL experiments, each a PNG with a CSV of the plotted numbers (lmscale.report.common)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lmscale.report.common import FigureFiles, finish_axes, new_figure, resolve_out, save_figure


def error_curve_figure(curves, out: str | Path, title: str, name: str = "error_curve") -> FigureFiles:
    """Normalised squared error vs in-context examples k, model and learners, bootstrap bands."""
    fig, (ax,), _ = new_figure(1)
    rows = []
    for label, c in curves.curves.items():
        mean, lo, hi = (np.asarray(v, float) for v in (c.mean, c.low, c.high))
        style = {"lw": 2.4, "color": "black"} if label == "transformer" else {"lw": 1.3}
        (line,) = ax.plot(curves.k, mean, marker="o", ms=3, label=label, **style)
        ax.fill_between(curves.k, lo, hi, alpha=0.2, color=line.get_color())
        rows += [(label, int(k), m, a, b) for k, m, a, b in zip(curves.k, mean, lo, hi)]
    ax.axhline(1.0, color="grey", ls=":", lw=1)
    ax.set_ylim(0, 1.6)  # averaging and k-NN blow up at small k; the CSV has every value
    ax.legend(fontsize=8)
    finish_axes(ax, "in-context examples k", f"squared error / {curves.normalizer:g} (normalised)", logx=False, title=title)
    return save_figure(fig, resolve_out(out, name), ["predictor", "k", "normalized_error", "ci_low", "ci_high"], rows)


def distance_figure(table: dict[str, dict[str, float]], out: str | Path, title: str, ylabel: str,
                    name: str = "sweep") -> FigureFiles:
    """Distance (MSPD or SPD, per d) of the model to each learner, one line per learner over variants."""
    fig, (ax,), _ = new_figure(1)
    variants = list(table)
    learners = list(next(iter(table.values()))) if table else []
    rows = []
    for learner in learners:
        ys = [table[v][learner] for v in variants]
        ax.plot(range(len(variants)), ys, marker="o", label=learner)
        rows += [(v, learner, y) for v, y in zip(variants, ys)]
    ax.set_xticks(range(len(variants)), variants, rotation=20, fontsize=8)
    ax.legend(fontsize=8)
    finish_axes(ax, "variant", ylabel, logx=False, logy=True, title=title)
    return save_figure(fig, resolve_out(out, name), ["variant", "learner", "distance"], rows)


def lsa_figure(history: list[dict[str, Any]], report: dict[str, Any], out: str | Path, title: str) -> FigureFiles:
    """Training loss of the LSA against the test losses of one tuned GD step and the zero predictor."""
    fig, (ax,), _ = new_figure(1)
    steps = [r["step"] for r in history]
    loss = [r["loss_avg"] for r in history]
    ax.plot(steps, loss, label="LSA train loss (chunk mean)")
    ax.axhline(report["loss_gd_best"], color="C1", ls="--", label=f"one GD step, η* = {report['eta_best']:.3g}")
    ax.axhline(report["loss_zero"], color="grey", ls=":", label="zero predictor")
    ax.axhline(report["loss_model"], color="C0", ls="-.", lw=1, label="LSA test loss")
    ax.legend(fontsize=8)
    finish_axes(ax, "training step", "squared error (y units²)", logx=False, logy=True, title=title)
    rows = [("lsa_train", s, v) for s, v in zip(steps, loss)]
    rows += [(k, "", report[k]) for k in ("loss_model", "loss_gd_best", "loss_zero", "loss_ols")]
    return save_figure(fig, resolve_out(out, "lsa_vs_gd"), ["series", "step", "loss"], rows)


def probe_figure(rows: list[dict[str, Any]], out: str | Path, title: str, control: list[dict[str, Any]] | None = None) -> FigureFiles:
    """Held-out R² of each probe per layer, one panel per target; the control model dashed."""
    from lmscale.icl.probe import TARGETS

    fig, axes, _ = new_figure(len(TARGETS))
    data = [("model", r) for r in rows] + [("control", r) for r in control or []]
    n_max = max(r["n"] for r in rows)
    for ax, target in zip(axes, TARGETS):
        for which, ls in (("model", "-"), ("control", "--")):
            for probe in ("linear", "mlp"):
                pts = sorted((r["layer"], r["r2"]) for w, r in data
                             if w == which and r["target"] == target and r["probe"] == probe and r["n"] == n_max)
                if pts:
                    ax.plot(*zip(*pts), ls=ls, marker="o", label=f"{which} {probe}")
        ax.set_ylim(-0.1, 1.05)
        ax.legend(fontsize=8)
        finish_axes(ax, "layer (0 = read-in)", f"R² of {target} (held out, n = {n_max})", logx=False, title=title)
    out_rows = [(w, r["n"], r["layer"], r["target"], r["probe"], r["r2"]) for w, r in data]
    return save_figure(fig, resolve_out(out, "probe"), ["model", "n", "layer", "target", "probe", "r2"], out_rows)
