import jax.numpy as jnp
import numpy as np

from lmscale.train import checkpoint


def state(v=1.0):
    return {"params": {"w": jnp.full((3, 4), float(v)), "b": jnp.arange(5.0)}, "opt_state": (jnp.int32(7), {"mu": jnp.ones(2)})}


def test_round_trip_and_rotation(tmp_path):
    d = tmp_path / "ck"
    for step in (10, 20, 30):
        checkpoint.save(d, step, state(step), {"loader_position": step}, keep=2)
    assert checkpoint.list_steps(d) == [20, 30]
    ck = checkpoint.load_latest(d, state())
    assert ck.step == 30 and ck.meta["loader_position"] == 30
    np.testing.assert_array_equal(ck.state["params"]["w"], np.full((3, 4), 30.0))
    assert int(ck.state["opt_state"][0]) == 7


def test_truncated_and_corrupted_fall_back_with_warning(tmp_path):
    d = tmp_path / "ck"
    checkpoint.save(d, 1, state(1.0), keep=5)
    checkpoint.save(d, 2, state(2.0), keep=5)
    checkpoint.save(d, 3, state(3.0), keep=5)
    npz3 = d / "step-00000003.npz"
    npz3.write_bytes(npz3.read_bytes()[:100])  # truncated
    npz2 = d / "step-00000002.npz"
    raw = bytearray(npz2.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # a flipped byte
    npz2.write_bytes(bytes(raw))
    warnings = []
    ck = checkpoint.load_latest(d, state(), warn=warnings.append)
    assert ck.step == 1
    assert len(warnings) == 2 and "truncated" in warnings[0] and "checksum" in warnings[1]
    np.testing.assert_array_equal(ck.state["params"]["w"], np.full((3, 4), 1.0))


def test_json_marker_is_the_commit(tmp_path):
    d = tmp_path / "ck"
    checkpoint.save(d, 5, state(), keep=3)
    (d / "step-00000009.npz").write_bytes(b"half-written, no marker")  # killed before its JSON
    assert checkpoint.list_steps(d) == [5]
    assert checkpoint.load_latest(d, state()).step == 5


def test_structure_mismatch_is_rejected(tmp_path):
    d = tmp_path / "ck"
    checkpoint.save(d, 1, state(), keep=3)
    other = {"params": {"w": jnp.zeros((2, 2))}}
    warnings = []
    assert checkpoint.load_latest(d, other, warn=warnings.append) is None
    assert "leaves" in warnings[0]
