"""`lmscale demo emergence`: a ladder on the skills mixture that shows emergence on 2 CPU cores.

It runs the packaged sweep (`lmscale/sweep/emergence-demo.yaml`: a ladder of character-level
models, all trained on the same skills-mixture tokens), evaluates every model on each task of the
mixture under every metric of the harness (exact match, per-token accuracy, edit distance,
log-probability, per-token probability, multiple choice), then runs the emergence analysis:
per-task verdicts with their evidence (BIG-bench breakthroughness B and linearity L with bootstrap
intervals, logistic vs smooth ΔAIC, the Schaeffer check), the mirage figures, forecasts of the
largest model from the smaller ones checked against its measured value, and an ability ledger
kept inside the output folder. The sweep is an ordinary sweep directory, so an interrupted demo
resumes where it stopped.

The verdicts say whether a jump is the metric's doing: exact match on an L-token answer is about the
product of L per-token successes, so a smooth rise of the per-token metrics shows up as a jump of
exact match (emergent-under-this-metric-only), while a jump of the per-token metrics too (emergent)
means the smaller models lack the mechanism. With the packaged ladder, `repeat` (L = 7) is of the
second kind: one-layer models cannot do induction, and two-layer ones learn it once large enough.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from lmscale.config import safe_load_unique
from lmscale.errors import LmscaleError
from lmscale.fileio import atomic_write_json, atomic_write_text
from lmscale.train.core import Reporter

DEMO_SPEC = "emergence-demo.yaml"
EVAL_EXAMPLES = 200  # test examples per task and model: an exact-match interval of about +-0.07 at most
QUICK_EXAMPLES = 100
EVAL_METRICS = ("exact_match", "token_accuracy", "edit_distance", "logprob", "token_prob", "mc_accuracy", "brier")
LEDGER_FILE = "ledger.sqlite"
EVAL_REQUEST = "demo-request.json"  # what the evaluation table in eval/ was made from


def emergence_spec(quick: bool = False) -> dict[str, Any]:
    """The packaged sweep spec (quick: five models, the second-largest left out, 100 test examples per task)."""
    text = resources.files("lmscale.sweep").joinpath(DEMO_SPEC).read_text(encoding="utf-8")
    spec = safe_load_unique(text)
    if quick:
        spec["name"] = spec["name"] + "-quick"
        shapes = spec["ladder"]["shapes"]
        spec["ladder"]["shapes"] = shapes[:-2] + shapes[-1:]
    return spec


def mixture_tasks(spec: dict[str, Any]) -> list[str]:
    """The task names of the spec's skills-mixture corpus (what the models were trained on)."""
    from lmscale.data.mixture import is_mixture_name, parse_mixture

    corpus = ((spec.get("base") or {}).get("data") or {}).get("corpus") if isinstance(spec.get("base"), dict) else None
    if not isinstance(corpus, str) or not is_mixture_name(corpus):
        raise LmscaleError(f"emergence demo spec {spec.get('name')!r}: base.data.corpus is {corpus!r}; expected an "
                           "inline skills mixture such as 'skills:add2,add3r;zipf=1'")
    return list(parse_mixture(corpus).tasks)


@dataclass
class EmergenceDemoResult:
    out_dir: Path
    sweep_dir: Path
    eval_csv: Path
    verdicts: list  # lmscale.emergence.detect.TaskVerdict
    forecasts: list  # lmscale.emergence.forecast.Forecast
    figures: list[Path]
    ledger: Path
    report_md: Path
    headline: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)


def run_emergence_demo(out_dir: str | Path, quick: bool = False, reporter: Reporter | None = None, seed: int = 0,
                       spec: dict[str, Any] | None = None, n_examples: int | None = None,
                       n_bootstrap: int = 1000) -> EmergenceDemoResult:
    """Run (or resume) the emergence demo into `out_dir`; `spec` replaces the packaged sweep (tests use a
    tiny one). `seed` seeds the test examples and the bootstraps (the models' seeds are in the spec)."""
    from lmscale.emergence.cli import verdicts_csv  # the verdicts.csv format of `lmscale emergence analyze`
    from lmscale.emergence.detect import analyze_table
    from lmscale.emergence.eval_cli import run_eval
    from lmscale.emergence.results import read_eval_table
    from lmscale.sweep.runner import run_spec

    rep = reporter or Reporter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = spec if spec is not None else emergence_spec(quick)
    tasks = mixture_tasks(spec)
    n_examples = n_examples or (QUICK_EXAMPLES if quick else EVAL_EXAMPLES)
    secs: dict[str, float] = {}

    t0 = time.perf_counter()
    spec_path = out / ("emergence-quick-spec.yaml" if quick else "emergence-spec.yaml")
    sweep, _ = run_spec(spec, spec_path, out / "sweep", rep, f"emergence demo sweep (trained on {', '.join(tasks)})",
                     "analysing")
    secs["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    eval_dir = out / "eval"
    # An unchanged request (same finished runs, tasks, examples, seed) reuses the table: a resumed demo
    # that stopped during the analysis does not evaluate again.
    request = {"runs": _done_runs(sweep), "tasks": tasks, "n_examples": n_examples, "seed": seed,
               "metrics": list(EVAL_METRICS), "bootstrap": n_bootstrap}
    if not _same_request(eval_dir, request):
        run_eval(sweep.dir, ",".join(tasks), k_shot=0, n=n_examples, metrics=",".join(EVAL_METRICS), out=eval_dir,
                 seed=seed, n_boot=n_bootstrap, log=rep.log)
        atomic_write_json(eval_dir / EVAL_REQUEST, request)
    table = read_eval_table(eval_dir)
    secs["eval"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    verdicts = analyze_table(table, x="N", n_boot=n_bootstrap, seed=seed)
    forecasts, skipped = _forecasts(table)

    an = out / "emergence"
    an.mkdir(parents=True, exist_ok=True)
    atomic_write_json(an / "verdicts.json", {"source": table.source, "x": "N", "bootstrap": n_bootstrap,
                                             "verdicts": [v.to_dict() for v in verdicts]})
    atomic_write_text(an / "verdicts.csv", verdicts_csv([v.summary_row() for v in verdicts]))
    atomic_write_json(an / "forecasts.json", {"forecasts": [f.to_dict() for f in forecasts], "skipped": skipped})
    figures = _figures(table, verdicts, an)
    ledger_path, statuses, grid = _ledger(table, out, str(sweep.dir.resolve()))
    figures.append(grid)
    secs["analysis"] = time.perf_counter() - t0

    headline = _headline(verdicts, forecasts, table)
    headline["seconds"] = {k: round(v, 1) for k, v in secs.items()}
    atomic_write_json(out / "emergence.json", headline)
    report_md = out / "REPORT.md"
    atomic_write_text(report_md, _report(out, sweep, table, verdicts, forecasts, statuses, figures, headline))
    return EmergenceDemoResult(out, sweep.dir, eval_dir / "eval.csv", verdicts, forecasts, figures, ledger_path,
                               report_md, headline, secs)


# ----------------------------------------------------------------------------------------------
# Analysis steps


def _done_runs(sweep) -> list[str]:
    from lmscale.sweep.registry import Registry

    reg = Registry(sweep.registry_path)
    try:
        return sorted(r["run_id"] for r in reg.runs() if r["status"] == "done")
    finally:
        reg.close()


def _same_request(eval_dir: Path, request: dict[str, Any]) -> bool:
    import json

    try:
        old = json.loads((eval_dir / EVAL_REQUEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return old == request and (eval_dir / "eval.csv").is_file()


def _forecasts(table) -> tuple[list, list[str]]:
    from lmscale.emergence.forecast import forecast_task

    forecasts, skipped = [], []
    for task in table.tasks():
        fs, sk = forecast_task(table, task, x="N", k_shot=0)
        forecasts += fs
        skipped += [f"{task}: {s}" for s in sk]
    return forecasts, skipped


def _figures(table, verdicts, out: Path) -> list[Path]:
    from lmscale.emergence import figures as F

    files = [F.mirage_figure(table, v.task, out, x="N", k_shot=v.k_shot, metrics=list(v.curves)) for v in verdicts]
    files.append(F.loss_and_transitions_figure(table, out, x="N"))
    th = {v.task: v.curves[v.primary_metric].loss_threshold for v in verdicts}
    files.append(F.metric_vs_loss_figure(table, out, {k: t for k, t in th.items() if t is not None}))
    return [f.png for f in files]


def _ledger(table, out: Path, source: str):
    """Record the table in a ledger inside `out` (not the user's global one); (path, statuses, grid PNG)."""
    from lmscale.emergence.figures import ledger_grid_figure
    from lmscale.emergence.ledger import Ledger

    with Ledger(out / LEDGER_FILE) as led:
        led.add(table, source=source)
        statuses = led.status(metric="exact_match")
        path = led.path
    grid = ledger_grid_figure(statuses, out / "emergence" / "ledger_grid.png")
    return path, statuses, grid.png


def _smooth_under(v, metric: str) -> bool:
    c = v.curves.get(metric)
    return c is not None and not c.sharp


def _headline(verdicts, forecasts, table) -> dict[str, Any]:
    """The demo's claim in numbers: the exact-match task with the largest B/L, and how its continuous metrics behave."""
    from lmscale.laws.tables import jsonable

    em = [v for v in verdicts if v.primary_metric == "exact_match"]
    emergent = [v for v in em if v.verdict in ("emergent", "emergent-under-this-metric-only")]
    pool = emergent or em
    best = max(pool, key=lambda v: _finite(v.curves["exact_match"].ratio), default=None)
    h: dict[str, Any] = {
        "models": len({r.run_id for r in table.rows}),
        "params": sorted({r.N for r in table.rows}),
        "verdicts": {v.task: v.verdict for v in verdicts},
        "emergent_tasks": [v.task for v in emergent],
        "smooth_under_token_prob": [v.task for v in emergent if _smooth_under(v, "token_prob")],
    }
    if best is not None:
        c = best.curves["exact_match"]
        tp = best.curves.get("token_prob")
        h["best"] = {"task": best.task, "verdict": best.verdict, "B": c.breakthroughness, "L": c.linearity,
                     "B_over_L": c.ratio, "B_over_L_ci": list(c.ratio_ci), "B_ci": list(c.breakthroughness_ci),
                     "L_ci": list(c.linearity_ci), "exact_match": c.y,
                     "token_prob": tp.y if tp else None, "token_prob_sharp": tp.sharp if tp else None,
                     "token_prob_power_law_r2": tp.power_law_r2 if tp else None,
                     # B/L = 1 is a curve linear in log N; inf (a flat curve with one jump) excludes it too
                     "interval_excludes_smooth": bool(c.ratio_ci[0] > 1)}
        fc = [f for f in forecasts if f.task == best.task]
        h["best"]["forecasts"] = [{"route": f.route, "metric": f.metric, "predicted": f.predicted,
                                   "actual": f.actual, "abs_error": f.abs_error} for f in fc]
    return jsonable(_inf_as_text(h))


def _inf_as_text(obj: Any) -> Any:
    """inf -> 'inf' (B is unbounded when the median step of a curve is 0; JSON has no infinity)."""
    if isinstance(obj, dict):
        return {k: _inf_as_text(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_inf_as_text(v) for v in obj]
    if isinstance(obj, float) and math.isinf(obj):
        return "inf" if obj > 0 else "-inf"
    return obj


def _finite(x: float) -> float:
    return x if math.isfinite(x) else (1e300 if x == math.inf else -1e300)


def summary_lines(res: EmergenceDemoResult) -> list[str]:
    """What the CLI prints after the demo: one line per task verdict, the headline, where the files are."""
    from lmscale.laws.tables import fmt

    lines = [f"{v.task}: {v.verdict}: {v.explanation}" for v in res.verdicts]
    best = res.headline.get("best")
    if best:
        lo, hi = best["B_over_L_ci"]
        lines.append(f"best exact-match task {best['task']} ({best['verdict']}): breakthroughness {fmt(best['B'], 3)}, "
                     f"linearity {fmt(best['L'], 3)}, B/L {fmt(best['B_over_L'], 3)} (95% CI {fmt(lo, 3)} to "
                     f"{fmt(hi, 3)}); per-token probability "
                     + ("smooth" if best.get("token_prob_sharp") is False else "sharp too"))
        for f in best.get("forecasts", []):
            lines.append(f"forecast of the largest model ({f['route']}, {f['metric']}): predicted {fmt(f['predicted'], 3)}, "
                         f"measured {fmt(f['actual'], 3)}, |error| {fmt(f['abs_error'], 3)}")
    lines.append(f"demo written to {res.out_dir}/ (REPORT.md, eval/, emergence/, {LEDGER_FILE}, sweep/)")
    return lines


# ----------------------------------------------------------------------------------------------
# Report


def _report(out: Path, sweep, table, verdicts, forecasts, statuses, figures, h: dict[str, Any]) -> str:
    from lmscale.laws.tables import fmt

    runs = sorted(sweep.runs, key=lambda r: r.n_params)
    losses = table.loss_by_run()
    m = lambda r: r.config["model"]  # noqa: E731
    lines = [
        "# lmscale demo emergence: abilities that appear with scale, and whether the metric made them",
        "",
        f"Sweep: `{sweep.dir}` ({len(runs)} models on `{runs[0].config['data']['corpus']}`; resume with "
        f"`lmscale sweep run {sweep.dir}`). Evaluation table: `eval/eval.csv` "
        f"(re-analyse with `lmscale emergence analyze {out / 'eval'}`). Ledger: `{LEDGER_FILE}` "
        f"(`lmscale emergence ledger show --ledger {out / LEDGER_FILE}`).",
        "",
        "## Ladder",
        "",
        "| model | depth | width | heads | parameters | tokens | training FLOPs | val loss (nats/token) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        loss = losses.get(r.run_id, (0, 0, 0, math.nan))[3]
        lines.append(f"| `{r.run_id}` | {m(r)['depth']} | {m(r)['width']} | {m(r)['heads']} | {fmt(r.n_params)} | "
                     f"{fmt(r.tokens)} | {fmt(r.flops, 3)} | {fmt(loss)} |")
    lines += ["", "## Per-task results (mean over test examples; parameters ascending)", "",
              "| task | L (tokens) | exact match | per-token probability | verdict |", "|---|---|---|---|---|"]
    for v in verdicts:
        em = table.curve(v.task, "exact_match", k_shot=v.k_shot) if "exact_match" in v.curves else None
        tp = table.curve(v.task, "token_prob", k_shot=v.k_shot) if "token_prob" in v.curves else None
        row = lambda c: " → ".join(fmt(y, 2) for y in c.y) if c is not None else "-"  # noqa: E731
        L = em.answer_tokens if em is not None else math.nan
        lines.append(f"| {v.task} | {fmt(L, 3)} | {row(em)} | {row(tp)} | **{v.verdict}** |")
    iv = lambda x, ci: f"{fmt(x, 3)} ({fmt(ci[0], 3)}, {fmt(ci[1], 3)})"  # noqa: E731
    lines += ["", "## Evidence along N (B/L = 1 for a curve linear in log N; intervals: 95% bootstrap)", "",
              "| task | metric | B | L | B/L | ΔAIC logistic vs smooth | onset | -log p power law R² | sharp |",
              "|---|---|---|---|---|---|---|---|---|"]
    for v in verdicts:
        for name in (v.primary_metric, "token_prob"):
            c = v.curves.get(name)
            if c is None or (name == "token_prob" and name == v.primary_metric):
                continue
            lines.append(f"| {v.task} | {name} | {iv(c.breakthroughness, c.breakthroughness_ci)} | "
                         f"{iv(c.linearity, c.linearity_ci)} | {iv(c.ratio, c.ratio_ci)} | {fmt(c.delta_aic, 3)} | "
                         f"{fmt(c.onset, 2)} | {fmt(c.power_law_r2, 3)} | {'yes' if c.sharp else 'no'} |")
    lines += [""] + [f"- **{v.task}**: {v.verdict}: {v.explanation}" for v in verdicts]
    best = h.get("best")
    if best:
        lines += ["", "## Headline", "",
                  f"Best exact-match task: **{best['task']}** ({best['verdict']}): B = {fmt(best['B'], 3)}, "
                  f"L = {fmt(best['L'], 3)}, B/L = {fmt(best['B_over_L'], 3)} with 95% bootstrap interval "
                  f"({fmt(best['B_over_L_ci'][0], 3)}, {fmt(best['B_over_L_ci'][1], 3)})"
                  + (" — the interval excludes smooth (linear, B/L = 1) behaviour." if best["interval_excludes_smooth"]
                     else " — the interval does not exclude smooth behaviour.")]
        lines += ["", f"![{best['task']} under every metric](emergence/mirage_{best['task']}.png)", ""]
        if best.get("token_prob") is not None:
            lines.append(f"Its per-token probability goes {' → '.join(fmt(y, 2) for y in best['token_prob'])} and is "
                         + ("not sharp (smooth)." if not best["token_prob_sharp"] else "sharp too."))
        lines.append({"emergent-under-this-metric-only": "Exact match jumps while the continuous metrics rise smoothly: "
                      "the jump is made by the all-or-nothing metric (Schaeffer et al. 2023's mirage).",
                      "emergent": "The continuous metrics jump too, so this transition is not an artefact of the "
                      "all-or-nothing metric: the models below the jump lack the mechanism, not just precision."}
                     .get(best["verdict"], ""))
    lines += ["", "## Forecasts of the largest model (fitted on the smaller ones)", "",
              "| task | route | metric | predicted | measured | abs. error |", "|---|---|---|---|---|---|"]
    lines += [f"| {f.task} | {f.route} | {f.metric} | {fmt(f.predicted, 3)} | {fmt(f.actual, 3)} | "
              f"{fmt(f.abs_error, 3)} |" for f in forecasts]
    lines += ["", "## Ledger (exact match; pass = half-way from chance to perfect)", ""]
    lines += [f"- {s.task}: {s.state}" + (f" at N = {fmt(s.flip_N, 3)} parameters" if s.flip_N else "")
              for s in statuses]
    secs = h.get("seconds", {})
    lines += ["", "Time: " + ", ".join(f"{k} {v:.0f} s" for k, v in secs.items()) + ".", "",
              "Figures (each with its data as CSV beside it):", ""]
    lines += [f"- `{p.relative_to(out)}`" for p in figures]
    return "\n".join(lines) + "\n"
