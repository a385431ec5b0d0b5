"""What a user of `npcell train` sees: progress lines in a log file, --max-minutes stopping with a
checkpoint that resumes exactly, no folder from a run that cannot start, and a finished run that
says so when it is started again."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time

import pytest

from npcell.cli import main as npcell_main
from npcell.errors import ConfigError
from npcell.tasks.base import DataError
from npcell.training import TrainConfig, read_metrics, train
from npcell.training.loop import ProgressLines, format_duration

LINE = re.compile(r"^lstm on adding: step (\d+)/30 \(\d+%\) epoch \d/3 loss [\d.e+-]+"
                  r"( test mse [\d.e+-]+)? [\d.e+]+ steps/s ETA \d+ (s|min)$")


def tiny(**overrides):
    """30 steps: 3 epochs of 10 batches of 8 (float64, so resumed losses compare exactly)."""
    values = dict(task="adding", task_options={"T": 6, "n_train": 80, "n_test": 16}, cell="lstm",
                  hidden=4, batch=8, optimizer="adam", lr=1e-2, momentum=0.0, nesterov=False,
                  epochs=3, dtype="float64", seed=0, log_every=1)
    values.update(overrides)
    return TrainConfig(**values)


NPCELL = [sys.executable, "-m", "npcell"]  # `npcell ...` in a fresh interpreter


class FakeClock:
    """Seconds that move only when a step ends (the callback ticks it): runs become exact."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def tick(self, step, loss):
        self.now += 1.0


def _losses(records):
    return [(r["step"], r["split"], r["loss"]) for r in records]


def test_progress_lines_every_n_seconds_when_output_is_not_a_terminal(tmp_path):
    clock, stream = FakeClock(), io.StringIO()
    train(tiny(), tmp_path / "run", progress=None, log_seconds=10, clock=clock,
          callback=clock.tick, log_stream=stream)  # pytest's stderr is not a terminal
    lines = stream.getvalue().splitlines()
    assert all(LINE.match(line) for line in lines), lines
    steps = [int(LINE.match(line).group(1)) for line in lines]
    assert steps == [11, 21, 30]  # a line each 10 fake seconds (1 s per step), and the last step
    assert " test mse " in lines[-1]  # the last evaluation's metric is shown once there is one


def test_no_progress_lines_when_asked_for_silence(tmp_path):
    stream = io.StringIO()
    train(tiny(), tmp_path / "run", progress=False, log_seconds=1e-9, log_stream=stream)
    assert stream.getvalue() == ""


def test_progress_line_eta_and_duration_format():
    clock, stream = FakeClock(), io.StringIO()
    lines = ProgressLines("wmc on adding", 20_000, 200, every=30, clock=clock, stream=stream)
    clock.now += 31
    lines.update(1200, 1, 0.16712, "test mse", 0.1655, 14.2)
    assert stream.getvalue().strip() == ("wmc on adding: step 1200/20000 (6%) epoch 2/200 loss "
                                         "0.1671 test mse 0.1655 14.2 steps/s ETA 22 min")
    lines.update(1201, 1, 0.1, "test mse", 0.1, 14.2)  # within 30 s of the last line: nothing
    assert stream.getvalue().count("\n") == 1
    assert [format_duration(s) for s in (45, 600, 33_480)] == ["45 s", "10 min", "9 h 18 min"]


@pytest.mark.parametrize("stop_after", [13, 10, 20])  # mid-epoch, and at two epoch ends
def test_max_minutes_stops_with_a_checkpoint_that_resumes_exactly(tmp_path, stop_after):
    straight = train(tiny(), tmp_path / "straight", progress=False)
    clock = FakeClock()
    stopped = train(tiny(), tmp_path / "split", progress=False, clock=clock,
                    callback=clock.tick, max_minutes=stop_after / 60)
    assert stopped.stopped_early and stopped.steps == stop_after
    assert (tmp_path / "split" / "checkpoint.npz").exists()
    assert max(r["step"] for r in read_metrics(tmp_path / "split")) == stop_after
    resumed = train(tiny(), tmp_path / "split", progress=False)
    assert resumed.resumed_from == stop_after and not resumed.stopped_early
    assert _losses(resumed.history) == _losses(straight.history)  # bit for bit, float64


def test_max_minutes_that_outlasts_the_run_changes_nothing(tmp_path):
    clock = FakeClock()
    result = train(tiny(), tmp_path / "run", progress=False, clock=clock, callback=clock.tick,
                   max_minutes=30 / 60)  # the limit falls on the very last step
    assert not result.stopped_early and result.steps == 30
    assert [r["epoch"] for r in result.history if r["split"] == "test"] == [0, 1, 2, 3]


def test_max_minutes_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match="max_minutes must be > 0"):
        train(tiny(), tmp_path / "run", max_minutes=0)


def test_a_run_that_cannot_start_leaves_no_folder(tmp_path, capsys):
    with pytest.raises(ConfigError, match="larger than the training set"):
        train(tiny(batch=128), tmp_path / "too-big")
    assert not (tmp_path / "too-big").exists()
    charlm = TrainConfig(task="charlm", task_options={"text": str(tmp_path / "missing.txt")})
    with pytest.raises(DataError, match="does not exist"):
        train(charlm, tmp_path / "no-text")
    assert not (tmp_path / "no-text").exists()
    code = npcell_main(["train", "--task", "adding", "--n-train", "16", "--batch", "32",
                        "--out", str(tmp_path / "cli")])
    assert code == 2 and not (tmp_path / "cli").exists()
    assert "larger than the training set" in capsys.readouterr().err


def test_a_finished_run_started_again_says_it_is_finished(tmp_path, capsys):
    argv = ["train", "--task", "adding", "--T", "6", "--n-train", "80", "--n-test", "16",
            "--hidden", "4", "--batch", "8", "--epochs", "1", "--out", str(tmp_path / "run"),
            "--no-progress"]
    assert npcell_main(argv) == 0
    capsys.readouterr()
    assert npcell_main(argv) == 0
    out = capsys.readouterr().out
    assert "is already finished (10 steps, 1 epochs); nothing trained" in out
    rate = float(re.search(r"10 steps, ([\d.]+) steps/s", out).group(1))
    assert rate > 0  # the run's own rate, not "0.00 steps/s"
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    result = train(TrainConfig.from_dict(stored), tmp_path / "run", progress=False)
    assert result.already_finished and result.steps == 10 and result.steps_per_s > 0


def test_cli_writes_progress_lines_to_a_log_file(tmp_path):
    """The user's case: output redirected to a file (as under nohup)."""
    log = tmp_path / "log.txt"
    with open(log, "w") as fh:
        subprocess.run([*NPCELL, "train", "--task", "adding", "--T", "6",
                        "--n-train", "400", "--n-test", "16", "--hidden", "4", "--batch", "8",
                        "--epochs", "2", "--log-seconds", "0.01", "--out",
                        str(tmp_path / "run")], stdout=fh, stderr=subprocess.STDOUT,
                       check=True, timeout=120)
    text = log.read_text()
    progress = [line for line in text.splitlines() if " steps/s ETA " in line]
    assert progress and progress[-1].startswith("lstm on adding: step 100/100 (100%)")
    assert "\r" not in text  # no progress-bar redraws in a file


@pytest.mark.slow
def test_max_minutes_one_stops_within_seconds_of_a_minute(tmp_path):
    """The real clock: `--max-minutes 1` on a run that would take hours even on a quiet machine."""
    t0 = time.monotonic()
    proc = subprocess.run([*NPCELL, "train", "--task", "adding", "--T",
                           "200", "--hidden", "64", "--epochs", "1000", "--max-minutes", "1",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True,
                          timeout=300, check=True)
    wall = time.monotonic() - t0
    assert "stopped by --max-minutes 1" in proc.stdout
    assert 60 <= wall < 75, wall  # interpreter start + the last step + the checkpoint
