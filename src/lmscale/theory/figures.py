"""The paper's figures (Nayak & Varshney 2024) and two companions, each a PNG plus a CSV of the plotted numbers.

    compute_optimal_figure   Fig. A: N* and D* vs FLOPs with the Chinchilla point; the excess-entropy
                             bound 1/2 P_e,train^2 vs N* beside Chinchilla's excess loss
    emergence_figure         Fig. B: one level's step (l = 11, n = 7), q(l), the unimodal sigmoid and
                             the multimodal staircase (plateaus at the cumulative mixture weights)
    concepts_learned_figure  Fig. C: R (1 - P_b/eps) and eps_BP vs R at six compute budgets, optimum dots
    alpha_variant_figure     published vs released-code alpha: R*/sqrt(C), delta and the loss bound
    quantization_figure      Michaud et al.'s quantization model: power laws from Zipfian quanta

`write_all(out_dir, params)` writes every figure (sharing one compute sweep). The defaults are
the paper's constants (`NVParams()`: d_t = 6, eps = 0.5, 2e5 parameters per concept, 8e5 tokens
per text) with the published alpha; pass `NVParams(alpha_variant="released-code")` to redraw with
the authors' alpha. Skill-graph switches (KL units, prerequisites) are in `SkillParams`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
from matplotlib.figure import Figure

from lmscale.errors import LmscaleError
from lmscale.report.common import DPI, FigureFiles, finish_axes, new_figure, resolve_out, save_figure
from lmscale.theory.ensemble import NVParams
from lmscale.theory.skills import SkillParams, crossing, emergence_curves, level_distribution, plateau_heights

# The stars of the paper's Fig. A: 5.73e23 FLOPs, 63e9 parameters, 1.4e12 tokens.
CHINCHILLA_STAR = {"C_flops": 5.73e23, "N": 63e9, "D": 1.4e12}
# Compute sweep in model units (C = R T); 10^4.5..10^18.5 covers the paper's 1e18..1e30 FLOPs axis.
C_MODEL = np.logspace(4.5, 18.5, 141)
# Fig. C: six budgets with R in [0.15, 0.49] sqrt(C), as the authors' debug figure.
FIG_C_BUDGETS = np.logspace(5, 10, 6)
FIG_C_BRACKET = (0.15, 0.49)


def default_sweep(params: NVParams | None = None, C=None):
    """compute_optimal over `C_MODEL` (or C), bracket-edge budgets dropped."""
    from lmscale.theory.optimum import compute_optimal

    sw = compute_optimal(C_MODEL if C is None else C, params or NVParams())
    if sw.at_edge.any():
        from lmscale.theory.optimum import OptimumSweep

        keep = ~sw.at_edge
        sw = OptimumSweep(**{k: (v[keep] if isinstance(v, np.ndarray) else v) for k, v in vars(sw).items()})
    return sw


def _params_note(p: NVParams) -> str:
    return (f"d_t = {p.d_t:g}, ε = {p.epsilon:g}, {p.params_per_concept:.3g} parameters/concept, "
            f"{p.tokens_per_text:.3g} tokens/text, α: {p.alpha_variant}")


def compute_optimal_figure(out: str | Path, params: NVParams | None = None, sweep=None) -> FigureFiles:
    """Fig. A ("chinchilla_loss_scaling"): (a) N*, D* vs C_FLOPs; (b) the loss bound vs N*.

    CSV columns: kind (optimum | chinchilla_star), C_flops, N_star_parameters, D_star_tokens,
    N_guide_slope_0.5 / D_guide_slope_0.5 (C^0.5 lines through the curves at 5.73e23 FLOPs),
    excess_entropy_bound_nats (1/2 P_e,train^2), chinchilla_excess_loss_nats (A/N^0.34 + B/D^0.28).
    """
    from lmscale.theory.loss import loss_bound
    from lmscale.theory.optimum import predicted_allocation

    p = params or NVParams()
    sw = sweep if sweep is not None else default_sweep(p)
    lb = loss_bound(sw)
    a_n, a_d = sw.exponents()
    star = CHINCHILLA_STAR
    at = predicted_allocation(star["C_flops"], p)
    n0, d0 = float(at.N_star[0]), float(at.D_star[0])
    gN = n0 * (sw.C_flops / star["C_flops"]) ** 0.5
    gD = d0 * (sw.C_flops / star["C_flops"]) ** 0.5
    png = resolve_out(out, "chinchilla_loss_scaling")
    fig, (ax, bx), _ = new_figure(2, width=5.0, height=4.2, caption=_params_note(p))
    ax.axvline(star["C_flops"], color="#008080", ls="--", lw=1.2, label="5.73e23 FLOPs")
    ax.plot(sw.C_flops, sw.N_star, "r-", lw=1.8, label=f"N* (parameters), slope {a_n:.3f}")
    ax.plot(sw.C_flops, sw.D_star, "b-", lw=1.8, label=f"D* (tokens), slope {a_d:.3f}")
    ax.plot(sw.C_flops, gN, ":", color="0.4", lw=1.0, label="slope 0.5 guides")
    ax.plot(sw.C_flops, gD, ":", color="0.4", lw=1.0)
    ax.plot([star["C_flops"]], [star["N"]], "r*", ms=12, label="Chinchilla 63e9 parameters")
    ax.plot([star["C_flops"]], [star["D"]], "b*", ms=12, label="Chinchilla 1.4e12 tokens")
    ax.set_xlim(1e18, 1e30)
    ax.set_ylim(5e7, 5e14)
    finish_axes(ax, "C (training FLOPs, 6ND)", "N* (parameters) or D* (tokens)", logy=True,
                title=f"(a) compute-optimal size scaling; at 5.73e23: N* = {n0:.3g}, D* = {d0:.3g}")
    ok = lb.bound > 0
    bx.plot(sw.N_star[ok], lb.bound[ok], "b-", lw=1.8, label="lower bound ½ P_e,train² (nats/token)")
    bx.plot(sw.N_star, lb.chinchilla_excess, "m-.", lw=1.8, label="Chinchilla excess loss A/N^0.34 + B/D^0.28")
    finish_axes(bx, "N* (parameters)", "excess entropy (nats/token)", logy=True, title="(b) excess entropy scaling")
    for a in (ax, bx):
        a.legend(fontsize=7, loc="best")
    rows: list[list[Any]] = [["optimum", c, n, d, g1, g2, b, e] for c, n, d, g1, g2, b, e in
                             zip(sw.C_flops, sw.N_star, sw.D_star, gN, gD, lb.bound, lb.chinchilla_excess)]
    rows.append(["chinchilla_star", star["C_flops"], star["N"], star["D"], None, None, None, None])
    return save_figure(fig, png, ["kind", "C_flops", "N_star_parameters", "D_star_tokens", "N_guide_slope_0.5",
                                  "D_guide_slope_0.5", "excess_entropy_bound_nats", "chinchilla_excess_loss_nats"], rows)


def emergence_figure(out: str | Path, params: NVParams | None = None, skill_params: SkillParams | None = None,
                     sweep=None) -> FigureFiles:
    """Fig. B ("emerg_plateau"): emergence for one level, q(l), unimodal sigmoid, multimodal staircase.

    CSV columns: panel (a-d), series, N_star_parameters, level, value. Panels a, c, d: accuracy vs
    N* (series single_task / unimodal / multimodal; `emergence_scale` = where panel a crosses 0.5;
    `plateau` rows = the cumulative mixture weights). Panel b: q(l) vs level (unimodal, multimodal).
    """
    p = params or NVParams()
    sp = skill_params or SkillParams()
    sw = sweep if sweep is not None else default_sweep(p)
    ec = emergence_curves(sw.R_star, sw.T_star, p.params_per_concept, sp)
    level, n = ec.single_task
    n_half = crossing(ec.N, ec.single)
    q_uni = level_distribution("unimodal", sp.levels)
    q_multi = level_distribution("multimodal", sp.levels)
    heights = plateau_heights("multimodal")
    png = resolve_out(out, "emerg_plateau")
    fig = Figure(figsize=(10, 7.4), dpi=DPI, layout="constrained")
    (a, b), (c, d) = fig.subplots(2, 2)
    a.plot(ec.N, ec.single, lw=1.8, label=f"γ_l^n, l = {level}, n = {n}")
    if np.isfinite(n_half):
        a.axvline(n_half, color="0.5", ls=":", lw=1, label=f"0.5 at N* = {n_half:.3g}")
    finish_axes(a, "N* (parameters)", "accuracy", title="(a) emergence (homogeneous)")
    ls = sp.level_index
    b.plot(ls, q_uni, "rs", ms=4, label="unimodal Bin(100, 0.5)")
    b.plot(ls, q_multi, "bo", ms=4, label="multimodal 0.4/0.4/0.2 mixture")
    finish_axes(b, "skill level l", "q(l)", logx=False, title="(b) skill-level distribution")
    c.plot(ec.N, ec.unimodal, "r-", lw=1.8, label="Σ_l q(l) Σ_n q(n) γ_l^n")
    finish_axes(c, "N* (parameters)", "accuracy", title="(c) emergence (unimodal)")
    d.plot(ec.N, ec.multimodal, "b-", lw=1.8, label="multimodal q(l)")
    for h in heights:
        d.axhline(h, color="0.6", ls=":", lw=0.9)
    finish_axes(d, "N* (parameters)", "accuracy", title="(d) plateauing (multimodal); dotted: 0.4, 0.8, 1.0")
    for x in (a, c, d):
        x.set_xlim(1e7, 1e14)
    for x in (a, b, c, d):
        x.legend(fontsize=7, loc="best")
    fig.suptitle(f"Skill-graph emergence and plateaus ({_params_note(p)}; KL in {sp.kl_units}, "
                 f"prerequisites: {sp.prereq})", fontsize=9)
    rows: list[list[Any]] = []
    for panel, series, vals in (("a", "single_task", ec.single), ("c", "unimodal", ec.unimodal),
                                ("d", "multimodal", ec.multimodal)):
        rows += [[panel, series, x, None, v] for x, v in zip(ec.N, vals)]
    rows += [["b", "q_unimodal", None, int(lv), v] for lv, v in zip(ls, q_uni)]
    rows += [["b", "q_multimodal", None, int(lv), v] for lv, v in zip(ls, q_multi)]
    rows.append(["a", "emergence_scale", n_half, level, 0.5])
    rows += [["d", "plateau", None, None, float(h)] for h in heights]
    return save_figure(fig, png, ["panel", "series", "N_star_parameters", "level", "value"], rows)


def concepts_learned_figure(out: str | Path, params: NVParams | None = None, budgets=None,
                            n_points: int = 50) -> FigureFiles:
    """Fig. C ("concepts_learned_vs_R"): R (1 - P_b/eps) and eps_BP vs R at fixed compute C = R T.

    CSV columns: kind (curve | optimum), C_model_units, R_concepts, T_texts, concepts_learned, eps_bp.
    """
    from lmscale.theory.finite_length import concepts_learned
    from lmscale.theory.optimum import compute_optimal

    p = params or NVParams()
    Cs = np.asarray(FIG_C_BUDGETS if budgets is None else budgets, float)
    lo, hi = FIG_C_BRACKET
    u = np.linspace(lo, hi, n_points)
    R = u[None, :] * np.sqrt(Cs)[:, None]
    T = Cs[:, None] / R
    w = concepts_learned(R, T, p.d_t, p.epsilon, p.alpha_variant, p.limit)
    opt = compute_optimal(Cs, p)
    png = resolve_out(out, "concepts_learned_vs_R")
    fig, (ax, bx), _ = new_figure(2, width=5.0, height=4.2, caption=_params_note(p) + "; black dots: R*(C)")
    rows: list[list[Any]] = []
    for i, C in enumerate(Cs):
        line, = ax.plot(R[i], w.concepts_learned[i], lw=1.6, label=f"C = {C:.3g} (R T)")
        bx.plot(R[i], w.eps_bp[i], lw=1.6, color=line.get_color(), label=f"C = {C:.3g}")
        rows += [["curve", C, r, t, cl, e] for r, t, cl, e in zip(R[i], T[i], w.concepts_learned[i], w.eps_bp[i])]
    ax.plot(opt.R_star, opt.concepts_learned, "ko", ms=5)
    bx.plot(opt.R_star, opt.eps_bp, "ko", ms=5)
    bx.axhline(p.epsilon, color="k", ls="--", lw=1.5, label=f"ε = {p.epsilon:g}")
    rows += [["optimum", C, r, t, cl, e] for C, r, t, cl, e in
             zip(Cs, opt.R_star, opt.T_star, opt.concepts_learned, opt.eps_bp)]
    finish_axes(ax, "R (concepts)", "R (1 − P_b/ε) (concepts learned)", logy=True, title="concepts learned at fixed compute")
    finish_axes(bx, "R (concepts)", "ε* = ε_BP", title="BP threshold at fixed compute")
    bx.set_ylim(p.epsilon - 0.01, p.epsilon + 0.1)  # the paper's (0.49, 0.6) window around eps
    for a in (ax, bx):
        a.legend(fontsize=7, loc="best")
    return save_figure(fig, png, ["kind", "C_model_units", "R_concepts", "T_texts", "concepts_learned", "eps_bp"], rows)


def alpha_variant_figure(out: str | Path, params: NVParams | None = None, C=None) -> FigureFiles:
    """Published vs released-code alpha ("alpha_variants"): R*/sqrt(C), delta = P_b/eps, and the loss bound.

    CSV columns: variant, C_model_units, C_flops, N_star_parameters, R_star_over_sqrtC, alpha,
    delta_unlearned_fraction, excess_entropy_bound_nats.
    """
    from lmscale.theory.loss import loss_bound

    p = params or NVParams()
    rows: list[list[Any]] = []
    png = resolve_out(out, "alpha_variants")
    fig, (ax, bx, cx), _ = new_figure(3, width=4.4, height=4.0, caption=_params_note(p).rsplit(",", 1)[0])
    for variant, style in (("published", "-"), ("released-code", "--")):
        sw = default_sweep(p.replace(alpha_variant=variant), C)
        lb = loss_bound(sw)
        label = f"{variant} (α ≈ {np.nanmedian(sw.alpha):.3f})"
        ax.plot(sw.C_flops, sw.ratio, style, lw=1.6, label=label)
        ok = sw.delta > 0
        bx.plot(sw.C_flops[ok], sw.delta[ok], style, lw=1.6, label=label)
        ok = lb.bound > 0
        cx.plot(sw.N_star[ok], lb.bound[ok], style, lw=1.6, label=label)
        rows += [[variant, c, cf, n, r, a, dl, b] for c, cf, n, r, a, dl, b in
                 zip(sw.C, sw.C_flops, sw.N_star, sw.ratio, sw.alpha, sw.delta, lb.bound)]
    finish_axes(ax, "C (training FLOPs, 6ND)", "R*/√C (model units)", title="optimal concepts per √compute")
    finish_axes(bx, "C (training FLOPs, 6ND)", "δ = P_b/ε (unlearned fraction)", logy=True, title="unlearned fraction at the optimum")
    finish_axes(cx, "N* (parameters)", "½ P_e,train² (nats/token)", logy=True, title="excess-entropy bound")
    for a in (ax, bx, cx):
        a.legend(fontsize=7, loc="best")
    return save_figure(fig, png, ["variant", "C_model_units", "C_flops", "N_star_parameters", "R_star_over_sqrtC",
                                  "alpha", "delta_unlearned_fraction", "excess_entropy_bound_nats"], rows)


def quantization_figure(out: str | Path, alpha: float = 0.4, n_quanta_shown: int = 8) -> FigureFiles:
    """Michaud et al.'s quantization model ("quantization"): L(N), L(D) power laws and per-quantum steps.

    CSV columns: panel (N | D | steps), series, x (parameters in quanta units for N; examples for D
    and steps), loss_nats (L - L_inf, nats/token; per-quantum loss for the steps panel).
    """
    from lmscale.theory.quantization import (fit_exponent, loss_vs_data, loss_vs_params, per_quantum_losses,
                                             predicted_exponents, zipf_frequencies)

    ex = predicted_exponents(alpha)
    N = np.geomspace(1, 1e6, 300)
    D = np.geomspace(1, 1e9, 300)
    LN, LD = loss_vs_params(N, alpha), loss_vs_data(D, alpha)
    fN, fD = fit_exponent(N[N >= 10], LN[N >= 10]), fit_exponent(D[D >= 100], LD[D >= 100])
    k = np.arange(1, n_quanta_shown + 1)
    Ds = np.geomspace(1, 1e3, 300)
    steps = per_quantum_losses(Ds, k, alpha, "D")
    png = resolve_out(out, "quantization")
    caption = (f"Zipf quanta p_k ∝ k^-(α+1), α = {alpha:g}; each unlearned quantum costs ln 2 nats on its tokens. "
               f"Predicted exponents: N {ex['N']:.3f}, D {ex['D']:.3f}; fitted: N {fN.exponent:.3f}, D {fD.exponent:.3f}")
    fig, (ax, bx, cx), _ = new_figure(3, width=4.4, height=4.0, caption=caption)
    ax.plot(N, LN, "-", lw=1.6, label=f"L(N) − L∞, fitted slope −{fN.exponent:.3f}")
    finish_axes(ax, "N (parameters per quantum = 1)", "L − L∞ (nats/token)", logy=True, title="parameters: N^−α")
    bx.plot(D, LD, "-", lw=1.6, label=f"L(D) − L∞, fitted slope −{fD.exponent:.3f}")
    finish_axes(bx, "D (examples; quantum k learned once D p_k ≥ 1)", "L − L∞ (nats/token)", logy=True,
                title="data or steps: D^−α/(α+1)")
    for i, kk in enumerate(k):
        cx.plot(Ds, steps[i], lw=1.2, label=f"quantum {kk} (p = {zipf_frequencies(kk, alpha):.3f})")
    finish_axes(cx, "D (examples)", "loss on the quantum's tokens (nats)", title="per-quantum steps")
    for a in (ax, bx, cx):
        a.legend(fontsize=6, loc="best")
    rows: list[list[Any]] = [["N", "loss", x, y] for x, y in zip(N, LN)]
    rows += [["D", "loss", x, y] for x, y in zip(D, LD)]
    for i, kk in enumerate(k):
        rows += [["steps", f"quantum_{kk}", x, y] for x, y in zip(Ds, steps[i])]
    return save_figure(fig, png, ["panel", "series", "x", "loss_nats"], rows)


FIGURES: dict[str, Callable[..., FigureFiles]] = {
    "compute-optimal": compute_optimal_figure,
    "emergence": emergence_figure,
    "concepts-learned": concepts_learned_figure,
    "alpha-variants": alpha_variant_figure,
    "quantization": quantization_figure,
}


def write_all(out_dir: str | Path, params: NVParams | None = None, skill_params: SkillParams | None = None,
              only: list[str] | None = None) -> dict[str, FigureFiles]:
    """Write every figure (or those named in `only`) into out_dir; returns name -> (png, csv)."""
    names = list(FIGURES) if not only else list(only)
    bad = [n for n in names if n not in FIGURES]
    if bad:
        raise LmscaleError(f"figure {bad[0]!r}; expected one of {', '.join(FIGURES)}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LmscaleError(f"output directory {str(out)!r} is a file; expected a directory")
    out.mkdir(parents=True, exist_ok=True)
    p = params or NVParams()
    sweep = default_sweep(p) if {"compute-optimal", "emergence"} & set(names) else None
    files: dict[str, FigureFiles] = {}
    for name in names:
        if name == "compute-optimal":
            files[name] = compute_optimal_figure(out, p, sweep)
        elif name == "emergence":
            files[name] = emergence_figure(out, p, skill_params, sweep)
        elif name == "quantization":
            files[name] = quantization_figure(out)
        else:
            files[name] = FIGURES[name](out, p)
    return files


__all__ = ["CHINCHILLA_STAR", "FIGURES", "default_sweep", "compute_optimal_figure", "emergence_figure",
           "concepts_learned_figure", "alpha_variant_figure", "quantization_figure", "write_all"]
