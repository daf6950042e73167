"""The scaling-law figures, one module per family, and `write_fit_figures`: every figure that applies.

Each figure function saves a PNG (150 dpi) and a CSV of exactly the plotted numbers beside it (same
stem) and returns both paths as a `FigureFiles(png, csv)`. `out` is the PNG path, or a directory in
which the figure's default name is used.

    kaplan_panels(data, curves=None, laws=None, *, out)                   -> kaplan.png
    isoflop_figure(data, result, *, out)                                  -> isoflop.png
    loss_surface_figure(data, law, *, out, extrapolation=None)            -> loss_surface.png
    frontier_figure(law, bootstrap=None, C_range=None, *, out)            -> frontier.png
    residuals_figure(data, law, *, out, extrapolation=None)               -> residuals.png
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lmscale.errors import LmscaleError
from lmscale.laws.data import ScalingData
from lmscale.report.common import FigureFiles, is_joint, require_fitted
from lmscale.report.frontier import frontier_figure
from lmscale.report.isoflop import IsoFLOPFit, IsoFLOPParabola, as_isoflop_fit, isoflop_figure
from lmscale.report.kaplan import envelope, is_envelope, kaplan_panels
from lmscale.report.residuals import residuals_figure
from lmscale.report.surface import loss_surface_figure


def envelope_law(data: ScalingData, curves: ScalingData | None = None, min_points: int = 5):
    """Kaplan's L(C) = (C_c/C)^alpha_C + E fitted to the compute-efficient envelope (of the curves and
    final losses), or None when the envelope has fewer than `min_points` points."""
    from lmscale.laws.estimators import KaplanLaw

    C = data.C if curves is None else np.concatenate([data.C, curves.C])
    L = data.loss if curves is None else np.concatenate([data.loss, curves.loss])
    ec, el = envelope(C, L)
    if len(np.unique(ec)) < min_points:
        return None
    env = ScalingData.from_arrays(C=ec, loss=el, source=f"{data.source} (compute-efficient envelope)")
    return KaplanLaw("C").fit(env)


def write_fit_figures(data: ScalingData, law, out_dir: str | Path, curves: ScalingData | None = None,
                      bootstrap=None, extrapolation=None, isoflop: Any = None,
                      kaplan_laws: Sequence[Any] | None = None, envelope_fit: Any = None) -> list[Path]:
    """Write every figure that applies to the data and the fitted law; returns the PNG and CSV paths.

    Always the Kaplan panels (with `law`, `kaplan_laws` and `envelope_fit`, a fitted Approach-1
    `EnvelopeAllocation`, overlaid) and, for a fitted `law`, its residuals; for a joint law of N and
    D the loss surface; for a law with a compute-optimal allocation the frontier (with the band of
    `bootstrap`, a `BootstrapResult` of the law from `lmscale.laws.bootstrap.bootstrap`); with `isoflop`
    (a fitted Approach-2 `IsoFLOPAllocation`, or what `as_isoflop_fit` accepts) the IsoFLOP figure.
    `extrapolation` (an `ExtrapolationResult` from `lmscale.laws.extrapolation.extrapolation_check`)
    marks the held-out points. `law` may be None (no fit): then only the data figures are written.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise LmscaleError(f"output directory {str(out_dir)!r} is a file; expected a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    if law is not None:
        require_fitted(law, "fit")
    files: list[FigureFiles] = []
    overlay = [law] if law is not None else []
    overlay += [k for k in (kaplan_laws or []) if k is not None]
    if envelope_fit is not None:
        if not is_envelope(envelope_fit):
            raise LmscaleError(f"envelope_fit of type {type(envelope_fit).__name__}; expected a fitted EnvelopeAllocation "
                               "(Approach 1)")
        overlay.append(envelope_fit)
    files.append(kaplan_panels(data, curves, overlay, out=out_dir))
    if isoflop is not None:
        files.append(isoflop_figure(data, isoflop, out=out_dir))
    if law is not None:
        ext = extrapolation
        if is_joint(law):
            files.append(loss_surface_figure(data, law, out=out_dir, extrapolation=ext))
        if law.has_allocation():
            files.append(frontier_figure(law, bootstrap, out=out_dir))
        files.append(residuals_figure(data, law, out=out_dir, extrapolation=ext))
    return [p for f in files for p in f]


__all__ = ["FigureFiles", "IsoFLOPFit", "IsoFLOPParabola", "as_isoflop_fit", "envelope", "envelope_law",
           "frontier_figure", "isoflop_figure", "kaplan_panels", "loss_surface_figure",
           "residuals_figure", "write_fit_figures"]
