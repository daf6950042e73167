"""`lmscale theory ...`: figures, the compute-optimal allocation, thresholds, Monte-Carlo checks, overlays.

Register in lmscale/cli.py with

    from lmscale.theory.cli import theory_app
    app.add_typer(theory_app, name="theory")

Invalid parameters (epsilon outside (0, 1), non-positive sizes, d_t < 2, unknown names) raise
`LmscaleError`, which `lmscale.console.run_app` prints as one line `error: <message>` (exit status 2).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from lmscale.console import console, err_console, sub_app
from lmscale.errors import LmscaleError

# Monte-Carlo sizes (measured on the 2-core VM: one R = 1e6, T = 3e6 graph, 1.8e7 edges, took 4.8 s
# and 880 MB to sample and peel). Checked before anything is sampled: memory against this
# machine (lmscale.train.limits), counts against absolute caps; settings expected to take longer
# than PROGRESS_S print a line first, so a long check never runs silently.
MC_BYTES_PER_EDGE = 48  # bytes: edge indices, sort and peeling queues
MC_SECONDS_PER_EDGE = 2.7e-7  # per graph
MAX_TRIALS = 1_000_000
PROGRESS_S = 5.0

theory_app = sub_app(
    "Information theory of scaling (Nayak & Varshney 2024): compute-optimal allocation, thresholds, "
    "emergence and plateaus, Monte-Carlo checks, and the theory beside your fitted law.\n\n"
    "Example: lmscale theory figures --out figures/theory",
)

DT_HELP = "Mean learnable concepts per text d_t (>= 2)."
EPS_HELP = "Erasure fraction epsilon in (0, 1): the share of the concept pool still to be learned."
VARIANT_HELP = "Scaling parameter alpha: published (Amraoui et al. signs) | released-code (the authors' + signs)."



def _fmt(x) -> str:
    from lmscale.laws.tables import fmt

    return fmt(x)


def _numbers(text: str, what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        vals = []
    if not vals:
        raise LmscaleError(f"{what} {text!r}; expected one or more numbers separated by commas, e.g. 1e21,5.73e23")
    return vals


def _params(d_t: float, epsilon: float, params_per_concept: float, tokens_per_text: float, alpha_variant: str):
    from lmscale.theory.ensemble import NVParams

    return NVParams(d_t=d_t, epsilon=epsilon, params_per_concept=params_per_concept, tokens_per_text=tokens_per_text,
                    alpha_variant=alpha_variant)


@theory_app.command("figures")
def figures_command(
    out: Path = typer.Option(Path("figures/theory"), "--out", help="Directory for the PNGs and CSVs."),
    only: Optional[list[str]] = typer.Option(None, "--only", help="Only this figure (repeatable): compute-optimal | "
                                             "emergence | concepts-learned | alpha-variants | quantization."),
    alpha_variant: str = typer.Option("published", "--alpha-variant", help=VARIANT_HELP),
    kl_units: str = typer.Option("bits", "--kl-units", help="Skill-edge Chernoff exponent: bits (released code, the "
                                 "paper's figures) | nats (correct)."),
    prereq: str = typer.Option("released", "--prereq", help="Prerequisites: released (level 11's giant fraction) | "
                               "chained (previous level's) | none."),
    d_t: float = typer.Option(6.0, "--dt", help=DT_HELP),
    epsilon: float = typer.Option(0.5, "--epsilon", help=EPS_HELP),
    params_per_concept: float = typer.Option(2e5, "--params-per-concept", help="Parameters per concept (N = this x R)."),
    tokens_per_text: float = typer.Option(8e5, "--tokens-per-text", help="Tokens per text (D = this x T)."),
):
    """Write the paper's figures (each a PNG with its CSV).

    Example: lmscale theory figures --out figures/theory --only emergence --alpha-variant released-code
    """
    from lmscale.theory.figures import write_all
    from lmscale.theory.skills import SkillParams

    p = _params(d_t, epsilon, params_per_concept, tokens_per_text, alpha_variant)
    sp = SkillParams.make(d_t=d_t, kl_units=kl_units, prereq=prereq)
    files = write_all(out, p, sp, only)
    t = Table(title=f"theory figures ({alpha_variant} alpha, KL in {kl_units})")
    t.add_column("figure", style="bold")
    t.add_column("PNG")
    t.add_column("CSV")
    for name, f in files.items():
        t.add_row(name, str(f.png), str(f.csv))
    console.print(t)


@theory_app.command("optimum")
def optimum_command(
    flops: str = typer.Option("5.73e23", "--flops", help="Training compute in FLOPs (C = 6ND), comma-separated."),
    alpha_variant: str = typer.Option("published", "--alpha-variant", help=VARIANT_HELP),
    d_t: float = typer.Option(6.0, "--dt", help=DT_HELP),
    epsilon: float = typer.Option(0.5, "--epsilon", help=EPS_HELP),
    params_per_concept: float = typer.Option(2e5, "--params-per-concept", help="Parameters per concept (N = this x R)."),
    tokens_per_text: float = typer.Option(8e5, "--tokens-per-text", help="Tokens per text (D = this x T)."),
):
    """The compute-optimal model size and data at given budgets.

    Example: lmscale theory optimum --flops 5.73e23
    """
    from lmscale.theory.optimum import predicted_allocation

    p = _params(d_t, epsilon, params_per_concept, tokens_per_text, alpha_variant)
    C = _numbers(flops, "--flops")
    sw = predicted_allocation(C, p)
    t = Table(title=f"compute-optimal allocation (d_t={d_t:g}, ε={epsilon:g}, {params_per_concept:.3g} params/concept, "
                    f"{tokens_per_text:.3g} tokens/text, {alpha_variant} α)")
    for col in ("C (FLOPs)", "N* (params)", "D* (tokens)", "tokens/param", "R* (concepts)", "T* (texts)", "R*/√C",
                "ε_BP", "α", "δ = P_b/ε"):
        t.add_column(col, justify="right")
    for i in range(len(sw)):
        t.add_row(_fmt(sw.C_flops[i]), _fmt(sw.N_star[i]), _fmt(sw.D_star[i]), _fmt(sw.tokens_per_param[i]),
                  _fmt(sw.R_star[i]), _fmt(sw.T_star[i]), f"{sw.ratio[i]:.4f}", f"{sw.eps_bp[i]:.6f}",
                  f"{sw.alpha[i]:.4f}", _fmt(sw.delta[i]))
    console.print(t)
    if sw.at_edge.any():
        console.print("note: budgets marked at the edge of the R search bracket are below the waterfall regime",
                      highlight=False)


@theory_app.command("threshold")
def threshold_command(
    d_t: float = typer.Option(6.0, "--dt", help=DT_HELP),
    epsilon: float = typer.Option(0.5, "--epsilon", help=EPS_HELP),
    R: Optional[float] = typer.Option(None, "--R", help="Concepts R (model capacity); with --T."),
    T: Optional[float] = typer.Option(None, "--T", help="Texts T; with --R."),
    regular: Optional[str] = typer.Option(None, "--regular", help="A (dv,dc)-regular LDPC code instead, e.g. 3,6."),
    n: Optional[float] = typer.Option(None, "--n", help="Block length for --regular (for P_B, P_b)."),
):
    """The BP threshold epsilon_BP, the tangency point, alpha (both variants) and the waterfall.

    Example: lmscale theory threshold --dt 6 --epsilon 0.5 --R 1e4 --T 5e4   (or --regular 3,6 --n 1e4)
    """
    rows = _threshold_rows(d_t, epsilon, R, T, regular, n)
    t = Table(title="BP threshold and finite-length waterfall")
    t.add_column("quantity", style="bold")
    t.add_column("published α", justify="right")
    t.add_column("released-code α", justify="right")
    for r in rows:
        t.add_row(*r)
    console.print(t)


def _threshold_rows(d_t, epsilon, R, T, regular, n) -> list[tuple[str, str, str]]:
    from lmscale.theory.ensemble import ConceptTextEnsemble, RegularEnsemble
    from lmscale.theory.finite_length import waterfall

    if regular is not None:
        degs = _numbers(regular, "--regular")
        if len(degs) != 2 or any(d != int(d) for d in degs):
            raise LmscaleError(f"--regular {regular!r}; expected two integer degrees dv,dc such as 3,6")
        ens = RegularEnsemble(int(degs[0]), int(degs[1]), epsilon, n if n is not None else 1e4)
        label = f"({int(degs[0])},{int(degs[1])})-regular, n = {_fmt(ens.n)}"
    else:
        if R is None or T is None:
            raise LmscaleError("give --R and --T (concepts and texts), or --regular dv,dc")
        ens = ConceptTextEnsemble(R=R, T=T, d_t=d_t, epsilon=epsilon)
        label = f"R = {_fmt(R)}, T = {_fmt(T)}, d_t = {d_t:g}, n = R/ε = {_fmt(ens.n)}"
    w = {v: waterfall(ens, variant=v) for v in ("published", "released-code")}
    a, b = w["published"], w["released-code"]

    def same(x):
        return (_fmt(x), _fmt(x))

    return [("ensemble", label, ""), ("ε (channel)", *same(epsilon)), ("ε_BP", f"{a.eps_bp:.6f}", f"{b.eps_bp:.6f}"),
            ("x_BP", f"{a.x_bp:.6f}", f"{b.x_bp:.6f}"), ("y_BP", f"{a.y_bp:.6f}", f"{b.y_bp:.6f}"),
            ("α", f"{a.alpha:.4f}", f"{b.alpha:.4f}"), ("γ_BP (erased fraction at BP fixed point)", *same(a.gamma_bp)),
            ("z = √n (ε_BP − ε)/α", _fmt(a.z), _fmt(b.z)), ("P_B (block)", _fmt(a.P_B), _fmt(b.P_B)),
            ("P_b (bit)", _fmt(a.P_b), _fmt(b.P_b)), ("concepts learned", _fmt(a.concepts_learned), _fmt(b.concepts_learned))]


@theory_app.command("montecarlo")
def montecarlo_command(
    R: str = typer.Option("1e3,1e4", "--R", help="Concepts R per peeling check, comma-separated."),
    trials: int = typer.Option(100, "--trials", help="Graphs sampled per setting."),
    texts_per_concept: Optional[float] = typer.Option(None, "--texts-per-concept", help="T/R (default: the compute "
                                                      "optimum's T*/R* at that R)."),
    degrees: str = typer.Option("1.5,2,3", "--er-degrees", help="Mean degrees c of the Erdős–Rényi checks."),
    vertices: int = typer.Option(20_000, "--er-vertices", help="Vertices per Erdős–Rényi graph."),
    d_t: float = typer.Option(6.0, "--dt", help=DT_HELP),
    epsilon: float = typer.Option(0.5, "--epsilon", help=EPS_HELP),
    seed: int = typer.Option(0, "--seed", help="Seed (each graph is seeded from (seed, trial))."),
):
    """Peeling decoder vs the waterfall formula, and Erdős–Rényi giant components vs Lambert W.

    Example: lmscale theory montecarlo --R 1e3,1e4 --trials 200
    """
    peel_rows, er_rows = _montecarlo(R, trials, texts_per_concept, degrees, vertices, d_t, epsilon, seed)
    t = Table(title=f"peeling decoder vs the finite-length formula (published α, d_t={d_t:g}, ε={epsilon:g})")
    for col in ("R", "T", "trials", "P_B simulated", "P_B formula", "P_b simulated", "P_b formula", "z (P_b)"):
        t.add_column(col, justify="right")
    for r in peel_rows:
        t.add_row(*r)
    console.print(t)
    t = Table(title="Erdős–Rényi giant component: simulation vs γ = 1 + W0(−c e^−c)/c")
    for col in ("c", "vertices", "graphs", "simulated", "Lambert W", "z"):
        t.add_column(col, justify="right")
    for r in er_rows:
        t.add_row(*r)
    console.print(t)
    console.print("± = one standard error over the sampled graphs; z = (simulated − formula)/standard error",
                  highlight=False)


def _montecarlo(R_text, trials, kappa, degrees, vertices, d_t, epsilon, seed):
    import numpy as np

    from lmscale.theory.ensemble import ConceptTextEnsemble, NVParams
    from lmscale.theory.finite_length import waterfall
    from lmscale.theory.optimum import compute_optimal
    from lmscale.theory.peeling import simulate
    from lmscale.theory.random_graphs import giant_fraction_mc

    from lmscale.train.limits import Need, check_fits

    if not 2 <= trials <= MAX_TRIALS:
        raise LmscaleError(f"--trials {trials}; expected 2 (for a standard error) to {MAX_TRIALS:,}")
    if vertices < 100:
        raise LmscaleError(f"--er-vertices {vertices}; expected at least 100")
    if kappa is not None and not (kappa > 0 and math.isfinite(kappa)):
        raise LmscaleError(f"--texts-per-concept {kappa}; expected a positive finite number")
    if not 0 <= seed < 2**63:
        raise LmscaleError(f"--seed {seed}; expected a non-negative integer below 2^63")
    p = NVParams(d_t=d_t, epsilon=epsilon)
    Rs, cs = _numbers(R_text, "--R"), _numbers(degrees, "--er-degrees")
    settings = []  # (R, texts per concept): everything is checked before the first graph is drawn
    for R in Rs:
        if not (R >= max(d_t, 10) and math.isfinite(R)):
            raise LmscaleError(f"--R {R:g}; expected a finite number of concepts, at least max(10, d_t)")
        k = kappa
        if k is None:
            # The optimum's texts per concept at the budget where R* ~ R (R*/sqrt(C) ~ 0.4).
            opt = compute_optimal([(R / 0.4) ** 2], p)
            k = float(opt.T_star[0] / opt.R_star[0])
        edges = k * R * d_t  # mean edges of one sampled graph (T texts x d_t concepts each)
        check_fits([Need("one peeling graph", edges * MC_BYTES_PER_EDGE + 16 * (R / epsilon + k * R), f"--R {R:g}",
                         f"~{edges:.3g} edges x {MC_BYTES_PER_EDGE} bytes at {k:.3g} texts per concept, d_t = {d_t:g}")],
                   "fewer concepts (--R) or texts (--texts-per-concept)")
        settings.append((R, k, edges))
    for c in cs:
        if not (c > 0 and math.isfinite(c)):
            raise LmscaleError(f"--er-degrees {c:g}; expected positive finite mean degrees")
        check_fits([Need("one Erdős–Rényi graph", 40.0 * vertices * (1 + c), f"--er-vertices {vertices}, --er-degrees {c:g}",
                         f"{vertices:,} vertices, ~{c * vertices / 2:.3g} edges x ~80 bytes")],
                   "fewer vertices (--er-vertices) or a smaller mean degree")
    peel_rows = []
    for R, k, edges in settings:
        ens = ConceptTextEnsemble(R=R, T=k * R, d_t=d_t, epsilon=epsilon)
        eta = edges * MC_SECONDS_PER_EDGE * trials
        if eta > PROGRESS_S:
            err_console.print(f"[dim]peeling {trials} graphs at R = {R:g} (~{edges:.3g} edges each): about "
                              f"{eta:.0f} s on a 2-core VM[/dim]", highlight=False, soft_wrap=True)
        mc = simulate(ens, trials=trials, seed=seed)
        w = waterfall(ens)
        z = (mc.P_b - w.P_b) / mc.P_b_se if mc.P_b_se > 0 else float("nan")
        peel_rows.append((_fmt(R), _fmt(ens.T), str(trials), f"{mc.P_B:.4f} ± {mc.P_B_se:.4f}", f"{w.P_B:.4f}",
                          f"{_fmt(mc.P_b)} ± {_fmt(mc.P_b_se)}", _fmt(w.P_b), f"{z:.2f}" if np.isfinite(z) else "-"))
    er_rows = []
    for c in cs:
        r = giant_fraction_mc(c, vertices, max(trials // 10, 4), seed)
        er_rows.append((f"{c:g}", _fmt(vertices), str(r.n_graphs), f"{r.mean:.5f} ± {r.stderr:.5f}", f"{r.theory:.5f}",
                        f"{r.z:.2f}"))
    return peel_rows, er_rows


@theory_app.command("overlay")
def overlay_command(
    path: Path = typer.Argument(..., metavar="SWEEP_OR_FIT", help="A sweep directory, a CSV of N, D, loss, or a "
                                "fit.json from `lmscale fit --out` / `lmscale demo`."),
    out: Path = typer.Option(Path("figures/theory-overlay"), "--out", help="Directory for the figure, CSV and JSON."),
    tasks: Optional[Path] = typer.Option(None, "--tasks", help="Per-task accuracy CSV (columns N, task, accuracy, or "
                                         "an eval.csv from `lmscale eval`; default: the sweep's eval.csv if any)."),
    metric: Optional[str] = typer.Option(None, "--metric", help="Metric of an eval.csv to use (default exact_match)."),
    c_min: Optional[float] = typer.Option(None, "--c-min", help="Smallest compute (FLOPs) compared (default: the data's)."),
    c_max: Optional[float] = typer.Option(None, "--c-max", help="Largest compute (FLOPs) compared (default: the data's)."),
    alpha_variant: str = typer.Option("published", "--alpha-variant", help=VARIANT_HELP),
    d_t: float = typer.Option(6.0, "--dt", help=DT_HELP),
    epsilon: float = typer.Option(0.5, "--epsilon", help=EPS_HELP),
):
    """The theory's compute-optimal allocation beside a fitted law, constants fitted to it.

    Example: lmscale theory overlay demo/fit.json --out demo/theory
    """
    from lmscale.theory.ensemble import NVParams
    from lmscale.theory.overlay import theory_overlay

    p = NVParams(d_t=d_t, epsilon=epsilon, alpha_variant=alpha_variant)
    rng = None
    if c_min is not None or c_max is not None:
        if c_min is None or c_max is None:
            raise LmscaleError("give both --c-min and --c-max (FLOPs), or neither")
        rng = (c_min, c_max)
    res = theory_overlay(path, out, params=p, tasks=tasks, metric=metric, C_range=rng)
    t = Table(title=f"theory vs the {res.law} law ({res.source})")
    t.add_column("quantity", style="bold")
    t.add_column("value", justify="right")
    t.add_column(f"{res.confidence:.0%} interval" if res.confidence else "interval", justify="right")
    for r in res.rows():
        t.add_row(*r)
    console.print(t)
    if res.tasks:
        tt = Table(title="per-task emergence shape: low + (high − low) γ(c)^n, c = exp((ln N − loc)/scale)")
        for col in ("task", "points", "n skills", "onset N (c = 1)", "half-way N", "low", "high", "rms"):
            tt.add_column(col, justify="right")
        for f in res.tasks:
            tt.add_row(f.task, str(f.n_points), str(f.n_skills), _fmt(f.N_onset), _fmt(f.N_half), f"{f.low:.3f}",
                       f"{f.high:.3f}", f"{f.rms:.4f}")
        console.print(tt)
    for note in res.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    console.print(f"written: {', '.join(str(f) for f in res.files)}", highlight=False, soft_wrap=True)
