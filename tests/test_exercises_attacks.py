"""Every attack class of issue 22, run through the built Gradescope package the way the platform
runs it: the zip unzipped into an autograder-style root, setup.sh, then run_autograder with the
submission in place. For each: the cheat scores at most 10% or is flagged; no process of the
submission is alive after run_autograder returns; results.json is unchanged a moment later;
nothing is written outside the sandbox's folder; the next honest submission gets its own score.

The isolated mode needs root and namespaces (CI runs as root): these tests skip elsewhere, and
docs/exercises.md's threat table names each test here."""

import json
import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from npcell import exercises
from npcell.exercises import BUGS, EXERCISES, package, sandbox

pytestmark = pytest.mark.skipif(sandbox.isolation().mode != "namespace",
                                reason="the isolated mode needs root and namespaces (CI has both)")

MARK = "npcell-attack-marker"


@pytest.fixture(scope="module")
def autograder(tmp_path_factory):
    """An autograder root as Gradescope lays it out, set up once; ``submit(text)`` grades."""
    tmp = tmp_path_factory.mktemp("gs")
    root = tmp / "autograder"
    zip_path = package.package(EXERCISES["lstm"], tmp / "dist", platform="gradescope")
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(root / "source")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp / "home"),
           "NPCELL_AUTOGRADER_SOURCE": str(root / "source"),
           "NPCELL_AUTOGRADER_ROOT": str(root), "NPCELL_PYTHON": sys.executable}
    (tmp / "home").mkdir()
    done = subprocess.run(["bash", str(root / "source" / "setup.sh")], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # another student's solved file on the same disk, readable by everyone
    other = tmp / "other" / "lstm.py"
    other.parent.mkdir()
    other.write_text(exercises.solution_source(EXERCISES["lstm"]))
    other.chmod(0o644)

    def submit(text):
        (root / "submission").mkdir(exist_ok=True)
        (root / "submission" / "lstm.py").write_text(text)
        start = time.perf_counter()
        done = subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env,
                              cwd=root, capture_output=True, text=True, timeout=120)
        seconds = time.perf_counter() - start
        assert done.returncode == 0, done.stderr
        results = (root / "results" / "results.json").read_text()
        return json.loads(results), results, seconds

    return {"root": root, "tmp": tmp, "other": other, "submit": submit}


def _alive():
    """Processes of any sandbox uid, or carrying the attack marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            uid = int((entry / "status").read_text().split("Uid:")[1].split()[0])
            cmd = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if sandbox.UID_BASE <= uid < sandbox.UID_BASE + sandbox.UID_SPAN or MARK.encode() in cmd:
            found.append(entry.name)
    return found


def _written(tmp):
    """Files named with the marker anywhere an attack might have put them."""
    places = [Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"), tmp, Path.home()]
    return [str(p) for place in places if place.exists()
            for p in place.rglob(f"*{MARK}*")]


def _given():
    return exercises.student_source(EXERCISES["lstm"]).split("# ---- your task")[0]


def _attack(autograder, text, *, wait=0.0, then_honest=False):
    """Grade ``text``; check the promises (the next honest submission's own score when the
    attack tried to change the environment); return (results, feedback)."""
    results, raw, _ = autograder["submit"](text)
    assert _alive() == []
    if wait:
        time.sleep(wait)
    assert (autograder["root"] / "results" / "results.json").read_text() == raw
    assert _written(autograder["tmp"]) == []
    assert results["score"] <= 10 or results["extra_data"]["flags"], results["output"]
    assert "Isolation: namespace" in results["output"]
    if then_honest:
        honest, _, _ = autograder["submit"](BUGS["lstm_dc_prev_without_f"].source())
        assert honest["score"] == 90 and honest["extra_data"]["wrong_variables"] == ["dc_prev"]
    return results, results["output"]


def test_blank_and_noise_submissions_score_zero(autograder):
    blank = _given() + (
        "def step_backward(params, dstate, cache):\n"
        "    z = {k: numpy.zeros_like(v) for k, v in params.items()}\n"
        "    dx = numpy.zeros_like(cache['x'])\n"
        "    return z, dx, {'h': 0 * dstate['h'], 'c': 0 * dstate['c']}\n")
    results, _ = _attack(autograder, blank)
    assert results["score"] == 0
    noise = blank.replace("numpy.zeros_like(v)", "numpy.random.standard_normal(v.shape)")
    assert _attack(autograder, noise)[0]["score"] == 0


def test_a_new_interpreter_cannot_run_npcells_solution_generator(autograder):
    # subprocess and libc's system() through ctypes: npcell is nowhere in the child's world
    for start in ("import subprocess\n    subprocess.run(['npcell', 'exercises', 'new', 'lstm', "
                  "d, '--solution', '--force'])\n"
                  "    subprocess.run([sys.executable, '-m', 'npcell', 'exercises', 'new', 'lstm',"
                  " d, '--solution', '--force'])\n",
                  "import ctypes\n    libc = ctypes.CDLL(None)\n"
                  "    libc.system(f'npcell exercises new lstm {d} --solution --force'.encode())\n"
                  "    libc.system(f'python3 -m npcell exercises new lstm {d} --solution "
                  "--force'.encode())\n"):
        cheat = _given() + (
            "import sys, tempfile, os\n\n"
            "def step_backward(params, dstate, cache):\n"
            "    d = tempfile.mkdtemp()\n"
            f"    {start}"
            "    ns = {}\n"
            "    exec(open(os.path.join(d, 'lstm.py')).read(), ns)\n"
            "    return ns['step_backward'](params, dstate, cache)\n")
        results, feedback = _attack(autograder, cheat)
        assert results["score"] == 0 and "FileNotFoundError" in feedback


def test_npcells_installed_files_and_the_autograder_are_unreadable(autograder):
    # variants.py compiled from any place npcell lives; the autograder script into the feedback
    lib = autograder["root"] / "source" / "lib" / "npcell" / "exercises" / "variants.py"
    paths = [str(lib), str(Path(exercises.__file__).with_name("variants.py")),
             str(autograder["root"] / "source" / "run_autograder")]
    cheat = _given() + (
        f"\nfor _p in {paths!r}:\n"
        "    try:\n        print(open(_p).read()[:2000])\n"
        "    except OSError as err:\n        print('UNREADABLE', type(err).__name__)\n\n\n"
        "def step_backward(params, dstate, cache):\n"
        "    raise NotImplementedError  # the answer would come from what was read\n")
    results, feedback = _attack(autograder, cheat)
    assert feedback.count("UNREADABLE") == 3
    assert "def draw(" not in feedback and "run_autograder" not in feedback.split("printed")[1]


def test_another_students_file_is_invisible(autograder):
    other = autograder["other"]
    cheat = _given() + (
        "def step_backward(params, dstate, cache):\n"
        f"    ns = {{}}\n    exec(open({str(other)!r}).read(), ns)\n"
        "    return ns['step_backward'](params, dstate, cache)\n")
    results, feedback = _attack(autograder, cheat)
    assert results["score"] == 0 and "FileNotFoundError" in feedback


def test_a_detached_grandchild_dies_and_cannot_rewrite_results(autograder):
    results_json = autograder["root"] / "results" / "results.json"
    forged = json.dumps({"score": 100.0, "output": "forged", "tests": []})
    cheat = exercises.student_source(EXERCISES["lstm"]) + (
        "\nimport os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        for _ in range(40):  # {MARK}\n"
        "            time.sleep(0.1)\n"
        "            try:\n"
        f"                open({str(results_json)!r}, 'w').write({forged!r})\n"
        "            except OSError:\n"
        "                pass\n"
        "    os._exit(0)\n")
    results, _ = _attack(autograder, cheat, wait=2.0, then_honest=True)
    assert results["score"] == 0 and "forged" not in results_json.read_text()


def test_patching_the_installed_npcell_cannot_reach_the_next_submission(autograder):
    lib = autograder["root"] / "source" / "lib" / "npcell" / "exercises"
    targets = [str(lib / "grader.py"), str(lib / "compare.py"),
               str(Path(exercises.__file__).with_name("grader.py"))]
    before = [Path(t).read_bytes() for t in targets]
    cheat = _given() + (
        "def step_backward(params, dstate, cache):\n"
        f"    for target in {targets!r}:\n"
        "        try:\n"
        "            open(target, 'a').write('\\nTOL = 1e9\\n')\n"
        "        except OSError as err:\n"
        "            print('REFUSED', type(err).__name__)\n"
        "    raise NotImplementedError\n")
    _attack(autograder, cheat, then_honest=True)  # the next honest one still gets 90
    assert [Path(t).read_bytes() for t in targets] == before


def test_nothing_is_written_outside_the_sandbox_and_no_network(autograder):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    places = ["/tmp", "/var/tmp", "/dev/shm", str(autograder["tmp"]), str(Path.home()),
              str(autograder["root"] / "results")]
    cheat = _given() + (
        "import socket\n\n"
        "def step_backward(params, dstate, cache):\n"
        f"    for place in {places!r}:\n"
        "        try:\n"
        f"            open(place + '/{MARK}', 'w').write('x')\n"
        "            print('WROTE', place)\n"
        "        except OSError:\n"
        "            pass\n"
        "    try:\n"
        f"        socket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'leak')\n"
        "        print('CONNECTED')\n"
        "    except OSError:\n"
        "        pass\n"
        "    raise NotImplementedError\n")
    _, feedback = _attack(autograder, cheat, then_honest=True)
    assert "WROTE" not in feedback and "CONNECTED" not in feedback
    with pytest.raises(socket.timeout):
        listener.accept()
    listener.close()


def test_differencing_through_the_package_is_flagged(autograder):
    from test_exercises_sandbox import DIFFERENCING

    results, feedback = _attack(autograder, _given() + DIFFERENCING)
    assert results["score"] == 0 and "differencing the forward" in feedback
