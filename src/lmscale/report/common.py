"""What every figure shares: the Agg backend, output paths, the PNG + CSV writer, colours and captions.

Each figure function draws on a `matplotlib.figure.Figure` created directly (not through pyplot,
so no interactive backend and no global figure registry is ever involved), saves it as a PNG and
writes the exact numbers it plotted to a CSV with the same stem, then releases the figure.
"""

from __future__ import annotations

import csv
import io
import math
import textwrap
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Sequence

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import LogFormatterSciNotation  # noqa: E402

from lmscale.errors import LmscaleError  # noqa: E402
from lmscale.fileio import atomic_write_bytes, atomic_write_text, csv_cell  # noqa: E402
from lmscale.laws.tables import fmt  # noqa: E402

DPI = 150
LABELS = {
    "N": "N (parameters, total)",
    "N_nonembed": "N (parameters, non-embedding)",
    "D": "D (training tokens)",
    "C": "C (training FLOPs)",
    "loss": "loss (nats/token)",
}
GREEK = {"alpha": "α", "beta": "β"}
OTHER_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".svg", ".pdf", ".eps", ".tif", ".tiff", ".gif", ".webp")
HELD_OUT_STYLE = {"marker": "D", "edgecolors": "red", "s": 60, "linewidths": 1.8, "zorder": 5}


class FigureFiles(NamedTuple):
    """The two files a figure function writes: the image and the data behind it."""

    png: Path
    csv: Path


def resolve_out(out: str | Path, default_name: str) -> Path:
    """The PNG path for `out`: a path ending in .png is used as is; anything else is a directory."""
    out = Path(out)
    if out.suffix.lower() == ".png" and not out.is_dir():
        png = out
    elif out.suffix.lower() in OTHER_IMAGE_SUFFIXES and not out.is_dir():
        raise LmscaleError(f"output path {str(out)!r} has suffix {out.suffix!r}; expected a .png file or a directory")
    else:
        png = out / f"{default_name}.png"
    if png.parent.exists() and not png.parent.is_dir():
        raise LmscaleError(f"output directory {str(png.parent)!r} is a file; expected a directory")
    png.parent.mkdir(parents=True, exist_ok=True)
    return png


def new_figure(ncols: int, width: float = 5.6, height: float = 4.6, caption: str | None = None):
    """(figure, axes in a row, caption axes or None), independent of pyplot, constrained layout.

    With `caption`, a text strip spanning the figure below the axes holds it (formula, fitted
    parameters), so the text never covers data.
    """
    if not caption:
        fig = Figure(figsize=(width * ncols, height), dpi=DPI, layout="constrained")
        return fig, list(fig.subplots(1, ncols, squeeze=False).ravel()), None
    # Wrap to the figure width (8 pt text: ~15 characters per inch) so no line is clipped.
    chars = max(40, int(width * ncols * 15))
    lines = [w for line in caption.split("\n") for w in (textwrap.wrap(line, chars, subsequent_indent="    ") or [""])]
    cap_h = 0.19 * len(lines) + 0.1
    fig = Figure(figsize=(width * ncols, height + cap_h), dpi=DPI, layout="constrained")
    keys = [f"ax{i}" for i in range(ncols)]
    d = fig.subplot_mosaic([keys, ["caption"] * ncols], height_ratios=[height, cap_h])
    cap = d["caption"]
    cap.axis("off")
    text = cap.text(0.0, 1.0, "\n".join(lines), transform=cap.transAxes, ha="left", va="top", fontsize=8,
                    linespacing=1.35)
    text.set_in_layout(False)  # the strip is sized for it; it must not squeeze the axes above
    return fig, [d[k] for k in keys], cap


def save_figure(fig: Figure, png: Path, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> FigureFiles:
    """Write the PNG (atomically) and the CSV of the plotted rows beside it; release the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    fig.clear()
    atomic_write_bytes(png, buf.getvalue())
    text = io.StringIO()
    w = csv.writer(text, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([csv_cell(v) for v in r])
    csv_path = png.with_suffix(".csv")
    atomic_write_text(csv_path, text.getvalue())
    return FigureFiles(png, csv_path)


def log_colors(values: np.ndarray, cmap: str = "viridis"):
    """(colour function, norm, colormap) mapping positive values on a log scale (for model sizes, budgets)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    lo, hi = (float(v.min()), float(v.max())) if len(v) else (1.0, 10.0)
    if hi <= lo:
        lo, hi = lo / 2, lo * 2
    norm = LogNorm(lo, hi)
    cm = colormaps[cmap]
    # Keep the bright yellow end of viridis off white backgrounds.
    return (lambda x: cm(0.9 * norm(x))), norm, cm


def add_colorbar(fig: Figure, ax, norm, cmap, label: str) -> None:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap

    # The same 0-0.9 slice of the colormap the points use.
    sliced = ListedColormap(cmap(np.linspace(0, 0.9, 256)))
    fig.colorbar(ScalarMappable(norm=norm, cmap=sliced), ax=ax, label=label, pad=0.01)


def group_values(values: np.ndarray, rtol: float = 0.1) -> np.ndarray:
    """Integer group id per value: sorted log values split where consecutive values differ by more than rtol."""
    v = np.asarray(values, float)
    ids = np.full(len(v), -1)
    ok = np.isfinite(v) & (v > 0)
    if not ok.any():
        return ids
    order = np.argsort(v[ok])
    lv = np.log(v[ok][order])
    g = np.concatenate([[0], np.cumsum(np.diff(lv) > np.log1p(rtol))])
    sub = np.empty(len(lv), int)
    sub[order] = g
    ids[ok] = sub
    return ids


def group_centres(values: np.ndarray, ids: np.ndarray) -> dict[int, float]:
    """Geometric mean of the values in each group."""
    return {int(g): float(np.exp(np.log(values[ids == g]).mean())) for g in np.unique(ids) if g >= 0}


def param_name(name: str) -> str:
    for k, g in GREEK.items():
        name = name.replace(k, g)
    return name


def law_caption(law, bootstrap=None, max_width: int = 3) -> str:
    """The law's formula and fitted parameters (with bootstrap percentile intervals when given)."""
    boot = bootstrap
    lines = [param_name(f"{law.form_.name}: {law.form_.formula}")]
    cells = []
    for k, v in law.params_.items():
        s = f"{param_name(k)} = {fmt(v, 3)}"
        if boot is not None and k in boot.samples:
            lo, hi = boot.interval(k)
            s += f" [{fmt(lo, 3)}, {fmt(hi, 3)}]"
        cells.append(s)
    for i in range(0, len(cells), max_width):
        lines.append(",  ".join(cells[i:i + max_width]))
    if boot is not None:
        lines.append(f"[ ] = {boot.confidence:.0%} cluster-bootstrap interval, {boot.n_converged}/{boot.n_resamples} resamples")
    lines.append(f"fit: {law.n_points_} points, Huber(δ={law.delta:g}) on log L, {law.reduction}")
    return "\n".join(lines)


def short_params(law) -> str:
    """'α = 0.34, A = 406, ...' for a legend label."""
    return ", ".join(f"{param_name(k)} = {fmt(v, 3)}" for k, v in law.params_.items())


class _MinorLogFormatter(LogFormatterSciNotation):
    """Minor log-tick labels at 2 and 5 times a power of ten, only on axes spanning under 1.6 decades."""

    def __init__(self):
        super().__init__(labelOnlyBase=False, minor_thresholds=(np.inf, np.inf))

    def __call__(self, x, pos=None):
        lo, hi = sorted(self.axis.get_view_interval())
        if not (lo > 0 and x > 0) or math.log10(hi / lo) > 1.6:
            return ""
        m = x / 10 ** math.floor(math.log10(x) + 1e-9)
        if not any(abs(m - k) < 1e-6 * k for k in (2, 5)):
            return ""
        return super().__call__(x, pos)


def finish_axes(ax, xlabel: str, ylabel: str, logx: bool = True, logy: bool = False, title: str | None = None) -> None:
    if logx:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(_MinorLogFormatter())
    if logy:
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(_MinorLogFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)


def held_out_mask(data, extrapolation) -> np.ndarray:
    """Rows of `data` that an ExtrapolationResult held out (matched on N, D and loss)."""
    mask = np.zeros(len(data), bool)
    if extrapolation is None:
        return mask
    for r in extrapolation.rows:
        hit = np.isclose(data.loss, r["loss"], rtol=1e-12, atol=0)
        for k in ("N", "D"):
            v = getattr(data, k)
            if np.isfinite(r.get(k, np.nan)):
                hit &= np.isclose(v, r[k], rtol=1e-9, atol=0)
        mask |= hit
    return mask


def is_joint(law) -> bool:
    """A law of both N and D (Chinchilla, Kaplan joint, data-constrained)."""
    return tuple(law.form_.variables[:2]) == ("N", "D")


def require_fitted(law, what: str) -> None:
    if not hasattr(law, "theta_"):
        raise LmscaleError(f"{type(law).__name__} is not fitted; expected a fitted law for the {what} figure (call .fit(data))")


def span(values: np.ndarray, pad: float = 1.0, n: int = 200) -> np.ndarray:
    """Log-spaced grid over the finite positive values, widened by a factor `pad` each side."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    lo, hi = float(v.min()) / pad, float(v.max()) * pad
    if hi <= lo:
        lo, hi = lo / 1.5, hi * 1.5
    return np.geomspace(lo, hi, n)


__all__ = ["FigureFiles", "LABELS", "resolve_out", "new_figure", "save_figure", "log_colors",
           "add_colorbar", "group_values", "group_centres", "law_caption", "finish_axes", "held_out_mask",
           "is_joint", "require_fitted", "span", "short_params", "param_name"]
