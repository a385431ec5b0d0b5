"""Run a student's file in a separate process and bring back only arrays (docs/exercises.md).

The grading process never imports the submission. :func:`run` writes the inputs of every case
to a fresh temporary folder (``inputs.npz``, ``job.json``), copies the student's file there and
starts ``python -I _child.py`` on it with

* a wall-clock limit (the whole process group is killed when it runs out),
* a memory limit (``RLIMIT_AS``) and an output-file size limit where the OS has them,
* an environment with nothing of the grader's in it (no tokens, one BLAS thread),

then reads back ``outputs.npz`` with ``allow_pickle=False`` and ``status.json``. What the child
printed is kept as text to show the student; nothing it prints or writes is read as a score.
A child that ends without writing its status (``os._exit``, a crash, a signal) is reported as
such. The child is a fresh interpreter, so patches it makes to npcell or to the grader stay in it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy

try:  # POSIX: memory and file-size limits for the child
    import resource
except ImportError:  # Windows: the wall-clock limit still holds
    resource = None

TIMEOUT_S = 20.0  # generous: a correct file finishes in well under a second
MEMORY_BYTES = 2 * 1024**3  # address space of the child (NumPy + BLAS need a few hundred MiB)
OUTPUT_BYTES = 16 * 1024**2  # largest file the child may write
SHOWN_OUTPUT = 4000  # characters of the child's stdout/stderr kept for the student
CHILD = Path(__file__).with_name("_child.py")


@dataclass
class SandboxResult:
    """What came back from one child run."""

    status: dict | None  # the child's status.json; None when it ended without writing one
    outputs: dict = field(default_factory=dict)  # name -> float64 array
    stdout: str = ""
    stderr: str = ""
    returncode: int | None = None
    timed_out: bool = False
    seconds: float = 0.0
    timeout: float = TIMEOUT_S
    memory_bytes: int | None = MEMORY_BYTES


def _limits(memory_bytes):
    """preexec_fn: resource limits for the child (POSIX only)."""
    def apply():
        if memory_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_BYTES, OUTPUT_BYTES))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def _environment(workdir):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir),
           "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                 "NUMBA_NUM_THREADS"):
        env[name] = "1"
    return env


def run(student_path, job: dict, inputs: dict, *, timeout=TIMEOUT_S,
        memory_bytes=MEMORY_BYTES) -> SandboxResult:
    """Run the student's file on ``inputs`` (name -> array) as ``job`` describes.

    ``job``: {'function': name, 'kind': 'step' | 'fd', 'cases': [...], ...}; arrays are saved
    with :func:`numpy.savez` and every key must be ``"<case>.<part>.<name>"``.
    """
    student_path = Path(student_path)
    workdir = Path(tempfile.mkdtemp(prefix="npcell-grade-"))
    try:
        student = workdir / student_path.name
        shutil.copyfile(student_path, student)
        numpy.savez(workdir / "inputs.npz", **inputs)
        (workdir / "job.json").write_text(json.dumps(job))
        out_file, err_file = workdir / ".stdout", workdir / ".stderr"
        start = time.perf_counter()
        timed_out = False
        with open(out_file, "wb") as out, open(err_file, "wb") as err:
            kwargs = dict(stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=workdir,
                          env=_environment(workdir))
            if os.name == "posix":
                kwargs["start_new_session"] = True  # its own process group, killed as one
            if resource is not None:
                kwargs["preexec_fn"] = _limits(memory_bytes)
            proc = subprocess.Popen([sys.executable, "-I", str(CHILD), str(student),
                                     str(workdir)], **kwargs)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc)
        seconds = time.perf_counter() - start
        status = None
        outputs = {}
        if not timed_out:
            status, outputs = _read_back(workdir)
        return SandboxResult(status, outputs, _head(out_file), _head(err_file), proc.returncode,
                             timed_out, seconds, timeout, memory_bytes)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _kill_group(proc):
    """End the child and anything it started (its own session), then reap it."""
    if os.name == "posix":
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    elif proc.poll() is None:
        proc.kill()
    proc.wait()


def _read_back(workdir):
    """status.json and outputs.npz, or (None, {}) when the child did not write them."""
    try:
        status = json.loads((workdir / "status.json").read_text())
        with numpy.load(workdir / "outputs.npz", allow_pickle=False) as data:
            outputs = {k: numpy.asarray(data[k], dtype=numpy.float64) for k in data.files}
    except (OSError, ValueError, KeyError, TypeError):
        return None, {}
    if not isinstance(status, dict) or not isinstance(status.get("cases"), list):
        return None, {}
    return status, outputs


def _head(path):
    try:
        with open(path, "rb") as fh:
            text = fh.read(SHOWN_OUTPUT + 1).decode("utf-8", "replace")
    except OSError:
        return ""
    return text if len(text) <= SHOWN_OUTPUT else text[:SHOWN_OUTPUT] + "\n[... cut]"
