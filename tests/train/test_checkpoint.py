import json
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lmscale.train import checkpoint


def w_of(v):
    # Large and varied enough that its data, not Orbax's metadata, fills the largest file.
    return float(v) + np.arange(64 * 512, dtype=np.float32).reshape(64, 512) / 1000


def state(v=1.0):
    return {"params": {"w": jnp.asarray(w_of(v)), "b": jnp.arange(5.0)}, "opt_state": (jnp.int32(7), {"mu": jnp.ones(2)})}


def template():
    return jax.eval_shape(lambda: state())


def test_round_trip_and_rotation(tmp_path):
    d = tmp_path / "ck"
    for step in (10, 20, 30):
        checkpoint.save(d, step, state(step), {"loader_position": step}, keep=2)
    assert checkpoint.list_steps(d) == [20, 30]
    assert sorted(p.name for p in d.iterdir()) == ["step-00000020", "step-00000020.json", "step-00000030",
                                                  "step-00000030.json"]
    ck = checkpoint.load_latest(d, template())
    assert ck.step == 30 and ck.meta["loader_position"] == 30
    np.testing.assert_array_equal(ck.state["params"]["w"], w_of(30))
    assert int(ck.state["opt_state"][0]) == 7 and ck.state["opt_state"][0].dtype == jnp.int32
    assert jax.tree.structure(ck.state) == jax.tree.structure(state())


def _flip_middle_byte(path):
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def _largest(files):
    return max(files, key=lambda f: f.stat().st_size)


def test_the_checksum_decides_orbax_alone_would_restore_a_flipped_byte(tmp_path):
    """A flipped byte in an array file: Orbax restores it without complaint and with wrong values,
    so it is the marker's sha256 that makes the store fall back to the previous checkpoint."""
    import orbax.checkpoint as ocp

    d = tmp_path / "ck"
    checkpoint.save(d, 1, state(1.0), keep=5)
    checkpoint.save(d, 2, state(2.0), keep=5)
    victim = _largest(checkpoint.array_files(d, 2))
    _flip_middle_byte(victim)
    sharded = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=jax.sharding.SingleDeviceSharding(
        jax.devices()[0])), template())
    raw = ocp.Checkpointer(ocp.StandardCheckpointHandler()).restore((d / "step-00000002").absolute(),
                                                                     args=ocp.args.StandardRestore(sharded))
    assert not np.array_equal(np.asarray(raw["params"]["w"]), w_of(2))  # silently wrong
    warnings = []
    ck = checkpoint.load_latest(d, template(), warn=warnings.append)
    assert ck.step == 1 and len(warnings) == 1 and "sha256" in warnings[0] and "step 2" in warnings[0]
    np.testing.assert_array_equal(ck.state["params"]["w"], w_of(1))


def test_truncated_missing_and_torn_markers_fall_back_with_warnings(tmp_path):
    d = tmp_path / "ck"
    for step in (1, 2, 3, 4):
        checkpoint.save(d, step, state(float(step)), keep=5)
    f4 = _largest(checkpoint.array_files(d, 4))
    f4.write_bytes(f4.read_bytes()[:10])  # truncated
    _largest(checkpoint.array_files(d, 3)).unlink()  # missing
    (d / "step-00000002.json").write_text('{"step": 2, "form')  # torn marker
    warnings = []
    ck = checkpoint.load_latest(d, template(), warn=warnings.append)
    assert ck.step == 1
    assert len(warnings) == 3
    assert "truncated" in warnings[0] and "missing" in warnings[1] and "unreadable" in warnings[2]


def test_marker_is_the_commit_and_temporaries_are_cleaned(tmp_path):
    d = tmp_path / "ck"
    checkpoint.save(d, 5, state(), keep=3)
    (d / "step-00000009").mkdir()  # a save killed before its marker
    (d / "step-00000009" / "d").write_bytes(b"half-written")
    (d / "step-00000011.orbax-checkpoint-tmp-123").mkdir()  # Orbax's own temporary
    (d / ".step-00000011.json.tmp").write_text("{")
    assert checkpoint.list_steps(d) == [5]
    assert checkpoint.load_latest(d, template()).step == 5
    checkpoint.clean_temporaries(d)
    assert sorted(p.name for p in d.iterdir()) == ["step-00000005", "step-00000005.json"]


def test_structure_mismatch_is_rejected(tmp_path):
    d = tmp_path / "ck"
    checkpoint.save(d, 1, state(), keep=3)
    other = {"params": {"w": jax.ShapeDtypeStruct((2, 2), jnp.float32)}}
    warnings = []
    assert checkpoint.load_latest(d, other, warn=warnings.append) is None
    assert "leaves" in warnings[0]
    wrong_shape = jax.eval_shape(lambda: {**state(), "params": {"w": jnp.zeros((64, 511)), "b": jnp.zeros(5)}})
    with pytest.raises(checkpoint.CheckpointError, match=r"\(64, 512\).*does not match.*\(64, 511\)"):
        checkpoint.load(d, 1, wrong_shape)


def test_copy_for_a_branch_is_a_verified_checkpoint(tmp_path):
    checkpoint.save(tmp_path / "trunk", 7, state(7.0), keep=2)
    checkpoint.copy(tmp_path / "trunk", 7, tmp_path / "branch")
    ck = checkpoint.load(tmp_path / "branch", 7, template())
    np.testing.assert_array_equal(ck.state["params"]["w"], w_of(7))


def test_checkpoints_of_the_npz_format_before_orbax_still_load(tmp_path):
    """Runs written before the Orbax store keep working: their npz checkpoints are verified and read."""
    import io

    from lmscale.fileio import atomic_write_json, sha256_bytes

    d = tmp_path / "ck"
    d.mkdir()
    flat, _ = jax.tree_util.tree_flatten_with_path(state(3.0))
    buf = io.BytesIO()
    np.savez(buf, **{f"leaf_{i:05d}": np.asarray(x) for i, (_, x) in enumerate(flat)})
    data = buf.getvalue()
    (d / "step-00000003.npz").write_bytes(data)
    atomic_write_json(d / "step-00000003.json", {
        "step": 3, "npz_bytes": len(data), "npz_sha256": sha256_bytes(data),
        "leaves": [{"path": jax.tree_util.keystr(p), "shape": list(np.shape(x)), "dtype": np.asarray(x).dtype.str}
                   for p, x in flat]})
    ck = checkpoint.load_latest(d, template())
    assert ck.step == 3
    np.testing.assert_array_equal(ck.state["params"]["w"], w_of(3))
    # A valid archive of the same size with other values: only the marker's sha256 can tell.
    buf = io.BytesIO()
    np.savez(buf, **{f"leaf_{i:05d}": np.asarray(x) + 1 for i, (_, x) in enumerate(flat)})
    assert len(buf.getvalue()) == len(data)
    (d / "step-00000003.npz").write_bytes(buf.getvalue())
    warnings = []
    assert checkpoint.load_latest(d, template(), warn=warnings.append) is None and "checksum" in warnings[0]


KILLED_SAVER = """
import os, sys
import jax.numpy as jnp
from lmscale.train import checkpoint
d = sys.argv[1]
checkpoint.save(d, 1, {"w": jnp.full((3, 40), 1.0)}, keep=5)
print("saved 1", flush=True)
os.environ[checkpoint.SAVE_DELAY_ENV] = "30"  # the second save sleeps between its arrays and its marker
checkpoint.save(d, 2, {"w": jnp.full((3, 40), 2.0)}, keep=5)
print("saved 2", flush=True)
"""


def test_sigkill_between_the_arrays_and_the_marker_keeps_the_previous_checkpoint(tmp_path):
    """A deterministic kill inside the save: the arrays of step 2 are on disk, its marker is not."""
    d = tmp_path / "ck"
    p = subprocess.Popen([sys.executable, "-c", KILLED_SAVER, str(d)], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (d / "step-00000002" / "_CHECKPOINT_METADATA").exists() and p.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert (d / "step-00000002").is_dir(), "the second save never wrote its arrays"
        p.send_signal(signal.SIGKILL)
    finally:
        p.wait(timeout=60)
    assert not (d / "step-00000002.json").exists()
    assert checkpoint.list_steps(d) == [1]
    ck = checkpoint.load_latest(d, {"w": jax.ShapeDtypeStruct((3, 40), jnp.float32)})
    assert ck.step == 1
    np.testing.assert_array_equal(ck.state["w"], np.full((3, 40), 1.0))
    checkpoint.clean_temporaries(d)
    assert not (d / "step-00000002").exists()
    meta = json.loads((d / "step-00000001.json").read_text())
    assert meta["format"] == checkpoint.FORMAT and all(len(v["sha256"]) == 64 for v in meta["files"].values())


def test_a_full_disk_in_orbax_is_an_os_error_and_leaves_nothing_half_written(tmp_path, monkeypatch):
    """Orbax's TensorStore writer reports ENOSPC as a ValueError with the OS error code (as it did on
    a 600 kB tmpfs); the store raises the OSError it is and removes the partial step."""
    import errno

    d = tmp_path / "ck"
    checkpoint.save(d, 1, state(1.0), keep=5)

    class Full:
        def save(self, path, args):
            path.mkdir(parents=True)
            (path.parent / f"{path.name}.orbax-checkpoint-tmp-1").mkdir()
            raise ValueError("RESOURCE_EXHAUSTED: Error writing ...: No space left on device [os_error_code='28']")

    monkeypatch.setattr(checkpoint, "_checkpointer", Full)
    with pytest.raises(OSError) as err:
        checkpoint.save(d, 2, state(2.0), keep=5)
    assert err.value.errno == errno.ENOSPC
    assert sorted(p.name for p in d.iterdir()) == ["step-00000001", "step-00000001.json"]
    monkeypatch.undo()
    assert checkpoint.load_latest(d, template()).step == 1
