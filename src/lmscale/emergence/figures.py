"""Emergence figures (PNG + CSV of the plotted numbers, via lmscale.report.common).

- `mirage_figure`: one task under every measured metric side by side (exact match beside the
  continuous metrics), with intervals and chance;
- `loss_and_transitions_figure`: the aggregate validation loss (smooth power law) beside each task's
  primary metric (the transitions);
- `metric_vs_loss_figure`: each task's primary metric against validation loss (Du et al.);
- `ledger_grid_figure`: the ability ledger as a grid, tasks x scales, pass / fail / not evaluated.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from lmscale.emergence.detect import PRIMARY_ORDER
from lmscale.emergence.results import METRICS, EvalTable
from lmscale.errors import LmscaleError
from lmscale.report.common import LABELS, FigureFiles, finish_axes, new_figure, resolve_out, save_figure

X_LABELS = {**LABELS, "val_loss": "validation loss (nats/token)", "step": "training step"}
METRIC_LABELS = {
    "exact_match": "exact match", "token_accuracy": "per-token accuracy", "edit_distance": "token edit distance / L",
    "logprob": "log p(answer) (nats)", "token_prob": "per-token probability", "mc_accuracy": "multiple-choice accuracy",
    "brier": "Brier score", "pass_until": "PassUntil pass rate",
}


def primary_metric(table: EvalTable, task: str) -> str:
    have = table.metrics(task)
    return next(m for m in PRIMARY_ORDER if m in have)


def _plot_curve(ax, c, color=None, label=None) -> None:
    err = None
    if np.isfinite(c.low).any():
        lo = np.where(np.isfinite(c.low), c.y - c.low, 0)
        hi = np.where(np.isfinite(c.high), c.high - c.y, 0)
        err = np.clip(np.stack([lo, hi]), 0, None)
    ax.errorbar(c.x, c.y, yerr=err, marker="o", ms=4, capsize=2, color=color, label=label)


def mirage_figure(table: EvalTable, task: str, out: str | Path, x: str = "N", k_shot: int | None = None,
                  metrics: Sequence[str] | None = None) -> FigureFiles:
    """The task under each metric along x, one panel per metric; chance as a dotted line."""
    metrics = list(metrics) if metrics else table.metrics(task)
    curves = [table.curve(task, m, x=x, k_shot=k_shot) for m in metrics]
    fig, axes, _ = new_figure(len(curves), width=3.6, height=3.4)
    rows = []
    for ax, c in zip(axes, curves):
        _plot_curve(ax, c)
        if math.isfinite(c.chance):
            ax.axhline(c.chance, ls=":", color="gray", lw=1, label="chance")
        finish_axes(ax, X_LABELS.get(x, x), METRIC_LABELS[c.metric], logx=x != "val_loss",
                    title=f"{task}: {METRIC_LABELS[c.metric]}")
        if x == "val_loss":
            ax.invert_xaxis()
        rows += [(c.metric, xv, yv, lo, hi, c.chance) for xv, yv, lo, hi in zip(c.x, c.y, c.low, c.high)]
    fig.suptitle(f"{task} (k = {curves[0].k_shot}): the same models under {len(curves)} metrics", fontsize=10)
    png = resolve_out(out, f"mirage_{task}")
    return save_figure(fig, png, ["metric", x, "value", "ci_low", "ci_high", "chance"], rows)


def loss_and_transitions_figure(table: EvalTable, out: str | Path, x: str = "N") -> FigureFiles:
    """Left: validation loss of each run along x with a fitted E + A x^-a; right: each task's primary metric."""
    from lmscale.emergence.forecast import fit_loss_law, loss_law

    runs = table.loss_by_run()
    xi = {"N": 0, "C": 1, "D": 2}.get(x)
    if xi is None:
        raise LmscaleError(f"loss-and-transitions figure along {x!r}; expected N, C or D")
    pts = np.array([(v[xi], v[3]) for v in runs.values() if math.isfinite(v[xi]) and math.isfinite(v[3])])
    fig, (a0, a1), _ = new_figure(2)
    rows = []
    if len(pts):
        pts = pts[np.argsort(pts[:, 0])]
        a0.plot(pts[:, 0], pts[:, 1], "o", color="k", label="runs")
        rows += [("val_loss", "", xv, yv) for xv, yv in pts]
        if len(pts) >= 4:
            try:
                law = fit_loss_law(pts[:, 0], pts[:, 1])
                g = np.geomspace(pts[0, 0], pts[-1, 0], 100)
                a0.plot(g, loss_law(law, g), "-", color="C3",
                        label=f"{law['E']:.3g} + {law['A']:.3g} {x}^-{law['a']:.3g}")
                rows += [("val_loss_fit", "", xv, yv) for xv, yv in zip(g, loss_law(law, g))]
            except LmscaleError:
                pass
        a0.legend(fontsize=8)
    # Linear loss axis: a ladder's losses often span less than a decade, where log ticks vanish.
    finish_axes(a0, X_LABELS[x], LABELS["loss"], title="aggregate validation loss")
    for i, task in enumerate(table.tasks()):
        m = primary_metric(table, task)
        for k in table.k_shots(task):
            try:
                c = table.curve(task, m, x=x, k_shot=k)
            except LmscaleError:
                continue
            _plot_curve(a1, c, color=f"C{i % 10}", label=f"{task} ({m}{', k=' + str(k) if k else ''})")
            rows += [(f"{task}:{m}:k{k}", task, xv, yv) for xv, yv in zip(c.x, c.y)]
    finish_axes(a1, X_LABELS[x], "task metric (primary)", title="per-task transitions")
    a1.legend(fontsize=7)
    png = resolve_out(out, "loss_and_transitions")
    return save_figure(fig, png, ["series", "task", x, "value"], rows)


def metric_vs_loss_figure(table: EvalTable, out: str | Path, thresholds: dict[str, float] | None = None) -> FigureFiles:
    """Each task's primary metric against validation loss (x axis reversed: better models to the right);
    `thresholds`: task -> loss threshold of emergence, drawn as a dashed line."""
    fig, (ax,), _ = new_figure(1, width=6.4)
    rows = []
    for i, task in enumerate(table.tasks()):
        m = primary_metric(table, task)
        try:
            c = table.curve(task, m, x="val_loss", k_shot=table.k_shots(task)[-1])
        except LmscaleError:
            continue
        _plot_curve(ax, c, color=f"C{i % 10}", label=f"{task} ({m})")
        th = (thresholds or {}).get(task)
        if th is not None and math.isfinite(th):
            ax.axvline(th, ls="--", color=f"C{i % 10}", lw=0.8)
        rows += [(task, m, xv, yv, th) for xv, yv in zip(c.x, c.y)]
    if not rows:
        raise LmscaleError(f"no val_loss values in {table.source!r}; the metric-vs-loss figure needs them")
    finish_axes(ax, X_LABELS["val_loss"], "task metric (primary)", logx=False,
                title="metric vs pre-training loss (dashed: loss threshold of emergence)")
    ax.invert_xaxis()
    ax.legend(fontsize=7)
    png = resolve_out(out, "metric_vs_loss")
    return save_figure(fig, png, ["task", "metric", "val_loss", "value", "loss_threshold"], rows)


def ledger_grid_figure(statuses, out: str | Path) -> FigureFiles:
    """Tasks (rows) x scales N (columns): green pass, red fail, light grey not evaluated; the state on the right."""
    from matplotlib.colors import ListedColormap

    if not statuses:
        raise LmscaleError("the ledger is empty; add an evaluation table first (`lmscale emergence ledger add`)")
    scales = sorted({n for s in statuses for n in s.scales})
    labels = [f"{s.task} ({s.metric}{', k=' + str(s.k_shot) if s.k_shot else ''}{', ' + s.family if s.family else ''})"
              for s in statuses]
    grid = np.zeros((len(statuses), len(scales)))  # 0 none, 1 fail, 2 pass, 3 unjudged
    rows = []
    for i, s in enumerate(statuses):
        for n, p in zip(s.scales, s.passed):
            j = scales.index(n)
            grid[i, j] = 3 if p is None else (2 if p else 1)
            rows.append((s.task, s.metric, s.k_shot, s.family, n, "" if p is None else ("pass" if p else "fail"),
                         s.state))
    fig, (ax,), _ = new_figure(1, width=max(5.0, 0.5 * len(scales) + 4), height=max(2.5, 0.35 * len(statuses) + 1.5))
    cmap = ListedColormap(["#eeeeee", "#d9534f", "#5cb85c", "#bbbbbb"])
    ax.imshow(grid, cmap=cmap, vmin=0, vmax=3, aspect="auto")
    ax.set_xticks(range(len(scales)), [f"{n:.2g}" for n in scales], rotation=45, fontsize=7)
    ax.set_yticks(range(len(statuses)), labels, fontsize=7)
    for i, s in enumerate(statuses):
        ax.text(len(scales) - 0.4, i, s.state + (f" at N={s.flip_N:.2g}" if s.flip_N else ""), va="center",
                fontsize=7, clip_on=False)
    ax.set_xlabel(LABELS["N"])
    ax.set_title("ability ledger (green pass, red fail)", fontsize=10)
    png = resolve_out(out, "ledger_grid")
    return save_figure(fig, png, ["task", "metric", "k_shot", "family", "N", "result", "state"], rows)


__all__ = ["mirage_figure", "loss_and_transitions_figure", "metric_vs_loss_figure", "ledger_grid_figure",
           "primary_metric", "METRIC_LABELS", "METRICS"]
