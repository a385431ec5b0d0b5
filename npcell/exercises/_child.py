"""The child side of the sandbox: runs ONE student file on the inputs the grader wrote.

Started by :mod:`npcell.exercises.sandbox` as ``python -I -S _child.py STUDENT.py WORKDIR
NUMPY_PARENT`` in a fresh interpreter, usually as another user in its own namespaces (so nothing
the student does can reach the grading process). This file and ``fd_functions.py`` are copied
into WORKDIR: they are all of npcell the child gets (standard library and NumPy only). It reads
``WORKDIR/job.json`` and ``WORKDIR/inputs.npz``, calls the student's function once per case on
fresh copies of every input, and writes what came back to ``WORKDIR/outputs.npz`` (arrays only,
read back with ``allow_pickle=False``) and ``WORKDIR/status.json``. It computes no score: the
parent compares the arrays with its own numerical derivatives. Whatever this process writes or
prints is data for the parent, never a verdict.

What keeps npcell out of reach is the operating system (:mod:`npcell.exercises.sandbox`: in the
isolated modes npcell's files do not exist in the child's file system). As a tripwire in every
mode, :func:`_refuse_npcell` puts a finder first on ``sys.meta_path`` that refuses ``npcell`` and
records the attempt, which the parent flags. The finite-difference tests come from
``fd_functions.py``, loaded by path.
"""

import importlib.abc
import importlib.util
import json
import os
import sys
import traceback
import types

if len(sys.argv) > 3:  # -S: no site-packages; NumPy's folder is the one path the child gets
    sys.path.insert(0, sys.argv[3])
import numpy  # noqa: E402

_IDENT = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
# Taken before the student's code runs, so rebinding them in the student's module changes nothing
_savez, _asarray, _dump, _exit, _open = numpy.savez, numpy.asarray, json.dump, os._exit, open


class _RefuseNpcell(importlib.abc.MetaPathFinder):
    """Refuses ``npcell`` and its submodules; ``attempts`` lists what was asked for."""

    def __init__(self):
        self.attempts = []

    def find_spec(self, name, path=None, target=None):
        if name == "npcell" or name.startswith("npcell."):
            self.attempts.append(name)
            raise ImportError(f"npcell cannot be imported by a submission (asked for {name})")
        return None


def _refuse_npcell():
    """Make npcell unreachable from here: no folder of this package on sys.path (Python < 3.11
    puts the script's folder there even with -I), nothing of npcell in sys.modules, and a finder
    that refuses it first on sys.meta_path. Returns the finder (its ``attempts``)."""
    here = os.path.dirname(os.path.realpath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != here]
    for name in [m for m in sys.modules if m == "npcell" or m.startswith("npcell.")]:
        del sys.modules[name]
    finder = _RefuseNpcell()
    sys.meta_path.insert(0, finder)
    return finder


def _load_fd_functions():
    """fd_functions.py of this folder, loaded by path and NOT put in sys.modules."""
    path = os.path.join(os.path.dirname(os.path.realpath(__file__)), "fd_functions.py")
    spec = importlib.util.spec_from_file_location("_npcell_fd_functions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _describe(err, student):
    """{'type', 'message', 'line', 'code'}: the last frame in the student's file."""
    info = {"type": type(err).__name__, "message": str(err)[:300], "line": None, "code": ""}
    if isinstance(err, SyntaxError) and err.filename == student:
        info["line"], info["code"] = err.lineno, (err.text or "").strip()[:120]
        info["message"] = err.msg
        return info
    for frame in traceback.extract_tb(err.__traceback__):
        if frame.filename == student:
            info["line"], info["code"] = frame.lineno, (frame.line or "")[:120]
    if isinstance(err, SystemExit):
        info["message"] = f"exit code {err.code!r}"
    return info


def _copy(tree):
    return {k: v.copy() for k, v in tree.items()}


def _changed(before, after):
    return not (before.shape == after.shape and numpy.array_equal(before, after, equal_nan=True))


def _as_real(value):
    """A float64 array from what the student returned, or None."""
    try:
        array = _asarray(value)
        if array.dtype.kind not in "biuf":
            return None
        return array.astype(numpy.float64)
    except Exception:  # noqa: BLE001 - anything the student returned
        return None


def _store(outputs, prefix, tree, report):
    """Put the arrays of a returned dict into outputs; report non-arrays and odd keys."""
    if not isinstance(tree, dict):
        report["structure"] = f"{prefix} is a {type(tree).__name__}, not a dict"
        return
    keys = []
    for key, value in tree.items():
        if not isinstance(key, str) or not key or not set(key) <= _IDENT:
            report.setdefault("bad_keys", []).append(repr(key)[:40])
            continue
        keys.append(key)
        array = _as_real(value)
        if array is None:
            report.setdefault("not_arrays", []).append(f"{prefix}[{key!r}]")
        else:
            outputs[f"{report['case']}.{prefix}.{key}"] = array
    report[f"{prefix}_keys"] = keys


def _run_step_cases(fn, job, inputs, outputs, status, student):
    for n, case in enumerate(job["cases"]):
        trees = {part: {k.split(".", 2)[2]: v for k, v in inputs.items()
                        if k.startswith(f"{n}.{part}.")} for part in ("params", "dstate", "cache")}
        pristine = {part: _copy(t) for part, t in trees.items()}
        given = {part: _copy(t) for part, t in trees.items()}
        report = {"case": n, "error": None, "mutated": []}
        status["cases"].append(report)
        try:
            out = fn(given["params"], given["dstate"], given["cache"], **case["call_options"])
        except BaseException as err:  # noqa: BLE001 - SystemExit and KeyboardInterrupt too
            report["error"] = _describe(err, student)
            continue
        for part, tree in given.items():
            for name, value in tree.items():
                if _changed(pristine[part][name], value):
                    report["mutated"].append(f"{part}[{name!r}]")
        if not isinstance(out, tuple) or len(out) != 3:
            what = type(out).__name__ + (f" of length {len(out)}" if isinstance(out, tuple)
                                         else "")
            report["structure"] = f"returned a {what}, not (grads, dx, dstate_prev)"
            continue
        grads, dx, dstate_prev = out
        _store(outputs, "grads", grads, report)
        array = _as_real(dx)
        if array is None:
            report.setdefault("not_arrays", []).append("dx")
        else:
            outputs[f"{n}.dx"] = array
        _store(outputs, "dstate_prev", dstate_prev, report)


def _run_fd_cases(fn, job, inputs, outputs, status, student, fd_functions):
    ns = {"numpy": numpy}
    exec(compile(job["step_source"], "<npcell lstm step>", "exec"), ns)  # noqa: S102 - ours
    for n, case in enumerate(job["cases"]):
        arrays = {k.split(".", 2)[2]: v for k, v in inputs.items() if k.startswith(f"{n}.a.")}
        f = fd_functions.make(case["kind"], arrays, ns["step_forward"])
        x = inputs[f"{n}.x.x"].copy()
        report = {"case": n, "name": case["name"], "error": None, "mutated": []}
        status["cases"].append(report)
        before = x.copy()
        try:
            numeric = fn(f, x, case["eps"])
        except BaseException as err:  # noqa: BLE001
            report["error"] = _describe(err, student)
            continue
        report["x_changed"] = bool(_changed(before, x))
        array = None if numeric is None else _as_real(numeric)
        if array is None:
            report.setdefault("not_arrays", []).append("the returned gradient")
        else:
            outputs[f"{n}.numeric"] = array


def main():
    student, workdir = sys.argv[1], sys.argv[2]
    with _open(os.path.join(workdir, "job.json")) as fh:
        job = json.load(fh)
    with numpy.load(os.path.join(workdir, "inputs.npz"), allow_pickle=False) as data:
        inputs = {k: data[k] for k in data.files}
    fd_functions = _load_fd_functions() if job["kind"] == "fd" else None
    finder = _refuse_npcell()
    status = {"loaded": False, "load_error": None, "cases": [], "npcell_imports": []}
    outputs = {}
    try:
        try:
            with _open(student, encoding="utf-8") as fh:
                source = fh.read()
            module = types.ModuleType("submission")
            module.__file__ = student
            sys.modules["submission"] = module
            exec(compile(source, student, "exec"), module.__dict__)  # noqa: S102
            fn = module.__dict__.get(job["function"])
            if not callable(fn):
                status["load_error"] = {"type": "missing_function", "message": job["function"],
                                        "line": None, "code": ""}
            else:
                status["loaded"] = True
        except BaseException as err:  # noqa: BLE001 - syntax errors, SystemExit, anything
            status["load_error"] = _describe(err, student)
        if status["loaded"]:
            if job["kind"] == "fd":
                _run_fd_cases(fn, job, inputs, outputs, status, student, fd_functions)
            else:
                _run_step_cases(fn, job, inputs, outputs, status, student)
    finally:
        status["npcell_imports"] = sorted(set(finder.attempts))
        _savez(os.path.join(workdir, "outputs.npz"), **outputs)
        with _open(os.path.join(workdir, "status.json"), "w") as fh:
            _dump(status, fh)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - the student may have replaced the stream
                pass
        _exit(0)  # no atexit handlers, no lingering threads of the student's


if __name__ == "__main__":
    main()
