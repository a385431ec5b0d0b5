"""The command line: user errors exit 2 with one line on stderr and no traceback; --debug shows
the traceback; argparse's own errors read the same way."""

import importlib.util

import pytest

from npcell import cli
from npcell.errors import ConfigError, NpcellError

# (argv, words the one-line message must contain). Every case fails during validation, before
# any real work, so the whole table runs in a second or two.
CASES = [
    (["gradcheck", "--cell", "nope"], ["unknown cell kind 'nope'"]),
    (["gradcheck", "--hidden", "0"], ["hidden_size must be a positive int; got 0"]),
    (["gradcheck", "--T", "-1"], ["--T must be a positive int; got -1"]),
    (["gradcheck", "--batch", "0"], ["--batch must be a positive int"]),
    (["gradcheck", "--full", "--samples", "0"], ["samples must be a positive int; got 0"]),
    (["gradcheck", "--seed", "-1"], ["seed must be a non-negative int"]),
    (["gradcheck", "--T", "x"], ["argument --T: invalid int value: 'x'"]),
    (["gradcheck", "--bogus"], ["unrecognized arguments: --bogus"]),
    (["gradcheck", "--dtype", "float16"], ["invalid choice: 'float16'"]),
    (["diagnose", "--cell", "nope"], ["unknown cell kind(s) ['nope']"]),
    (["diagnose", "--T", "0"], ["--T must be a positive int"]),
    (["diagnose", "--threshold", "2"], ["threshold must be a number in (0, 0.5)"]),
    (["diagnose", "--seed", "-1"], ["--seed must be a non-negative int"]),
    (["train", "--cell", "nope"], ["unknown cell kind 'nope'"]),
    (["train", "--task", "nope"], ["unknown task 'nope'"]),
    (["train", "--lr", "-1"], ["lr must be > 0"]),
    (["train", "--epochs", "0"], ["epochs must be a positive int"]),
    (["train", "--seed", "-4"], ["seed must be a non-negative int"]),
    (["train", "--task", "smnist", "--mnist-dir", "/nonexistent"], ["/nonexistent"]),
    (["demo", "--hidden", "0"], ["hidden_size must be a positive int"]),
    (["plot-run", "/nonexistent/run"], ["/nonexistent/run"]),
    (["exercises", "nope"], ["invalid choice: 'nope'"]),
    (["nosuch"], ["invalid choice: 'nosuch'"]),
    ([], ["the following arguments are required: COMMAND"]),
]


def _available(argv):
    command = argv[0] if argv else None
    if command in cli.COMMANDS and importlib.util.find_spec(cli.COMMANDS[command][0]) is None:
        pytest.skip(f"the {command} command is not part of this checkout")


def _run(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything a command writes lands in the test's directory
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse exits itself
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, words", CASES, ids=[" ".join(c[0]) or "(none)" for c in CASES])
def test_user_errors_exit_2_with_one_line(argv, words, capsys, tmp_path, monkeypatch):
    _available(argv)
    if argv[:1] == ["train"]:
        argv = [*argv, "--out", str(tmp_path / "run"), "--no-progress"]
    code, _, err = _run(argv, capsys, tmp_path, monkeypatch)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    command = argv[0] if argv and argv[0] in cli.COMMANDS else None
    prefix = f"npcell {command}: error: " if command else "npcell: error: "
    assert lines[0].startswith(prefix), lines[0]
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize("argv", [["--debug", "gradcheck", "--cell", "nope"],
                                  ["gradcheck", "--cell", "nope", "--debug"]])
def test_debug_shows_the_traceback(argv, capsys, tmp_path, monkeypatch):
    """--debug, before or after the command, lets the exception (and its traceback) through."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="unknown cell kind 'nope'") as info:
        cli.main(argv)
    assert isinstance(info.value, NpcellError) and info.tb is not None


def test_a_good_command_still_works(capsys, tmp_path, monkeypatch):
    code, out, err = _run(["gradcheck", "--cell", "wmc", "--T", "3", "--hidden", "3"], capsys,
                          tmp_path, monkeypatch)
    assert code == 0 and "PASS" in out and err == ""
