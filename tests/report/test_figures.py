from __future__ import annotations

import numpy as np
import pytest

from lmscale.errors import LmscaleError
from lmscale.laws.estimators import KaplanLaw
from lmscale.laws import IsoFLOPAllocation
from lmscale.report import (IsoFLOPFit, as_isoflop_fit, envelope, frontier_figure, isoflop_figure, kaplan_panels,
                            loss_surface_figure, residuals_figure, write_fit_figures)
from tests.report.conftest import TRUE, check_png, has_point, num, read_csv, true_optimum


def test_write_fit_figures_writes_every_applicable_figure(grid_figures):
    out, paths, _ = grid_figures
    assert [p.name for p in paths] == [f"{s}.{e}" for s in ("kaplan", "loss_surface", "frontier", "residuals")
                                       for e in ("png", "csv")]
    assert all(p.parent == out and p.is_file() for p in paths)
    for p in paths:
        if p.suffix == ".png":
            check_png(p)


def test_kaplan_panels_plots_every_point_curve_and_fit(grid_figures, grid_data, grid_curves, fitted):
    out, _, laws = grid_figures
    law, _ = fitted
    rows = read_csv(out / "kaplan.csv")
    by = lambda panel, kind: [r for r in rows if r["panel"] == panel and r["kind"] == kind]  # noqa: E731
    # Every final loss appears on each panel (the data share token counts, so loss vs N is drawn per D).
    for panel in ("loss_vs_C", "loss_vs_D", "loss_vs_N"):
        finals = by(panel, "final")
        assert len(finals) == len(grid_data)
        assert all(has_point(finals, n, d, y) for n, d, y in zip(grid_data.N, grid_data.D, grid_data.loss))
    assert len({r["series"] for r in by("loss_vs_N", "final")}) == 4  # one line per token count
    curve_rows = by("loss_vs_C", "curve")
    assert len(curve_rows) == len(grid_curves) and len({r["series"] for r in curve_rows}) == len(grid_data)
    # The envelope: compute increasing, loss strictly decreasing, and never above any plotted point at lower C.
    ec, el = num(by("loss_vs_C", "envelope"), "C"), num(by("loss_vs_C", "envelope"), "loss")
    assert len(ec) >= 5 and np.all(np.diff(ec) > 0) and np.all(np.diff(el) < 0)
    allC = np.concatenate([grid_data.C, grid_curves.C])
    allL = np.concatenate([grid_data.loss, grid_curves.loss])
    for c, y in zip(ec, el):
        assert y <= allL[allC <= c].min() + 1e-12
    # Fitted curves are the laws' predictions at the plotted abscissae.
    fc = by("loss_vs_C", "fit")
    np.testing.assert_allclose(num(fc, "loss"), laws["C"].predict(C=num(fc, "C")), rtol=1e-12)
    fn = [r for r in by("loss_vs_N", "fit") if r["series"] == "kaplan-n"]
    np.testing.assert_allclose(num(fn, "loss"), laws["N"].predict(num(fn, "x")), rtol=1e-12)
    joint_D = [r for r in by("loss_vs_D", "fit") if r["series"].startswith("chinchilla")]
    np.testing.assert_allclose(num(joint_D, "loss"), law.predict(num(joint_D, "N"), num(joint_D, "D")), rtol=1e-12)
    front = by("loss_vs_C", "fit_frontier")
    np.testing.assert_allclose(6 * num(front, "N") * num(front, "D"), num(front, "C"), rtol=1e-9)
    # Approach 1's interpolated envelope, point for point.
    env = laws["approach1"].envelope_
    a1 = by("loss_vs_C", "approach1_envelope")
    o = np.argsort(env["C"])
    np.testing.assert_allclose(num(a1, "C"), env["C"][o], rtol=1e-12)
    np.testing.assert_allclose(num(a1, "loss"), env["loss"][o], rtol=1e-12)
    assert [r["series"] for r in a1] == list(env["curve"][o])


def test_envelope_is_the_running_minimum():
    C = np.array([1.0, 2.0, 2.0, 3.0, 4.0, 5.0])
    L = np.array([5.0, 4.0, 4.5, 4.2, 3.0, 3.0])
    ec, el = envelope(C, L)
    assert ec.tolist() == [1.0, 2.0, 4.0] and el.tolist() == [5.0, 4.0, 3.0]


def test_loss_surface_every_point_and_fitted_curves(grid_figures, grid_data, fitted, extrapolation):
    out, _, _ = grid_figures
    law, _ = fitted
    ext = extrapolation
    assert ext is not None and ext.n_test == 4
    rows = read_csv(out / "loss_surface.csv")
    pts = [r for r in rows if r["kind"] in ("point", "held_out")]
    assert len(pts) == len(grid_data)
    assert all(has_point(pts, n, d, y) for n, d, y in zip(grid_data.N, grid_data.D, grid_data.loss))
    held = [r for r in rows if r["kind"] == "held_out"]
    assert len(held) == ext.n_test and all(float(r["N"]) == grid_data.N.max() for r in held)
    assert {r["group_by"] for r in rows} == {"D"}
    assert len({r["group"] for r in rows if r["kind"] == "point"}) == 4
    fit = [r for r in rows if r["kind"] == "fit"]
    np.testing.assert_allclose(num(fit, "loss"), law.predict(num(fit, "N"), num(fit, "D")), rtol=1e-12)
    pred = [r for r in rows if r["kind"] == "held_out_prediction"]
    assert sorted(num(pred, "loss")) == pytest.approx(sorted(r["predicted"] for r in ext.rows), rel=1e-12)


def test_frontier_default_range_and_bootstrap_band(grid_figures, fitted):
    out, _, _ = grid_figures
    law, boot = fitted
    rows = read_csv(out / "frontier.csv")
    C, N, D = num(rows, "C"), num(rows, "N_opt"), num(rows, "D_opt")
    assert C[0] == pytest.approx(law.data_.C.min()) and C[-1] == pytest.approx(100 * law.data_.C.max())
    np.testing.assert_allclose(6 * N * D, C, rtol=1e-9)
    np.testing.assert_allclose(num(rows, "tokens_per_param"), D / N, rtol=1e-12)
    np.testing.assert_allclose(N, law.optimal_allocation(C)["N_opt"], rtol=1e-12)
    for q in ("N_opt", "D_opt", "tokens_per_param", "loss_opt"):
        lo, med, hi = num(rows, f"{q}_low"), num(rows, f"{q}_median"), num(rows, f"{q}_high")
        assert np.isfinite(med).all()
        assert np.all(lo <= med) and np.all(med <= hi) and np.any(lo < hi)
    # The band is the bootstrap's percentile interval of the resampled parameters' allocation.
    th = boot.theta[boot.converged]
    n_samples = law._allocation(th, C[-1])["N_opt"]
    q = boot.confidence
    assert num(rows, "N_opt_low")[-1] == pytest.approx(np.percentile(n_samples, 50 * (1 - q)), rel=1e-9)
    inside = np.array([r["in_data_range"] == "true" for r in rows])
    assert inside.any() and not inside.all()
    assert not [r for r in rows if r["kind"] != "frontier"]  # the range stops short of Chinchilla's 5.76e23 FLOPs


def test_frontier_with_range_including_the_chinchilla_point(tmp_path, fitted):
    law, boot = fitted
    files = frontier_figure(law, boot, (1e18, 1e25), out=tmp_path, n=30)
    check_png(files.png)
    rows = read_csv(files.csv)
    front = [r for r in rows if r["kind"] == "frontier"]
    C = num(front, "C")
    assert len(front) == 30 and C[0] == pytest.approx(1e18) and C[-1] == pytest.approx(1e25)
    np.testing.assert_allclose(6 * num(front, "N_opt") * num(front, "D_opt"), C, rtol=1e-9)
    # Each resample's frontier spends exactly C, so the medians nearly do too.
    np.testing.assert_allclose(6 * num(front, "N_opt_median") * num(front, "D_opt_median"), C, rtol=0.05)
    ref = [r for r in rows if r["kind"] == "chinchilla_reference"]
    assert len(ref) == 1 and float(ref[0]["N_opt"]) == 70e9 and float(ref[0]["D_opt"]) == 1.4e12
    assert float(ref[0]["C"]) == 5.76e23


def test_frontier_without_bootstrap(tmp_path, iso_law, grid_data):
    rows = read_csv(frontier_figure(iso_law, out=tmp_path / "f.png", n=10).csv)
    assert (tmp_path / "f.png").is_file()
    assert len(rows) == 10 and all(r["kind"] == "frontier" for r in rows)
    assert all(r["N_opt_low"] == "" and r["N_opt_median"] == "" for r in rows)
    assert float(rows[0]["C"]) == pytest.approx(iso_law.data_.C.min())
    with pytest.raises(LmscaleError, match="compute range"):
        frontier_figure(iso_law, C_range=(1e20, 1e18), out=tmp_path)
    kaplan = KaplanLaw("N").fit(grid_data)
    with pytest.raises(LmscaleError, match="no compute-optimal allocation"):
        frontier_figure(kaplan, out=tmp_path)


def test_residuals_figure(grid_figures, grid_data, fitted, extrapolation):
    out, _, _ = grid_figures
    law, _ = fitted
    rows = read_csv(out / "residuals.csv")
    ins = [r for r in rows if r["kind"] == "in_sample"]
    assert len(ins) == len(grid_data)
    assert all(has_point(ins, n, d, y) for n, d, y in zip(grid_data.N, grid_data.D, grid_data.loss))
    np.testing.assert_allclose(num(ins, "log_residual"), np.log(num(ins, "predicted")) - np.log(num(ins, "loss")),
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(num(ins, "predicted"), law.predict(num(ins, "N"), num(ins, "D")), rtol=1e-12)
    np.testing.assert_allclose(num(ins, "residual_pct"), 100 * num(ins, "log_residual"), rtol=1e-12)
    # Data were drawn with 0.3% noise around the true law: residuals stay within a few percent.
    assert np.abs(num(ins, "residual_pct")).max() < 2.0
    held = [r for r in rows if r["kind"] == "held_out"]
    assert len(held) == extrapolation.n_test
    are = np.abs(num(held, "predicted") - num(held, "loss")) / num(held, "loss")
    assert are.mean() == pytest.approx(extrapolation.mean_are, rel=1e-9)


def test_isoflop_data_figures(tmp_path, isoflop_data):
    """A single-variable law on IsoFLOP data: IsoFLOP, Kaplan (each size's longest run) and residual figures."""
    est = IsoFLOPAllocation().fit(isoflop_data)
    fit = as_isoflop_fit(est)
    assert isinstance(fit, IsoFLOPFit) and len(fit.parabolas) == 3
    assert all(p.convex and p.inside and p.in_power_law for p in fit.parabolas)
    # The drawn parabolas are the estimator's: same vertex, loss at the vertex and curvature.
    for p, b in zip(fit.parabolas, est.budgets_):
        assert p.N_opt == pytest.approx(b.N_opt, rel=1e-9) and p.loss_opt == pytest.approx(b.loss_opt, rel=1e-12)
        assert p.coefficients[2] == pytest.approx(b.curvature, rel=1e-12)
        assert p.N_opt == pytest.approx(true_optimum(p.budget)[0], rel=0.2)
    assert fit.a == est.a_ and fit.a == pytest.approx(TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"]), abs=0.03)
    kaplan = KaplanLaw("N").fit(isoflop_data)
    paths = write_fit_figures(isoflop_data, kaplan, tmp_path, isoflop=est)
    assert [p.name for p in paths if p.suffix == ".png"] == ["kaplan.png", "isoflop.png", "residuals.png"]
    check_png(tmp_path / "isoflop.png")

    rows = read_csv(tmp_path / "isoflop.csv")
    points = [r for r in rows if r["kind"] == "point"]
    assert len(points) == len(isoflop_data)
    assert all(has_point(points, n, d, y) for n, d, y in zip(isoflop_data.N, isoflop_data.D, isoflop_data.loss))
    assert not [r for r in rows if r["kind"] == "unassigned_point"]
    for r in points:  # each point is drawn with its own budget
        assert float(r["budget"]) == pytest.approx(float(r["C"]), rel=1e-9)
    verts = [r for r in rows if r["panel"] == "optimum_vs_C" and r["kind"] == "vertex"]
    assert sorted(num(verts, "N")) == pytest.approx(sorted(p.N_opt for p in fit.parabolas), rel=1e-12)
    pl = [r for r in rows if r["kind"] == "power_law"]
    np.testing.assert_allclose(num(pl, "N"), est.N_coef_ * num(pl, "C") ** est.a_, rtol=1e-12)
    pld = [r for r in rows if r["kind"] == "power_law_D"]
    np.testing.assert_allclose(num(pld, "D"), est.D_coef_ * num(pld, "C") ** est.b_, rtol=1e-12)
    # Each parabola passes through its vertex and fits its budget's points closely (0.1% noise).
    for p in fit.parabolas:
        par = [r for r in rows if r["kind"] == "parabola" and float(r["budget"]) == p.budget]
        np.testing.assert_allclose(num(par, "loss"), p.predict(num(par, "N")), rtol=1e-12)
        pts = [r for r in points if float(r["budget"]) == p.budget]
        assert len(pts) == 7
        np.testing.assert_allclose(p.predict(num(pts, "N")), num(pts, "loss"), rtol=0.01)

    # No token count is shared across sizes: the loss-vs-N panel shows each size's longest run.
    n_rows = [r for r in read_csv(tmp_path / "kaplan.csv") if r["panel"] == "loss_vs_N" and r["kind"] == "final"]
    assert {r["series"] for r in n_rows} == {"largest D per size"}
    assert len(n_rows) == len(np.unique(isoflop_data.N))
    for r in n_rows:
        assert float(r["D"]) == pytest.approx(isoflop_data.D[isoflop_data.N == float(r["N"])].max(), rel=1e-12)
    res = read_csv(tmp_path / "residuals.csv")
    assert len(res) == len(isoflop_data) and {r["kind"] for r in res} == {"in_sample"}
    np.testing.assert_allclose(num(res, "predicted"), kaplan.predict(num(res, "N")), rtol=1e-12)


def test_isoflop_result_as_a_plain_mapping(isoflop_data):
    est = IsoFLOPAllocation().fit(isoflop_data)
    fit = as_isoflop_fit(est)
    plain = {"budgets": [p.budget for p in fit.parabolas], "coefficients": [p.coefficients for p in fit.parabolas]}
    again = as_isoflop_fit(plain)
    # Without a, k the power law is refitted over the vertices: the same OLS the estimator does.
    assert again.a == pytest.approx(est.a_, rel=1e-9) and again.k == pytest.approx(est.N_coef_, rel=1e-6)
    assert [p.N_opt for p in again.parabolas] == pytest.approx([b.N_opt for b in est.budgets_], rel=1e-9)
    # A bootstrap of the estimator, passed alongside it, gives the interval of a (nothing is stored on it).
    from lmscale.laws.bootstrap import bootstrap

    boot = bootstrap(est, 20, seed=0)
    assert fit.a_interval is None and as_isoflop_fit(est, bootstrap=boot).a_interval == (*boot.interval("a"), 0.95)
    with pytest.raises(LmscaleError, match="coefficients have shape"):
        as_isoflop_fit({"budgets": [1e18, 1e19], "coefficients": [[1.0, 2.0, 3.0]]})
    with pytest.raises(LmscaleError, match="expected a fitted IsoFLOPAllocation"):
        as_isoflop_fit({"vertices": []})
    with pytest.raises(LmscaleError, match="not fitted"):
        isoflop_figure(isoflop_data, IsoFLOPAllocation(), out=".")


def test_loss_surface_groups_by_budget_on_isoflop_data(tmp_path, isoflop_data, iso_law):
    rows = read_csv(loss_surface_figure(isoflop_data, iso_law, out=tmp_path).csv)
    assert {r["group_by"] for r in rows} == {"C"}
    assert len([r for r in rows if r["kind"] == "point"]) == len(isoflop_data)
    fit = [r for r in rows if r["kind"] == "fit"]
    np.testing.assert_allclose(6 * num(fit, "N") * num(fit, "D"), num(fit, "group_value"), rtol=1e-9)


def test_kaplan_panels_without_a_law(tmp_path, grid_data):
    paths = write_fit_figures(grid_data, None, tmp_path / "nolaw")
    assert [p.name for p in paths] == ["kaplan.png", "kaplan.csv"]
    rows = read_csv(paths[1])
    assert {r["kind"] for r in rows} == {"final", "envelope"}


def test_bad_inputs_are_one_line_errors(tmp_path, grid_data, fitted):
    from lmscale.laws.estimators import ChinchillaLaw

    law, _ = fitted
    with pytest.raises(LmscaleError, match="expected a .png file or a directory"):
        residuals_figure(grid_data, law, out=tmp_path / "r.jpg")
    with pytest.raises(LmscaleError, match="not fitted"):
        residuals_figure(grid_data, ChinchillaLaw(), out=tmp_path)
    with pytest.raises(LmscaleError, match="expected a joint law"):
        loss_surface_figure(grid_data, KaplanLaw("N").fit(grid_data), out=tmp_path)
    with pytest.raises(LmscaleError, match="no data points"):
        kaplan_panels(grid_data.subset(np.zeros(len(grid_data), bool)), out=tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(LmscaleError, match="is a file"):
        write_fit_figures(grid_data, law, tmp_path / "file")


@pytest.mark.parametrize("method", ["local", "akima", "spline", "parabola"])
def test_isoflop_figure_draws_the_curve_each_vertex_was_taken_on(tmp_path, method):
    """Wide profiles (13 sizes over 3 decades, one budget sampled above its optimum): the figure draws the local
    parabola over its window, or the interpolant over the sampled sizes, not a whole-profile parabola."""
    from lmscale.laws.vertex import profile_curve
    from tests.laws.test_isoflop import wide

    data = wide(1e-3, seed=1, edge=True)
    est = IsoFLOPAllocation(method=method).fit(data)
    files = isoflop_figure(data, est, out=tmp_path)
    check_png(files.png)
    assert files.csv.parent == files.png.parent and files.csv.name == "isoflop.csv"  # the CSV beside the PNG
    rows = read_csv(files.csv)
    kind = "interpolant" if method in ("akima", "spline") else "parabola"
    assert {r["kind"] for r in rows} >= {"point", kind, "vertex"}
    for i, b in enumerate(est.budgets_):
        curve = [r for r in rows if r["kind"] == kind and float(r["budget"]) == pytest.approx(b.C, rel=1e-12)]
        N, L = num(curve, "N"), num(curve, "loss")
        m = est.budget_ids_ == np.unique(est.budget_ids_)[i]
        f, lo, hi = profile_curve(np.log(data.N[m]), data.loss[m], method)
        np.testing.assert_allclose(L, f(np.log(N)), rtol=1e-9, atol=1e-12)  # the estimator's own curve
        if method == "parabola":
            assert N.min() < b.N_min and N.max() > b.N_max  # whole profile, extended a little
        else:  # drawn only where it was fitted (and to the vertex when that is used)
            v = b.N_opt if b.used else b.fit_N_min
            assert N.min() == pytest.approx(min(b.fit_N_min, v), rel=1e-9)
            assert N.max() == pytest.approx(max(b.fit_N_max, v), rel=1e-9)
            if method == "local":
                assert b.fit_N_max / b.fit_N_min < 0.3 * b.N_max / b.N_min  # the window, not the 3 decades
        vert = [r for r in rows if r["panel"] == "loss_vs_N" and r["kind"] == "vertex"
                and float(r["budget"]) == pytest.approx(b.C, rel=1e-12)]
        assert len(vert) == 1 and float(vert[0]["N"]) == pytest.approx(b.N_opt, rel=1e-12)
        assert (vert[0]["used"].lower() == "true") == b.used
    assert est.budgets_[-1].edge and (est.budgets_[-1].used == (method == "parabola"))
