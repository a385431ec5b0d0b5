"""Run a student's file in an isolated child process and bring back only arrays.

This is the one entry point for running untrusted code (the grader and the BPTT stepper's check
mode both use it)::

    result = sandbox.run(student_path, job, inputs, timeout=20, memory_bytes=2 * 1024**3)
    result.status, result.outputs     # the child's status.json, {name: float64 array}

:func:`run` writes the inputs (``inputs.npz``, ``job.json``), the student's file and the harness
(``_child.py`` and ``fd_functions.py``: standard library and NumPy only, none of npcell's own
code) into a fresh folder, runs ``python -I -S _child.py`` there, then reads back ``outputs.npz``
(``allow_pickle=False``) and ``status.json``. Nothing the child prints or writes is read as a
score. It returns only after every process of the submission is gone.

The isolation comes from the operating system (util-linux's ``unshare``, ``setpriv``, ``mount``,
``chroot``; resource limits), never from Python. :func:`isolation` picks the strongest mode the
machine allows (``NPCELL_SANDBOX=namespace|userns|setuid|process`` forces one):

* ``namespace`` (root, namespaces allowed: Gradescope, CI, most containers run with
  ``--privileged`` or ``CAP_SYS_ADMIN``): its own PID, mount, network, IPC and UTS namespaces;
  a read-only root holding only ``/usr``, ``/bin``, ``/lib*``, the Python install and NumPy
  (bind mounts, npcell's package hidden under an empty mount) plus ``/work``, the run's folder,
  the only writable place; a dedicated uid with no capabilities and ``no_new_privs``. When the
  namespace's first process ends the kernel kills every other one, however it detached.
* ``userns`` (not root, unprivileged user namespaces allowed): the same namespaces and the same
  view of the file system, as the grader's own uid (no other uid exists there).
* ``setuid`` (root, no namespaces: a container that forbids ``unshare``): a dedicated uid,
  every process of that uid killed after the run; npcell's package and the hidden folders are
  made unreadable to others (``chmod o-rwx``). Not stopped: the network, writes to
  world-writable folders, reading world-readable files.
* ``process`` (nothing of the above): a child process in its own session with resource limits.
  Not stopped: reading or writing anything the grader's user can, the network, a process that
  leaves the session (``setsid``) and outlives the run.

Every grade carries :attr:`Isolation.line`, which says the mode and what it does not stop.
"""

from __future__ import annotations

import functools
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

from ..errors import ConfigError

try:  # POSIX: memory and file-size limits for the child
    import resource
except ImportError:  # Windows: the wall-clock limit still holds
    resource = None

TIMEOUT_S = 20.0  # generous: a correct file finishes in well under a second
MEMORY_BYTES = 2 * 1024**3  # address space of the child (NumPy + BLAS need a few hundred MiB)
OUTPUT_BYTES = 16 * 1024**2  # largest file the child may write
PROCESSES = 64  # processes the sandbox uid may have (a fork bomb stops there)
SHOWN_OUTPUT = 4000  # characters of the child's stdout/stderr kept for the student
HERE = Path(__file__).resolve().parent
HARNESS = (HERE / "_child.py", HERE / "fd_functions.py")  # all the child gets of npcell
PACKAGE = HERE.parent  # npcell's own package: never visible to the child
# A dedicated uid per grading process, from systemd's range for uids without an account
# (61184-65519), so "every process of this uid" is exactly this run's submission.
UID_BASE, UID_SPAN = 61184, 4096

MODES = {
    "namespace": "own user, PID, mount and network namespaces; only NumPy, Python and the run's "
                 "folder are visible; every process is killed at the end",
    "userns": "own PID, mount and network namespaces as the grader's user (no root); only NumPy, "
              "Python and the run's folder are visible; every process is killed at the end. Not "
              "stopped: nothing known",
    "setuid": "a dedicated user whose processes are all killed at the end; npcell and the "
              "autograder unreadable to it. Not stopped: network use, writes to world-writable "
              "folders (/tmp), reading world-readable files",
    "process": "a child process with time and memory limits only. Not stopped: reading or "
               "writing the grader's files, network use, a process that detaches (setsid) and "
               "outlives grading",
}


@dataclass(frozen=True)
class Isolation:
    mode: str

    @property
    def line(self) -> str:
        """The one line every output format carries."""
        return f"Isolation: {self.mode} ({MODES[self.mode]})."


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
    isolation: Isolation = Isolation("process")
    leftovers: int = 0  # processes of the submission still alive at the end (then killed)


def _tools(*names):
    return all(shutil.which(n) for n in names)


def _works(command) -> bool:
    try:
        return subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@functools.cache
def isolation() -> Isolation:
    """The strongest mode this machine allows (``NPCELL_SANDBOX`` forces one)."""
    forced = os.environ.get("NPCELL_SANDBOX")
    if forced:
        if forced not in MODES:
            raise ConfigError(f"NPCELL_SANDBOX must be one of {list(MODES)}; got {forced!r}")
        return Isolation(forced)
    if os.name != "posix" or not _tools("unshare", "setpriv", "mount", "chroot"):
        return Isolation("process")
    if os.geteuid() == 0:
        ok = _works(["unshare", "--pid", "--fork", "--mount", "--net", "--ipc", "--uts", "true"])
        return Isolation("namespace" if ok else "setuid")
    ok = _works(["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount", "--net",
                 "true"])
    return Isolation("userns" if ok else "process")


def sandbox_uid() -> int:
    """The dedicated uid of this grading process (``NPCELL_SANDBOX_UID`` sets it)."""
    given = os.environ.get("NPCELL_SANDBOX_UID")
    return int(given) if given else UID_BASE + os.getpid() % UID_SPAN


def hidden_paths() -> list[str]:
    """What the child must never see: npcell's package, its source tree, and the folders in
    ``NPCELL_SANDBOX_HIDE`` (os.pathsep-separated; the autograder scripts set their root)."""
    paths = [PACKAGE]
    if (PACKAGE.parent / "pyproject.toml").is_file():  # a source checkout: tests, docs, .git
        paths.append(PACKAGE.parent)
    paths += [Path(p) for p in os.environ.get("NPCELL_SANDBOX_HIDE", "").split(os.pathsep) if p]
    return [str(p.resolve()) for p in paths if p.exists()]


def _limits(memory_bytes, processes):
    """preexec_fn: resource limits for the child (inherited through unshare and setpriv)."""
    def apply():
        if memory_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_BYTES, OUTPUT_BYTES))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if processes:  # counted per real uid: only the dedicated uid's processes
            resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
    return apply


def _environment(home):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8",
           "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = "1"
    return env


# The namespace's first process (root there) builds the child's root file system and then
# becomes the submission: chroot, drop every capability, change uid, exec Python.
_ROOTFS = r"""
set -eu
root=$1 work=$2 uid=$3 python=$4 numpy=$5; shift 5
mount -t tmpfs -o mode=0755,size=1m npcell-sandbox "$root"
bind() {  # bind SOURCE at TARGET inside the new root, read-only
    if [ -d "$1" ]; then mkdir -p "$root$2"; else mkdir -p "$root${2%/*}"; : > "$root$2"; fi
    mount --bind "$1" "$root$2"
    mount -o remount,bind,ro,nosuid "$root$2" 2> /dev/null || [ "$uid" = keep ]
}
for d in /usr /bin /sbin /lib /lib32 /lib64 /libx32; do
    if [ -L "$d" ]; then ln -s "$(readlink "$d")" "$root$d"
    elif [ -d "$d" ]; then bind "$d" "$d"; fi
done
for f in /etc/ld.so.cache /dev/null /dev/zero /dev/random /dev/urandom; do
    if [ -e "$f" ]; then bind "$f" "$f"; fi
done
while [ "$1" != -- ]; do  # the Python install (when it is not under /usr)
    if [ ! -e "$root$1" ]; then bind "$1" "$1"; fi; shift
done; shift
bind "$numpy" /pylib/numpy
if [ -d "$numpy.libs" ]; then bind "$numpy.libs" /pylib/numpy.libs; fi
for p in "$@"; do  # npcell and the autograder, where a bound tree holds them
    if [ -e "$root$p" ]; then mount -t tmpfs -o ro,size=0,mode=0 npcell-hidden "$root$p"; fi
done
mkdir "$root/work" "$root/proc" "$root/tmp"
mount --bind "$work" "$root/work"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -o remount,ro "$root"
cd /
if [ "$uid" = keep ]; then drop=""; else
    drop="--reuid=$uid --regid=$uid --clear-groups"; fi
exec chroot "$root" /usr/bin/setpriv $drop --no-new-privs --inh-caps=-all --bounding-set=-all \
    -- "$python" -I -S /work/_child.py "/work/$STUDENT" /work /pylib
"""


def _python_roots():
    """The folders the child's Python needs: its prefix (real paths, no venv)."""
    roots = {os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix)}
    return sorted(r for r in roots if not r.startswith("/usr/"))


def _numpy_dir():
    return os.path.dirname(os.path.realpath(numpy.__file__))


def _command(mode, workdir, student_name, uid):
    """argv and extra environment of the child in ``mode``."""
    python = os.path.realpath(sys.executable)
    work = workdir / "work"
    child = [python, "-I", "-S", str(work / "_child.py"), str(work / student_name), str(work),
             os.path.dirname(_numpy_dir())]
    if mode == "process":
        return child
    if mode == "setuid":
        return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--", *child]
    flags = ["--pid", "--fork", "--kill-child", "--mount", "--net", "--ipc", "--uts"]
    if mode == "userns":
        flags = ["--user", "--map-root-user", *flags]
    return ["unshare", *flags, "--", "/bin/sh", "-c", _ROOTFS, "sandbox", str(workdir / "root"),
            str(work), "keep" if mode == "userns" else str(uid), python, _numpy_dir(),
            *_python_roots(), "--", *hidden_paths()]


def _make_unreadable(paths):
    """setuid mode: nothing hides these from the dedicated uid but their permissions."""
    for path in paths:
        mode = os.stat(path).st_mode
        if mode & 0o007:
            os.chmod(path, mode & ~0o007)


def run(student_path, job: dict, inputs: dict, *, timeout=TIMEOUT_S,
        memory_bytes=MEMORY_BYTES) -> SandboxResult:
    """Run the student's file on ``inputs`` (name -> array) as ``job`` describes.

    ``job``: {'function': name, 'kind': 'step' | 'fd', 'cases': [...], ...}; arrays are saved
    with :func:`numpy.savez` and every key must be ``"<case>.<part>.<name>"``. Returns after
    every process the submission started has ended.
    """
    iso = isolation()
    uid = sandbox_uid()
    student_path = Path(student_path)
    workdir = Path(tempfile.mkdtemp(prefix="npcell-grade-"))  # 0700, the grader's
    work = workdir / "work"
    try:
        work.mkdir()
        (workdir / "root").mkdir()
        shutil.copyfile(student_path, work / student_path.name)
        for file in HARNESS:
            shutil.copyfile(file, work / file.name)
        numpy.savez(work / "inputs.npz", **inputs)
        (work / "job.json").write_text(json.dumps(job))
        if iso.mode in ("namespace", "setuid"):
            for path in work.iterdir():
                os.chown(path, uid, uid)
            os.chown(work, uid, uid)
            work.chmod(0o700)
            workdir.chmod(0o711)  # the uid may pass through to work/, not list the rest
        if iso.mode == "setuid":
            _make_unreadable(hidden_paths())
        out_file, err_file = workdir / "stdout", workdir / "stderr"
        env = _environment("/work" if iso.mode in ("namespace", "userns") else str(work))
        env["STUDENT"] = student_path.name
        start = time.perf_counter()
        timed_out = False
        with open(out_file, "wb") as out, open(err_file, "wb") as err:
            kwargs = dict(stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=work, env=env,
                          start_new_session=os.name == "posix")
            if resource is not None:
                own_uid = iso.mode in ("namespace", "setuid")
                kwargs["preexec_fn"] = _limits(memory_bytes, PROCESSES if own_uid else 0)
            proc = subprocess.Popen(_command(iso.mode, workdir, student_path.name, uid),
                                    **kwargs)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                leftovers = _end(proc, iso.mode, uid)
        seconds = time.perf_counter() - start
        status, outputs = (None, {}) if timed_out else _read_back(work)
        return SandboxResult(status, outputs, _head(out_file), _head(err_file), proc.returncode,
                             timed_out, seconds, timeout, memory_bytes, iso, leftovers)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _end(proc, mode, uid) -> int:
    """End the child and everything it started; returns how many processes were still alive
    after the child itself had ended (0 in the namespace modes: the kernel kills them)."""
    if proc.poll() is None and mode in ("namespace", "userns"):
        for pid in _children(proc.pid):  # the namespace's first process: killing it kills all
            _kill(pid)
    if proc.poll() is None:
        _kill(proc.pid)
    if mode == "process":
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait()
    if mode not in ("namespace", "setuid"):
        return 0
    found = 0
    # a process forking as fast as it can needs a few sweeps, and on a loaded machine a killed
    # process with a large heap takes a while to leave /proc: results wait until it has
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        pids = processes_of(uid)
        if not pids:
            break
        found = max(found, len(pids))
        for pid in pids:
            _kill(pid)
        time.sleep(0.01)
    return found


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _children(pid) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def processes_of(uid) -> list[int]:
    """Ids of the live processes whose real uid is ``uid`` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("Uid:"):
                    if int(line.split()[1]) == uid:
                        pids.append(int(entry.name))
                    break
        except (OSError, ValueError):
            continue
    return pids


def _read_back(work):
    """status.json and outputs.npz, or (None, {}) when the child did not write them."""
    try:
        status = json.loads((work / "status.json").read_text())
        with numpy.load(work / "outputs.npz", allow_pickle=False) as data:
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
