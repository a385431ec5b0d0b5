"""Checkpoints: atomic, versioned, pickle-free ``.npz`` files.

A checkpoint is one NumPy ``.npz`` archive holding

* the arrays you pass (parameters, optimiser moments, RNG-free data), each under its own name,
* ``__npcell_format__``: the format version (an int, :data:`FORMAT_VERSION`),
* ``__npcell_meta__``: a JSON string with everything else (cell kind and sizes, step counter,
  options, ...), so nothing is ever pickled and ``np.load(..., allow_pickle=False)`` reads it.

Writing is atomic: the archive goes to a temporary file in the *same directory*, is flushed and
``fsync``-ed, then ``os.replace``-d over the target. A crash, a full disk or Ctrl-C at any moment
leaves either the previous checkpoint or the new one, never a half-written file under the
target's name. Reading checks the format, the version and every array; a missing, truncated,
corrupt, foreign or wrong-version file raises :class:`~npcell.errors.CheckpointError` naming the
problem and the path::

    path = npcell.training.checkpoint.save_cell("run/cell.npz", cell, extra_meta={"step": 1200})
    cell2 = npcell.training.checkpoint.load_cell("run/cell.npz")

    save_checkpoint("run/ckpt.npz", {"param/W_ix": W, "adam/m/W_ix": m}, {"step": 1200})
    arrays, meta = load_checkpoint("run/ckpt.npz")

Training code that stores a cell together with optimiser state uses :func:`cell_arrays_meta`
and :func:`cell_from_arrays_meta` to put the cell's parameters under the ``param/`` prefix.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy

from ..backend import to_numpy
from ..cells import make_cell
from ..errors import ArgumentTypeError, CheckpointError, NpcellError, key_difference, shape_str

FORMAT_VERSION = 1
VERSION_KEY = "__npcell_format__"
META_KEY = "__npcell_meta__"
PARAM_PREFIX = "param/"
_RESERVED_PREFIX = "__npcell"


# ----- the two primitives --------------------------------------------------------------------
def save_checkpoint(path, arrays: dict, meta: dict | None = None) -> Path:
    """Write ``arrays`` (name -> array) and ``meta`` (a JSON-able dict) to ``path``, atomically.

    Arrays may be NumPy or CuPy (copied to the host); object arrays are refused (no pickle).
    Returns the path written. The previous file at ``path``, if any, stays intact until the new
    one is complete on disk.
    """
    path = Path(path)
    payload = _payload(path, arrays, {} if meta is None else meta)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise CheckpointError(
            f"cannot write checkpoint {path}: directory {directory} does not exist"
        )
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as handle:
            numpy.savez(handle, **payload)
            handle.flush()
            os.fsync(handle.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp_name, path)  # atomic on POSIX and Windows (same filesystem)
    except BaseException as err:  # including KeyboardInterrupt: never leave the temp file
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        if isinstance(err, OSError) and not isinstance(err, NpcellError):
            raise CheckpointError(
                f"could not write checkpoint {path}: {err}; the previous checkpoint (if any) "
                "is unchanged"
            ) from err
        raise
    _fsync_directory(directory)
    return path


def load_checkpoint(path) -> tuple[dict, dict]:
    """Read a checkpoint written by :func:`save_checkpoint`: ``(arrays, meta)``.

    ``arrays`` maps names to NumPy arrays (host memory); ``meta`` is the JSON dict. Raises
    :class:`CheckpointError` for a missing, truncated, corrupt, non-npz, non-npcell or
    wrong-version file.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path} (file does not exist)")
    if path.is_dir():
        raise CheckpointError(f"checkpoint path {path} is a directory, not an .npz file")
    try:
        archive = numpy.load(path, allow_pickle=False)
        if not isinstance(archive, numpy.lib.npyio.NpzFile):
            raise CheckpointError(
                f"{path} is a single .npy array, not an npcell checkpoint (.npz archive)"
            )
        with archive:
            names = list(archive.files)
            if VERSION_KEY not in names:
                raise CheckpointError(
                    f"{path} is an .npz archive but not an npcell checkpoint "
                    f"(no {VERSION_KEY!r} entry; it holds {sorted(names)[:8]})"
                )
            version = _read_version(archive[VERSION_KEY], path)
            if version != FORMAT_VERSION:
                raise CheckpointError(
                    f"{path} has checkpoint format version {version}; this npcell reads "
                    f"version {FORMAT_VERSION} (re-save it with the npcell that wrote it, "
                    "or upgrade npcell)"
                )
            if META_KEY not in names:
                raise CheckpointError(f"{path} is missing its metadata entry {META_KEY!r}")
            meta = _read_meta(archive[META_KEY], path)
            arrays = {
                name: archive[name] for name in names if not name.startswith(_RESERVED_PREFIX)
            }
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, TypeError) as err:
        # BadZipFile / EOFError: truncated or not a zip; ValueError: a pickled (object) array,
        # a bad .npy header, or a zip CRC failure inside one array; OSError: unreadable.
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(err).__name__}: {err}); "
            "use an earlier checkpoint"
        ) from err
    return arrays, meta


# ----- cells -----------------------------------------------------------------------------------
def cell_arrays_meta(cell, prefix: str = PARAM_PREFIX) -> tuple[dict, dict]:
    """A cell's parameters as ``{prefix + name: host array}`` and its description as a dict
    (kind, input_size, hidden_size, dtype, options): what :func:`cell_from_arrays_meta` needs."""
    arrays = {prefix + name: to_numpy(p) for name, p in cell.params.items()}
    meta = {
        "kind": cell.kind,
        "input_size": int(cell.input_size),
        "hidden_size": int(cell.hidden_size),
        "dtype": cell.dtype.name,
        "options": dict(cell.options),
    }
    return arrays, meta


def cell_from_arrays_meta(arrays: dict, cell_meta: dict, *, prefix: str = PARAM_PREFIX,
                          backend=None, path="<checkpoint>"):
    """Rebuild the cell described by ``cell_meta`` and fill it with ``arrays[prefix + name]``.

    Every parameter must be present with exactly the shape and dtype the rebuilt cell expects;
    anything else raises :class:`CheckpointError` naming the parameter.
    """
    if not isinstance(cell_meta, dict):
        raise CheckpointError(
            f"{path}: cell metadata must be a dict; got {type(cell_meta).__name__}"
        )
    needed = ("kind", "input_size", "hidden_size", "dtype")
    missing = [k for k in needed if k not in cell_meta]
    if missing:
        raise CheckpointError(f"{path}: cell metadata lacks {missing}; it has {sorted(cell_meta)}")
    options = cell_meta.get("options") or {}
    try:
        cell = make_cell(cell_meta["kind"], cell_meta["input_size"], cell_meta["hidden_size"],
                         dtype=cell_meta["dtype"], seed=0, backend=backend, **options)
    except NpcellError as err:
        raise CheckpointError(f"{path}: cannot rebuild the cell it describes: {err}") from err
    stored = {name[len(prefix):]: a for name, a in arrays.items() if name.startswith(prefix)}
    difference = key_difference(cell.params, stored)
    if difference:
        raise CheckpointError(
            f"{path}: parameters do not match a {cell.kind} cell with options {cell.options}: "
            f"{difference}"
        )
    for name, target in cell.params.items():
        value = stored[name]
        if tuple(value.shape) != tuple(target.shape):
            raise CheckpointError(
                f"{path}: parameter {name} has shape {shape_str(value.shape)} but a "
                f"{cell.kind} cell with X={cell.input_size}, H={cell.hidden_size} needs "
                f"{shape_str(target.shape)}"
            )
        if value.dtype != target.dtype:
            raise CheckpointError(
                f"{path}: parameter {name} is stored as {value.dtype} but the checkpoint says "
                f"dtype={cell.dtype.name}"
            )
    cell.set_params(stored)
    return cell


def save_cell(path, cell, extra_meta: dict | None = None) -> Path:
    """Save a cell (parameters + kind, sizes, dtype, options) atomically; ``extra_meta`` (a JSON
    dict, e.g. ``{"step": 1200}``) is stored beside it and returned by :func:`load_cell_meta`."""
    arrays, cell_meta = cell_arrays_meta(cell)
    meta = {"cell": cell_meta, "extra": {} if extra_meta is None else extra_meta}
    return save_checkpoint(path, arrays, meta)


def load_cell(path, *, backend=None):
    """Load a cell saved by :func:`save_cell` (on ``backend``, default the current one)."""
    arrays, meta = load_checkpoint(path)
    if "cell" not in meta:
        raise CheckpointError(
            f"{path} is an npcell checkpoint but holds no cell (meta keys: {sorted(meta)})"
        )
    return cell_from_arrays_meta(arrays, meta["cell"], backend=backend, path=path)


def load_cell_meta(path) -> dict:
    """The ``extra_meta`` dict stored by :func:`save_cell`."""
    return load_checkpoint(path)[1].get("extra", {})


# ----- helpers ---------------------------------------------------------------------------------
def _payload(path, arrays, meta) -> dict:
    if not isinstance(arrays, dict):
        raise CheckpointError(
            f"arrays for {path} must be a dict name -> array; got {type(arrays).__name__}"
        )
    if not isinstance(meta, dict):
        raise CheckpointError(f"meta for {path} must be a dict; got {type(meta).__name__}")
    payload = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not name or name.startswith(_RESERVED_PREFIX):
            raise CheckpointError(
                f"array name {name!r} for {path} must be a non-empty string not starting "
                f"with {_RESERVED_PREFIX!r}"
            )
        try:
            host = numpy.asarray(to_numpy(value))
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"array {name!r} for {path} is not an array: {err}") from err
        if host.dtype.hasobject:
            raise CheckpointError(
                f"array {name!r} for {path} has dtype object; checkpoints never pickle, store "
                "numbers (or put small values in meta)"
            )
        payload[name] = host
    try:
        text = json.dumps(meta, default=_json_default, allow_nan=True)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"meta for {path} is not JSON-serialisable: {err}") from err
    payload[VERSION_KEY] = numpy.array(FORMAT_VERSION, dtype=numpy.int64)
    payload[META_KEY] = numpy.array(text)  # 0-d unicode array: no pickle needed
    return payload


def _json_default(value):
    """numpy scalars and small arrays in meta become plain Python numbers and lists."""
    if isinstance(value, numpy.generic):
        return value.item()
    if isinstance(value, numpy.ndarray) and value.size <= 1024:
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise ArgumentTypeError(f"{type(value).__name__} {value!r:.60} is not JSON-serialisable")


def _read_version(entry, path) -> int:
    if entry.shape != () or entry.dtype.kind not in "iu":
        raise CheckpointError(
            f"{path}: format version entry has dtype {entry.dtype} shape {shape_str(entry.shape)}; "
            "expected one integer"
        )
    return int(entry)


def _read_meta(entry, path) -> dict:
    if entry.dtype.kind != "U" or entry.size != 1:
        raise CheckpointError(f"{path}: metadata entry is not one JSON string ({entry.dtype})")
    try:
        meta = json.loads(str(entry.reshape(())))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: metadata is not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: metadata must be a JSON object; got {type(meta).__name__}")
    return meta


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path):
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = [
    "FORMAT_VERSION",
    "cell_arrays_meta",
    "cell_from_arrays_meta",
    "load_cell",
    "load_cell_meta",
    "load_checkpoint",
    "save_cell",
    "save_checkpoint",
]
