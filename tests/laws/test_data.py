"""Loading and validating scaling data: our CSV, chinchilla's df.csv, Epoch's CSV, sweep directories."""

import numpy as np
import pytest

from lmscale.errors import LmscaleError
from lmscale.laws import ChinchillaLaw, ScalingData, load_curves, load_scaling_data


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_plain_csv_with_optional_columns(tmp_path):
    p = write(tmp_path / "d.csv", "N,D,loss,seed,run,family,N_nonembed\n"
                                  "1e6,1e8,4.0,0,r1,base,8e5\n2e6,2e8,3.5,1,r1,base,1.6e6\n4e6,4e8,3.0,0,r2,mup,3.2e6\n")
    d = load_scaling_data(p)
    assert len(d) == 3 and d.C_from_6ND
    np.testing.assert_allclose(d.C, 6 * d.N * d.D)
    assert list(d.run) == ["r1", "r1", "r2"] and d.n_clusters == 2
    assert d.families() == ["base", "mup"]
    assert len(load_scaling_data(p, family="mup")) == 1
    with pytest.raises(LmscaleError, match="no rows of family 'gpt'; families found: base, mup"):
        load_scaling_data(p, family="gpt")


def test_chinchilla_package_csv_as_is(tmp_path):
    # kyo-takano/chinchilla's Database writes df.csv with columns C, N, D, loss.
    p = write(tmp_path / "df.csv", "C,N,D,loss\n1.3972367362937152e+18,73824672,3154403320,3.405928\n"
                                   "1.7656304230443515e+18,89818214,3276303602,3.325255\n")
    d = load_scaling_data(p)
    assert d.C[0] == pytest.approx(1.3972367362937152e18) and not d.C_from_6ND and not d.D_from_C
    assert d.N[1] == 89818214 and d.loss[1] == pytest.approx(3.325255)


def test_epoch_csv_columns(tmp_path):
    p = write(tmp_path / "svg.csv", "x,y,color,Model Size,Training FLOP,hex_color,loss\n"
                                    "1,2,#fff,6795600349.289497,9.993852799709755e+18,#fff,5.0055\n"
                                    "1,2,#fff,2979521172.1967993,9.227541223049181e+18,#fff,4.6652\n")
    d = load_scaling_data(p)
    assert d.D_from_C
    np.testing.assert_allclose(d.D, d.C / (6 * d.N))


def test_epoch_reference_file(epoch_path):
    d = load_scaling_data(epoch_path)
    assert len(d) == 245 and d.D_from_C


def test_missing_columns_names_them_and_lists_found(tmp_path):
    p = write(tmp_path / "bad.csv", "params,loss_value\n1e6,3\n")
    with pytest.raises(LmscaleError) as e:
        load_scaling_data(p)
    msg = str(e.value)
    assert "missing column(s) loss, D (or C)" in msg and "found columns: params, loss_value" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("cell, what", [("-3", "not positive"), ("0", "not positive"), ("nan", "NaN"),
                                        ("inf", "infinite"), ("", "NaN")])
def test_bad_values_name_row_and_column(tmp_path, cell, what):
    p = write(tmp_path / "bad.csv", f"N,D,loss\n1e6,1e8,4\n2e6,{cell},3.5\n")
    with pytest.raises(LmscaleError, match=rf"row 2 has D=.*\({what}\)"):
        load_scaling_data(p)


def test_non_numeric_value(tmp_path):
    p = write(tmp_path / "bad.csv", "N,D,loss\n1e6,1e8,four\n")
    with pytest.raises(LmscaleError, match=r"row 1 has loss='four'; expected a number"):
        load_scaling_data(p)


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(LmscaleError, match="not found"):
        load_scaling_data(tmp_path / "nope.csv")
    with pytest.raises(LmscaleError, match="is empty"):
        load_scaling_data(write(tmp_path / "e.csv", ""))


def test_too_few_points_for_the_form():
    d = ScalingData.from_arrays(N=[1e6, 2e6, 4e6], D=[1e8, 2e8, 4e8], loss=[4.0, 3.5, 3.0])
    with pytest.raises(LmscaleError, match=r"3 data point\(s\) for the chinchilla law; it needs at least 6 \(5 parameters"):
        ChinchillaLaw().fit(d)
    same_n = ScalingData.from_arrays(N=[1e6] * 8, D=np.geomspace(1e8, 1e10, 8), loss=np.linspace(4, 3, 8))
    with pytest.raises(LmscaleError, match="same N"):
        ChinchillaLaw().fit(same_n)


def test_arrays_validation():
    with pytest.raises(LmscaleError, match="row 2 has N=-1.0"):
        ScalingData.from_arrays(N=[1e6, -1], D=[1e8, 1e8], loss=[3, 3])
    with pytest.raises(LmscaleError, match="equal lengths"):
        ScalingData.from_arrays(N=[1e6, 2e6], D=[1e8], loss=[3, 3])


def _sweep(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    write(sweep / "results.csv",
          "run_id,trunk,family,N,N_nonembed,D,C,loss,best_loss,seed,status\n"
          "a-D1,a,base,1e6,8e5,1e8,6.1e14,4.0,3.9,0,done\n"
          "a-D2,a,base,1e6,8e5,2e8,1.22e15,3.8,3.7,0,done\n"
          "b-D1,b,base,2e6,1.6e6,1e8,1.22e15,3.7,3.6,0,done\n"
          "c-D1,c,base,4e6,3.2e6,1e8,2.4e15,,,0,failed\n")
    write(sweep / "curves.csv",
          "run_id,trunk,family,N,N_nonembed,D,C,loss\n"
          "a-D2,a,base,1e6,8e5,1e8,6.1e14,4.1\na-D2,a,base,1e6,8e5,2e8,1.22e15,3.8\n"
          "b-D1,b,base,2e6,1.6e6,5e7,6.1e14,3.9\nb-D1,b,base,2e6,1.6e6,1e8,1.22e15,3.7\n")
    return sweep


def test_sweep_directory_uses_done_rows_and_trunk_as_run(tmp_path):
    d = load_scaling_data(_sweep(tmp_path))
    assert len(d) == 3  # the failed run is left out
    assert list(d.run) == ["a", "a", "b"] and list(d.curve) == ["a-D1", "a-D2", "b-D1"]
    assert d.n_clusters == 2  # WSD branches of trunk "a" are one bootstrap cluster
    assert d.C[0] == pytest.approx(6.1e14) and not d.C_from_6ND
    np.testing.assert_allclose(d.N_nonembed, [8e5, 8e5, 1.6e6])


def test_sweep_curves(tmp_path):
    c = load_curves(_sweep(tmp_path))
    assert len(c) == 4 and len(set(c.curve)) == 2


def test_sweep_directory_without_results_says_how_to_export(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LmscaleError, match="results.csv") as e:
        load_scaling_data(empty)
    assert "lmscale sweep export" in str(e.value) or "export" in str(e.value)


def test_no_done_rows(tmp_path):
    sweep = tmp_path / "s"
    sweep.mkdir()
    write(sweep / "results.csv", "run_id,trunk,family,N,D,C,loss,status\nx,x,f,1e6,1e8,6e14,,running\n")
    with pytest.raises(LmscaleError, match="no finished runs .*statuses found: running"):
        load_scaling_data(sweep)


def test_curves_need_run_ids(tmp_path):
    p = write(tmp_path / "c.csv", "N,D,loss\n1e6,1e8,4\n")
    with pytest.raises(LmscaleError, match="run_id"):
        load_curves(p)


def _registered_sweep(tmp_path):
    """A sweep directory as `lmscale sweep run` leaves it before any export: a registry (two trunks,
    one WSD branch, one failed run) and each run's metrics.jsonl; no results.csv, no curves.csv."""
    import json
    from types import SimpleNamespace

    from lmscale.sweep.registry import REGISTRY, Registry

    sweep = tmp_path / "sweep"
    plans = [  # run_id, trunk, N, D, steps, final loss (None: failed)
        ("a-D1", "a", 1e6, 1e8, 10, 4.0), ("a-D2", "a", 1e6, 2e8, 20, 3.8), ("b-D1", "b", 2e6, 1e8, 10, 3.7),
        ("c-D1", "c", 4e6, 1e8, 10, None),
    ]
    reg = Registry(sweep / REGISTRY)
    runs = []
    for i, (run_id, trunk, N, D, steps, _) in enumerate(plans):
        plan = {"run_id": run_id, "trunk": trunk, "job": trunk, "family": "base", "seed": 0, "N": N, "N_nonembed": 0.8 * N,
                "D": D, "C": 6.1 * N * D, "C_6N": 6 * N * D, "budget": None, "steps": steps, "fork_step": None,
                "depth": 1, "width": 16, "heads": 2}
        runs.append(SimpleNamespace(run_id=run_id, job=trunk, order=i, row=lambda plan=plan: plan, config={}))
    reg.add_runs(runs)
    for run_id, _, _, _, steps, loss in plans:
        if loss is None:
            reg.set_run(run_id, "failed", error="boom")
            continue
        reg.set_run(run_id, "done", final_loss=loss, final_loss_se=0.01, best_loss=loss - 0.05)
        run_dir = sweep / "runs" / run_id
        run_dir.mkdir(parents=True)
        evals = [{"kind": "eval", "step": s, "val_loss": loss + 1.0 / (1 + s)} for s in (0, steps // 2, steps)]
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evals), encoding="utf-8")
    reg.close()
    return sweep


def _snapshot(directory):
    """Every path under `directory` with its bytes and modification time (directories: their mtime)."""
    return {p: (p.stat().st_mtime_ns, None if p.is_dir() else p.read_bytes()) for p in sorted(directory.rglob("*"))}


def test_loading_an_unexported_sweep_writes_nothing(tmp_path):
    sweep = _registered_sweep(tmp_path)
    before = _snapshot(sweep)
    assert not (sweep / "results.csv").exists() and not (sweep / "curves.csv").exists()
    d = load_scaling_data(sweep)
    c = load_curves(sweep)
    assert _snapshot(sweep) == before  # no file created, changed or touched: laws only read
    assert len(d) == 3 and list(d.run) == ["a", "a", "b"] and d.n_clusters == 2  # the failed run is left out
    np.testing.assert_allclose(d.loss, [4.0, 3.8, 3.7])
    assert len(c) == 6 and len(set(c.curve)) == 3  # step-0 evaluations are not points of a curve

    # The in-memory tables are those `lmscale sweep export` writes, cell for cell.
    from lmscale.sweep.results import write_results

    write_results(sweep)
    for loaded, exported in ((d, load_scaling_data(sweep)), (c, load_curves(sweep))):
        assert exported.source != loaded.source
        for col in ("N", "D", "C", "loss", "N_nonembed"):
            np.testing.assert_array_equal(getattr(loaded, col), getattr(exported, col))
        assert list(loaded.run) == list(exported.run) and list(loaded.curve) == list(exported.curve)
