"""Every CLI path ends cleanly when the reader of its output goes away (`npcell ... | head`):
no traceback, no "Exception ignored" at exit; the shell's status for a closed pipe (141)."""

import os
import subprocess
import sys

import pytest

NPCELL = [sys.executable, "-m", "npcell"]


def run_into_closed_pipe(args, cwd):
    """Run npcell with stdout on a pipe whose reader is already closed; (status, stderr)."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before npcell writes a byte: its first flush fails
    try:
        done = subprocess.run(NPCELL + args, stdout=write, stderr=subprocess.PIPE, text=True,
                              cwd=cwd, timeout=120)
    finally:
        os.close(write)
    return done.returncode, done.stderr


@pytest.fixture(scope="module")
def student_file(tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    subprocess.run(NPCELL + ["exercises", "new", "lstm", str(work)], check=True,
                   capture_output=True)
    return str(work / "lstm.py")


@pytest.mark.parametrize("args", [
    ["exercises", "list"],
    ["exercises", "bugs"],
    ["diagnose", "--list-regimes"],
    ["exercises", "check", "STUDENT"],  # the case of issue 26: `npcell exercises check F | head`
])
def test_closed_pipe_ends_without_a_traceback(args, student_file, tmp_path):
    args = [student_file if a == "STUDENT" else a for a in args]
    status, stderr = run_into_closed_pipe(args, tmp_path)
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert status == 141, stderr


def test_an_open_pipe_still_gets_the_whole_output(tmp_path):
    done = subprocess.run(NPCELL + ["exercises", "list"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0 and "lstm" in done.stdout
