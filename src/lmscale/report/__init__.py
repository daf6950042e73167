"""Figures of scaling data and fitted laws (matplotlib, Agg backend), each with its data as CSV.

    from lmscale.report import write_fit_figures, kaplan_panels, frontier_figure, ...

Names are loaded on first use, so importing `lmscale.report.cli` (done by the `lmscale` command)
does not import matplotlib.
"""

from __future__ import annotations

from lmscale.lazy import lazy_getattr

_EXPORTS = {
    "FigureFiles": "lmscale.report.common",
    "kaplan_panels": "lmscale.report.kaplan",
    "envelope": "lmscale.report.kaplan",
    "isoflop_figure": "lmscale.report.isoflop",
    "IsoFLOPFit": "lmscale.report.isoflop",
    "IsoFLOPParabola": "lmscale.report.isoflop",
    "as_isoflop_fit": "lmscale.report.isoflop",
    "loss_surface_figure": "lmscale.report.surface",
    "frontier_figure": "lmscale.report.frontier",
    "residuals_figure": "lmscale.report.residuals",
    "write_fit_figures": "lmscale.report.figures",
    "envelope_law": "lmscale.report.figures",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
