"""The three-panel Kaplan figure: loss against compute C, data D and parameters N (Kaplan et al. 2020, Fig. 1).

- Left: every training curve (thin lines coloured by model size), the final losses, the
  compute-efficient envelope (the lowest loss reached at or below each compute, over all curves),
  and the fitted L(C) law (a `KaplanLaw('C')`) or a joint law's compute-optimal loss L_opt(C).
- Middle: final loss against tokens, one line per model size, with a `KaplanLaw('D')` or a joint
  law's L(N, D) at each size overlaid.
- Right: final loss against parameters, one line per token count when the data share token counts
  across sizes (otherwise each size's largest-D point), with a `KaplanLaw('N')` or the joint law.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from lmscale.errors import LmscaleError
from lmscale.laws.data import ScalingData
from lmscale.laws.tables import fmt
from lmscale.report.common import (LABELS, FigureFiles, add_colorbar, finish_axes, group_centres, group_values,
                                   is_joint, log_colors, new_figure, require_fitted, resolve_out, save_figure,
                                   param_name, short_params, span)

COLUMNS = ["panel", "kind", "series", "N", "D", "C", "x", "loss"]
MAX_LEGEND_GROUPS = 8


def is_envelope(obj: Any) -> bool:
    """A fitted Approach-1 estimator (`lmscale.laws.EnvelopeAllocation`)."""
    return hasattr(obj, "envelope_") and hasattr(obj, "N_coef_")


def _law_list(laws) -> tuple[list[Any], list[Any]]:
    """(fitted laws, fitted Approach-1 envelopes) from one object, a list or a dict."""
    if laws is None:
        return [], []
    if isinstance(laws, Mapping):
        laws = list(laws.values())
    elif not isinstance(laws, Iterable):
        laws = [laws]
    items = [law for law in laws if law is not None]
    envs = [x for x in items if is_envelope(x)]
    if any(type(x).__name__ == "EnvelopeAllocation" and not is_envelope(x) for x in items):
        raise LmscaleError("EnvelopeAllocation is not fitted; expected a fitted Approach-1 estimator (call .fit(curves))")
    out = [law for law in items if not is_envelope(law)]
    for law in out:
        require_fitted(law, "Kaplan")
    return out, envs


def _single(laws: list[Any], variable: str) -> list[Any]:
    return [law for law in laws if tuple(law.form_.variables) == (variable,)]


def envelope(C: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compute-efficient envelope: the points whose loss is below every point of smaller (or equal) compute."""
    ok = np.isfinite(C) & np.isfinite(loss)
    order = np.lexsort((loss[ok], C[ok]))
    c, y = C[ok][order], loss[ok][order]
    keep = []
    best = np.inf
    for i in range(len(c)):
        if y[i] < best:
            best = y[i]
            keep.append(i)
    return c[keep], y[keep]


def n_panel_groups(data: ScalingData, ok: np.ndarray) -> tuple[str, list[int], np.ndarray, dict[int, float]]:
    """How the loss-vs-N panel is drawn: ('per-D', group ids, id per row, D per group) when token counts
    (within 10%) are shared by several sizes (median group spans >= 3 sizes, or all of them), else
    ('largest-D', [], ids, {}): each size's longest run."""
    ids = group_values(data.D, rtol=0.1)
    sizes = np.unique(data.N[ok])
    groups = [int(g) for g in np.unique(ids[ok])]
    if len(sizes) >= 2 and groups:
        spans = [len(np.unique(data.N[ok & (ids == g)])) for g in groups]
        if np.median(spans) >= min(3, len(sizes)):
            return "per-D", groups, ids, group_centres(data.D, ids)
    return "largest-D", [], ids, {}


def kaplan_panels(data: ScalingData, curves: ScalingData | None = None, laws=None, *,
                  out: str | Path) -> FigureFiles:
    """Loss vs C, D and N (three panels) with fits; writes ``kaplan.png`` and ``kaplan.csv`` (or `out`.png/.csv).

    `data`: final losses (one row per run). `curves`: every evaluation along every run (a
    ScalingData from `load_curves`, with `curve` naming each run), optional. `laws`: fitted laws
    (one, a list, or a dict): single-variable `KaplanLaw`s go on their panel; a joint law of N and D
    adds its L(N, D) at each size / token count and, if it has one, its compute-optimal L_opt(C); a
    fitted `EnvelopeAllocation` (Approach 1) adds its interpolated envelope to the compute panel.
    CSV columns: panel (loss_vs_C, loss_vs_D, loss_vs_N), kind (curve, final, envelope, fit,
    fit_frontier, approach1_envelope), series (for approach1_envelope: the winning curve), N, D, C
    (the point's coordinates where defined), x (the plotted abscissa), loss (nats/token).
    """
    if len(data) == 0:
        raise LmscaleError(f"{data.source}: no data points; expected at least one final loss for the Kaplan figure")
    png = resolve_out(out, "kaplan")
    laws, envs = _law_list(laws)
    joint = [law for law in laws if is_joint(law)]
    rows: list[list[Any]] = []
    caption = [f"{len(data)} final losses from {data.source}" + ("; C = 6ND (not in the data)" if data.C_from_6ND else
                                                                  "; C = training FLOPs as recorded")]
    caption += [f"{law.form_.name} fit: {param_name(law.form_.formula.split('  [')[0])};  {short_params(law)}" for law in laws]
    caption += [f"Approach 1 (envelope of {e.n_curves_} training curves, interpolated in log C): N_opt = {fmt(e.N_coef_, 3)}·C^a, "
                f"a = {e.a_:.3f};  D_opt = {fmt(e.D_coef_, 3)}·C^b, b = {e.b_:.3f}" for e in envs]
    fig, (axC, axD, axN), _ = new_figure(3, width=5.4, height=4.8, caption="\n".join(caption))
    all_N = np.concatenate([data.N, curves.N]) if curves is not None else data.N
    color, normN, cmN = log_colors(all_N)

    # ---- loss vs compute -------------------------------------------------------------------
    envC, envL = [data.C], [data.loss]
    if curves is not None and len(curves):
        labels = curves.curve if curves.curve is not None else np.array([""] * len(curves), dtype=object)
        for lab in dict.fromkeys(labels):
            m = labels == lab
            o = np.argsort(curves.C[m])
            n, d, c, y = (v[m][o] for v in (curves.N, curves.D, curves.C, curves.loss))
            axC.plot(c, y, "-", lw=0.8, alpha=0.55, color=color(n[0]))
            rows += [["loss_vs_C", "curve", lab, a, b, cc, cc, yy] for a, b, cc, yy in zip(n, d, c, y)]
        envC.append(curves.C)
        envL.append(curves.loss)
        axC.plot([], [], "-", lw=0.8, color="0.4", label=f"training curves ({len(set(labels))} runs)")
    okC = np.isfinite(data.C)
    axC.scatter(data.C[okC], data.loss[okC], c=[color(n) for n in data.N[okC]], s=22, edgecolors="k",
                linewidths=0.4, zorder=4, label="final losses")
    rows += [["loss_vs_C", "final", "", n, d, c, c, y] for n, d, c, y in zip(data.N, data.D, data.C, data.loss) if np.isfinite(c)]
    ec, el = envelope(np.concatenate(envC), np.concatenate(envL))
    if len(ec) > 1:
        axC.plot(ec, el, "--", color="k", lw=1.4, zorder=5, label="compute-efficient envelope (min loss up to C)")
        rows += [["loss_vs_C", "envelope", "", "", "", c, c, y] for c, y in zip(ec, el)]
    for e in envs:
        env = e.envelope_
        o = np.argsort(env["C"])
        axC.plot(env["C"][o], env["loss"][o], "-", color="0.25", lw=3.0, alpha=0.35, zorder=3,
                 label="Approach-1 envelope (curves interpolated)")
        rows += [["loss_vs_C", "approach1_envelope", cv, n, d, c, c, y] for n, d, c, y, cv in
                 zip(env["N"][o], env["D"][o], env["C"][o], env["loss"][o], env["curve"][o])]
    C_grid = span(np.concatenate(envC), pad=1.5)
    for law in _single(laws, "C"):
        y = law.predict(C=C_grid)
        axC.plot(C_grid, y, "-", color="crimson", lw=1.8, zorder=6, label=f"{law.form_.name} fit L(C)")
        rows += [["loss_vs_C", "fit", law.form_.name, "", "", c, c, v] for c, v in zip(C_grid, y)]
    for law in joint:
        if law.has_allocation():
            fr = law.optimal_allocation(C_grid)
            y = np.asarray(fr["loss_opt"], float)
            axC.plot(C_grid, y, "-", color="darkorange", lw=1.8, zorder=6,
                     label=f"{law.form_.name} fit: compute-optimal L_opt(C), C = 6ND")
            rows += [["loss_vs_C", "fit_frontier", law.form_.name, n, d, c, c, v]
                     for n, d, c, v in zip(fr["N_opt"], fr["D_opt"], C_grid, y)]
    finish_axes(axC, LABELS["C"], LABELS["loss"], title="loss vs compute")
    axC.legend(fontsize=7, loc="best")

    # ---- loss vs data, one line per model size -------------------------------------------------
    okD = np.isfinite(data.D) & np.isfinite(data.N)
    sizes = np.unique(data.N[okD])
    D_grid = span(data.D[okD], pad=1.5) if okD.any() else None
    multi = [n for n in sizes if len(np.unique(data.D[okD & (data.N == n)])) >= 2]
    for n in sizes:
        m = okD & (data.N == n)
        o = np.argsort(data.D[m])
        d, y, c = data.D[m][o], data.loss[m][o], data.C[m][o]
        axD.plot(d, y, "o-" if n in multi else "o", color=color(n), ms=4, lw=1.0, mec="k", mew=0.4)
        rows += [["loss_vs_D", "final", f"N={fmt(n)}", n, dd, cc, dd, yy] for dd, cc, yy in zip(d, c, y)]
        if n not in multi:
            continue
        for law in joint:
            yl = law.predict(np.full_like(D_grid, n), D_grid)
            axD.plot(D_grid, yl, ":", color=color(n), lw=1.2)
            rows += [["loss_vs_D", "fit", f"{law.form_.name} N={fmt(n)}", n, dd, 6 * n * dd, dd, v]
                     for dd, v in zip(D_grid, yl)]
    if joint and multi:
        axD.plot([], [], ":", color="0.3", label=f"{joint[0].form_.name} fit L(N, D) at each N")
    for law in _single(laws, "D"):
        y = law.predict(D=D_grid)
        axD.plot(D_grid, y, "-", color="crimson", lw=1.8, label=f"{law.form_.name} fit L(D)")
        rows += [["loss_vs_D", "fit", law.form_.name, "", dd, "", dd, v] for dd, v in zip(D_grid, y)]
    finish_axes(axD, LABELS["D"], LABELS["loss"],
                title="loss vs data, one line per model size" if multi else "loss vs data (one run per model size)")
    if not okD.any():
        axD.text(0.5, 0.5, "no token counts (D) in the data", transform=axD.transAxes, ha="center")
    if axD.get_legend_handles_labels()[0]:
        axD.legend(fontsize=7, loc="best")
    add_colorbar(fig, [axC, axD], normN, cmN, LABELS["N"])

    # ---- loss vs parameters -----------------------------------------------------------------
    n_laws = _single(laws, "N")
    nonembed = any(getattr(law, "nonembedding", False) for law in n_laws)
    if nonembed and data.N_nonembed is None:
        raise LmscaleError(f"{data.source}: a non-embedding KaplanLaw('N') was given but the data have no N_nonembed column; "
                           "expected N_nonembed for every point")
    xN = data.N_nonembed if nonembed else data.N
    xname = "N_nonembed" if nonembed else "N"
    ok = okD & np.isfinite(xN)
    x_grid = span(xN[np.isfinite(xN)], pad=1.5)
    mode, groups, ids, centres = n_panel_groups(data, ok)
    draw_joint = joint and not nonembed
    if mode == "per-D":
        dcolor, normD, cmD = log_colors(np.array([centres[g] for g in groups]), "plasma")
        for g in groups:
            m = ok & (ids == g)
            o = np.argsort(xN[m])
            Dg = centres[g]
            label = f"D ≈ {fmt(Dg, 3)} tokens"
            line = len(np.unique(xN[m])) >= 2
            axN.plot(xN[m][o], data.loss[m][o], "o-" if line else "o", color=dcolor(Dg), ms=4, lw=1.0, mec="k",
                     mew=0.4, label=label if len(groups) <= MAX_LEGEND_GROUPS else None)
            rows += [["loss_vs_N", "final", label, n, d, c, x, y] for n, d, c, x, y in
                     zip(data.N[m][o], data.D[m][o], data.C[m][o], xN[m][o], data.loss[m][o])]
            if draw_joint and line:
                for law in joint:
                    yl = law.predict(x_grid, np.full_like(x_grid, Dg))
                    axN.plot(x_grid, yl, ":", color=dcolor(Dg), lw=1.2)
                    rows += [["loss_vs_N", "fit", f"{law.form_.name} D={fmt(Dg)}", n, Dg, 6 * n * Dg, n, v]
                             for n, v in zip(x_grid, yl)]
        if len(groups) > MAX_LEGEND_GROUPS:
            add_colorbar(fig, axN, normD, cmD, "D (tokens) of each line")
        if draw_joint:
            axN.plot([], [], ":", color="0.3", label=f"{joint[0].form_.name} fit L(N, D) at each D")
        title = "loss vs parameters, one line per token count"
    else:
        # No token counts shared across sizes: each size's longest run, coloured by its D, unconnected.
        pick = np.array([np.flatnonzero(ok & (xN == s))[np.argmax(data.D[ok & (xN == s)])] for s in np.unique(xN[ok])],
                        int)
        dcolor, normD, cmD = log_colors(data.D[pick], "plasma")
        axN.scatter(xN[pick], data.loss[pick], c=[dcolor(d) for d in data.D[pick]], s=24, edgecolors="k",
                    linewidths=0.4, zorder=4, label="largest D of each model size")
        add_colorbar(fig, axN, normD, cmD, "D (tokens) of each point")
        rows += [["loss_vs_N", "final", "largest D per size", data.N[i], data.D[i], data.C[i], xN[i], data.loss[i]]
                 for i in pick]
        if draw_joint:
            for law in joint:
                yl = law.predict(data.N[pick], data.D[pick])
                axN.scatter(xN[pick], yl, marker="x", color="darkorange", s=22, zorder=5,
                            label=f"{law.form_.name} fit at the same (N, D)")
                rows += [["loss_vs_N", "fit", law.form_.name, data.N[i], data.D[i], data.C[i], xN[i], v]
                         for i, v in zip(pick, yl)]
        title = "loss vs parameters (each size's longest run)"
    for law in n_laws:
        y = law.predict(x_grid)
        axN.plot(x_grid, y, "-", color="crimson", lw=1.8, label=f"{law.form_.name} fit L(N)")
        rows += [["loss_vs_N", "fit", law.form_.name, "" if nonembed else x, "", "", x, v] for x, v in zip(x_grid, y)]
    finish_axes(axN, LABELS[xname], LABELS["loss"], title=title)
    if axN.get_legend_handles_labels()[0]:
        axN.legend(fontsize=7, loc="best")
    fig.suptitle("Loss vs compute, data and parameters (Kaplan et al. 2020, Fig. 1)", fontsize=10)
    return save_figure(fig, png, COLUMNS, rows)
