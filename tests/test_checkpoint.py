"""Checkpoints: atomic writes, versioning, no pickle, and clear errors for every broken file.

Every test that breaks a file checks two things: the error is a CheckpointError whose message
names the problem and the path, and the previous good checkpoint still loads bit for bit.
"""

import io
import json
import os
import zipfile

import numpy as np
import pytest

import npcell
from npcell.errors import CheckpointError
from npcell.training.checkpoint import (
    FORMAT_VERSION,
    META_KEY,
    VERSION_KEY,
    load_cell,
    load_cell_meta,
    load_checkpoint,
    save_cell,
    save_checkpoint,
)


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {"param/W": rng.standard_normal((3, 4)), "adam/m/W": rng.standard_normal((3, 4)),
            "step_rng": np.arange(5, dtype=np.int64), "f32": rng.standard_normal(7).astype("f4")}


def _assert_same(arrays, loaded):
    assert sorted(arrays) == sorted(loaded)
    for name, a in arrays.items():
        assert loaded[name].dtype == a.dtype, name
        np.testing.assert_array_equal(loaded[name], a)


def test_round_trip_arrays_and_meta(tmp_path):
    arrays = _arrays()
    meta = {"step": 12, "lr": 1e-3, "nested": {"kind": "wmc", "sizes": [2, 8]},
            "np_scalar": np.float32(0.5), "np_int": np.int64(3)}
    path = save_checkpoint(tmp_path / "ckpt.npz", arrays, meta)
    assert path == tmp_path / "ckpt.npz"
    loaded, meta2 = load_checkpoint(path)
    _assert_same(arrays, loaded)
    assert meta2 == {"step": 12, "lr": 1e-3, "nested": {"kind": "wmc", "sizes": [2, 8]},
                     "np_scalar": 0.5, "np_int": 3}
    # No temp files left behind, and the file is a plain npz readable without pickle.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]
    with np.load(path, allow_pickle=False) as raw:
        assert int(raw[VERSION_KEY]) == FORMAT_VERSION
        assert json.loads(str(raw[META_KEY]))["step"] == 12


def test_cell_round_trip_every_kind(tmp_path):
    rng = np.random.default_rng(1)
    for kind in sorted(npcell.CELLS):
        for dtype in ("float64", "float32"):
            cell = npcell.make_cell(kind, 3, 5, dtype=dtype, seed=7)
            for p in cell.params.values():  # not the init values: make_cell(seed=0) differs
                p[...] = rng.standard_normal(p.shape)
            path = save_cell(tmp_path / f"{kind}-{dtype}.npz", cell, extra_meta={"epoch": 4})
            back = load_cell(path)
            assert (back.kind, back.input_size, back.hidden_size) == (kind, 3, 5)
            assert back.dtype == cell.dtype and back.options == cell.options
            _assert_same(cell.params, back.params)
            assert load_cell_meta(path) == {"epoch": 4}
            x = rng.standard_normal((4, 2, 3)).astype(dtype)
            np.testing.assert_array_equal(npcell.forward(back, x)[0], npcell.forward(cell, x)[0])


def test_cell_options_survive(tmp_path):
    cell = npcell.make_cell("wmc", 2, 3, cell_bias=True, diagonal=True, forget_bias=1.0)
    back = load_cell(save_cell(tmp_path / "c.npz", cell))
    assert back.options == {"forget_bias": 1.0, "diagonal": True, "cell_bias": True}
    assert back.params["W_ic"].shape == (3,) and "b_oc" in back.params


# ----- broken files ---------------------------------------------------------------------------
@pytest.fixture
def good(tmp_path):
    """A good checkpoint at tmp_path/ckpt.npz and the arrays it holds."""
    arrays = _arrays()
    save_checkpoint(tmp_path / "ckpt.npz", arrays, {"step": 1})
    return tmp_path / "ckpt.npz", arrays


def _expect(path, *words):
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, message
    return message


def test_missing_file(tmp_path):
    _expect(tmp_path / "nope.npz", "does not exist")
    _expect(tmp_path, "is a directory")


@pytest.mark.parametrize("keep", [0, 10, 100, 0.5, 0.9, -1])
def test_truncated_file(good, tmp_path, keep):
    path, _ = good
    data = path.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else (keep % len(data))
    broken = tmp_path / "cut.npz"
    broken.write_bytes(data[:cut])
    _expect(broken, "truncated or corrupt")


def test_corrupt_bytes_inside_an_array(good, tmp_path):
    """Flip bytes in the middle of a stored array: the zip CRC check catches it."""
    path, arrays = good
    data = bytearray(path.read_bytes())
    raw = arrays["param/W"].tobytes()
    start = bytes(data).index(raw[:16])
    data[start + 3] ^= 0xFF
    broken = tmp_path / "flipped.npz"
    broken.write_bytes(bytes(data))
    _expect(broken, "truncated or corrupt")


def test_not_an_npz(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("this is not an archive\n" * 20)
    _expect(text, "truncated or corrupt")
    npy = tmp_path / "one.npz"
    with open(npy, "wb") as f:
        np.save(f, np.arange(3))
    _expect(npy, "single .npy")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.ones(3))
    _expect(foreign, "not an npcell checkpoint")


def test_pickled_object_array_is_refused(tmp_path):
    path = tmp_path / "pickle.npz"
    np.savez(path, **{VERSION_KEY: np.array(FORMAT_VERSION), META_KEY: np.array("{}"),
                      "evil": np.array([{"a": 1}], dtype=object)})
    _expect(path, "truncated or corrupt", "pickle")


def test_wrong_version(tmp_path):
    path = tmp_path / "future.npz"
    np.savez(path, **{VERSION_KEY: np.array(FORMAT_VERSION + 1), META_KEY: np.array("{}")})
    _expect(path, f"version {FORMAT_VERSION + 1}", f"reads version {FORMAT_VERSION}")
    bad_meta = tmp_path / "meta.npz"
    np.savez(bad_meta, **{VERSION_KEY: np.array(FORMAT_VERSION), META_KEY: np.array("{oops")})
    _expect(bad_meta, "not valid JSON")


def test_wrong_shape_for_cell(tmp_path):
    cell = npcell.make_cell("lstm", 3, 4)
    path = save_cell(tmp_path / "c.npz", cell)
    arrays, meta = load_checkpoint(path)
    arrays["param/W_ih"] = np.zeros((4, 5))  # not (H, H)
    save_checkpoint(tmp_path / "shape.npz", arrays, meta)
    with pytest.raises(CheckpointError, match=r"W_ih has shape \(4, 5\).*needs \(4, 4\)"):
        load_cell(tmp_path / "shape.npz")
    del arrays["param/W_ih"]
    save_checkpoint(tmp_path / "missing.npz", arrays, meta)
    with pytest.raises(CheckpointError, match=r"missing \['W_ih'\]"):
        load_cell(tmp_path / "missing.npz")
    arrays, meta = load_checkpoint(path)
    meta["cell"]["kind"] = "no_such_cell"
    save_checkpoint(tmp_path / "kind.npz", arrays, meta)
    with pytest.raises(CheckpointError, match="no_such_cell"):
        load_cell(tmp_path / "kind.npz")
    arrays, meta = load_checkpoint(path)
    arrays["param/b_f"] = arrays["param/b_f"].astype("float32")
    save_checkpoint(tmp_path / "dtype.npz", arrays, meta)
    with pytest.raises(CheckpointError, match="b_f is stored as float32"):
        load_cell(tmp_path / "dtype.npz")
    save_checkpoint(tmp_path / "nocell.npz", {"a": np.ones(2)}, {"step": 1})
    with pytest.raises(CheckpointError, match="holds no cell"):
        load_cell(tmp_path / "nocell.npz")


def test_bad_things_to_save(tmp_path):
    with pytest.raises(CheckpointError, match="dtype object"):
        save_checkpoint(tmp_path / "a.npz", {"x": np.array([None, 1], dtype=object)}, {})
    with pytest.raises(CheckpointError, match="not JSON-serialisable"):
        save_checkpoint(tmp_path / "b.npz", {}, {"f": lambda: 0})
    with pytest.raises(CheckpointError, match="must be a non-empty string"):
        save_checkpoint(tmp_path / "c.npz", {VERSION_KEY: np.ones(1)}, {})
    with pytest.raises(CheckpointError, match="does not exist"):
        save_checkpoint(tmp_path / "no" / "dir" / "d.npz", {}, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing half-written anywhere


# ----- a failed write never damages the previous checkpoint -----------------------------------
def test_failed_replace_keeps_previous(good, tmp_path, monkeypatch):
    """The process dies between writing the temp file and renaming it (os.replace raises)."""
    path, arrays = good
    before = path.read_bytes()

    def dying_replace(src, dst):
        raise KeyboardInterrupt("killed between write and rename")

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, _arrays(seed=1), {"step": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    loaded, meta = load_checkpoint(path)
    _assert_same(arrays, loaded)
    assert meta == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]  # temp file removed


def test_failed_write_keeps_previous(good, tmp_path, monkeypatch):
    """The disk fills up (or the process dies) half way through writing the archive."""
    path, arrays = good
    before = path.read_bytes()
    real_savez = np.savez

    def half_written(file, **payload):
        buffer = io.BytesIO()
        real_savez(buffer, **payload)
        file.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", half_written)
    with pytest.raises(CheckpointError, match="No space left.*previous checkpoint.*unchanged"):
        save_checkpoint(path, _arrays(seed=1), {"step": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    _assert_same(arrays, load_checkpoint(path)[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]


def test_truncated_temp_file_never_becomes_the_checkpoint(good, tmp_path, monkeypatch):
    """Simulate a kill mid-write: the temp file is truncated and the rename never happens.
    Whatever is left in the directory, loading the checkpoint path gives the last good one."""
    path, arrays = good
    seen = {}
    real_replace = os.replace

    def kill_after_truncating(src, dst):
        seen["tmp"] = src
        with open(src, "r+b") as f:
            f.truncate(os.path.getsize(src) // 3)
        raise SystemExit("killed")

    monkeypatch.setattr(os, "replace", kill_after_truncating)
    with pytest.raises(SystemExit):
        save_checkpoint(path, _arrays(seed=2), {"step": 3})
    monkeypatch.setattr(os, "replace", real_replace)
    assert os.path.dirname(seen["tmp"]) == str(tmp_path)  # same directory: rename is atomic
    _assert_same(arrays, load_checkpoint(path)[0])
    # A later save works and replaces it.
    save_checkpoint(path, _arrays(seed=3), {"step": 4})
    assert load_checkpoint(path)[1] == {"step": 4}


def test_overwrite_is_atomic_for_a_concurrent_reader(good, monkeypatch):
    """While the new file is being written, the path still holds the complete old archive."""
    path, arrays = good
    real_replace = os.replace
    observed = {}

    def check_then_replace(src, dst):
        observed["old_still_valid"] = zipfile.is_zipfile(dst)
        observed["old"] = load_checkpoint(dst)[1]
        observed["new_complete"] = zipfile.is_zipfile(src)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", check_then_replace)
    save_checkpoint(path, _arrays(seed=5), {"step": 9})
    assert observed == {"old_still_valid": True, "old": {"step": 1}, "new_complete": True}
    assert load_checkpoint(path)[1] == {"step": 9}


# ----- a training run killed while writing a checkpoint ----------------------------------------
class _Killed(BaseException):
    """Stands in for SIGKILL / power loss: not an Exception, so nothing catches it on the way."""


def _tiny_config():
    from npcell.training import TrainConfig

    return TrainConfig(task="adding", task_options={"T": 8, "n_train": 48, "n_test": 16},
                       cell="wmc", hidden=6, batch=8, epochs=2, steps_per_epoch=5,
                       eval_batch=16, dtype="float64", optimizer="adam", lr=1e-2,
                       checkpoint_every=2, log_every=2, seed=3)


def _records(history):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in history]


@pytest.mark.parametrize("how", ["truncated temp file", "rename fails"])
def test_training_killed_mid_checkpoint_write_resumes_to_the_same_result(tmp_path, monkeypatch,
                                                                          how):
    """Kill a run while it writes its 3rd checkpoint (end of epoch 1, step 5): the temp file is
    truncated (or the rename never happens) and the process dies. The checkpoint on disk is
    still the one of step 4; it loads, and resuming from it ends bit for bit where an
    uninterrupted run ends."""
    train_module = pytest.importorskip("npcell.training")
    config = _tiny_config()
    reference = train_module.train(config, tmp_path / "reference", progress=False)
    ref_arrays, ref_meta = load_checkpoint(tmp_path / "reference" / "checkpoint.npz")

    run_dir = tmp_path / "killed"
    real_replace = os.replace
    calls = {"n": 0}

    def replace_then_die_on_third(src, dst):
        if not str(dst).endswith("checkpoint.npz"):
            return real_replace(src, dst)
        calls["n"] += 1
        if calls["n"] < 3:
            return real_replace(src, dst)
        if how == "truncated temp file":
            with open(src, "r+b") as f:
                f.truncate(os.path.getsize(src) // 2)
        raise _Killed(f"killed while writing {dst}")

    monkeypatch.setattr(os, "replace", replace_then_die_on_third)
    with pytest.raises(_Killed):
        train_module.train(config, run_dir, progress=False)
    monkeypatch.setattr(os, "replace", real_replace)

    arrays, meta = load_checkpoint(run_dir / "checkpoint.npz")  # the last good one loads
    assert meta["position"]["step"] == 4
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]

    resumed = train_module.train(config, run_dir, progress=False)
    assert resumed.resumed_from == 4
    assert resumed.steps == reference.steps == 10
    final_arrays, final_meta = load_checkpoint(run_dir / "checkpoint.npz")
    _assert_same(ref_arrays, final_arrays)  # parameters and optimiser state, bit for bit
    # everything but the wall-clock training time (which only feeds the steps/s report)
    def position(meta):
        return {k: v for k, v in meta["position"].items() if k != "train_seconds"}

    assert position(final_meta) == position(ref_meta)
    assert final_meta["position"]["train_seconds"] > 0
    assert _records(resumed.history) == _records(reference.history)
    assert resumed.final == reference.final
