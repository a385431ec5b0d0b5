"""The training loop: it learns, it resumes bit for bit, it logs what it promises, and the
whole model's gradient (embedding -> cell -> readout -> loss) matches finite differences."""

import csv
import json
import signal

import numpy as np
import pytest

from npcell.cli import main as npcell_main
from npcell.errors import CheckpointError, ConfigError
from npcell.numdiff import CENTRAL_STEP, TOLERANCES, derivative, entry_mover, relative_error
from npcell.tasks import make_task
from npcell.training import SequenceModel, TrainConfig, read_metrics, train
from npcell.training.config import PRESETS, preset_config

EPS, TOL, FLOOR = CENTRAL_STEP, TOLERANCES["float64"].rtol, 1e-4


def small_adding(**overrides):
    values = dict(task="adding", task_options={"T": 10, "n_train": 2560, "n_test": 500},
                  cell="lstm", hidden=32, batch=64, optimizer="adam", lr=1e-2, momentum=0.0,
                  nesterov=False, clip=1.0, epochs=6, dtype="float64", seed=0)
    values.update(overrides)
    return TrainConfig(**values)


def test_small_lstm_learns_the_adding_problem(tmp_path):
    result = train(small_adding(), tmp_path / "run", progress=False)
    epochs, mse = result.curve("test")
    assert epochs == list(range(7))
    assert mse[0] > 1 / 6  # the untrained model is worse than predicting 1
    assert mse[-1] < 0.05  # well below the 1/6 baseline: it found the marked values
    assert result.steps == 6 * 40 and result.steps_per_s > 0


def _interrupt_at(step):
    def callback(current, loss):
        if current == step:
            signal.raise_signal(signal.SIGINT)  # what Ctrl-C sends
    return callback


def _strip_wall(records):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in records]


def test_ctrl_c_checkpoint_and_resume_are_bit_identical(tmp_path):
    config = small_adding(epochs=3, log_every=1, task_options={"T": 8, "n_train": 640,
                                                               "n_test": 64})
    straight = train(config, tmp_path / "straight", progress=False)

    with pytest.raises(KeyboardInterrupt, match="checkpoint"):
        train(config, tmp_path / "split", progress=False, callback=_interrupt_at(13))
    assert (tmp_path / "split" / "checkpoint.npz").exists()
    partial = read_metrics(tmp_path / "split")
    assert max(r["step"] for r in partial) == 13  # interrupted mid-epoch (10 steps per epoch)
    resumed = train(config, tmp_path / "split", progress=False)
    assert resumed.resumed_from == 13

    a, b = _strip_wall(straight.history), _strip_wall(resumed.history)
    assert len(a) == len(b) == 3 * 10 + 4  # 30 train lines, 4 evaluations
    assert a == b  # every loss, bit for bit
    assert _strip_wall(read_metrics(tmp_path / "split")) == a


def test_run_directory_contents(tmp_path):
    out = tmp_path / "run"
    train(small_adding(epochs=2, seed=5, log_every=20), out, progress=False)
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 5 and config["cell"] == "lstm" and config["task_options"]["T"] == 10
    records = read_metrics(out)
    for r in records:
        assert {"step", "epoch", "split", "loss"} <= set(r)
    evals = [r for r in records if r["split"] == "test"]
    assert [r["epoch"] for r in evals] == [0, 1, 2] and all("metric" in r for r in evals)
    assert [r["step"] for r in records if r["split"] == "train"] == [20, 40, 60, 80]
    with open(out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(records)
    assert float(rows[-1]["loss"]) == pytest.approx(records[-1]["loss"], rel=1e-12)


def test_resume_refuses_a_different_config_but_allows_more_epochs(tmp_path):
    out = tmp_path / "run"
    train(small_adding(epochs=1), out, progress=False)
    with pytest.raises(CheckpointError, match="hidden"):
        train(small_adding(epochs=1, hidden=16), out, progress=False)
    more = train(small_adding(epochs=2), out, progress=False)
    assert more.resumed_from == 40 and more.steps == 80


@pytest.mark.parametrize("task_name, options, embedding", [
    ("copy", {"T": 3, "n_train": 8, "n_test": 4}, 5),
    ("art", {"K": 2, "n_train": 8, "n_valid": 2, "n_test": 4}, 0),
    ("adding", {"T": 4, "n_train": 8, "n_test": 4}, 0),
])
def test_whole_model_gradient_matches_finite_differences(task_name, options, embedding):
    task = make_task(task_name, **options)
    model = SequenceModel(task, "wmc", 3, embedding=embedding, dtype="float64", seed=1)
    batch = task.batch("train", [0, 1, 2], dtype="float64")
    _, _, grads = model.run(batch)
    assert set(grads) == set(model.params)
    rng = np.random.default_rng(0)
    for name, p in model.params.items():
        for flat in rng.choice(p.size, size=min(4, p.size), replace=False):
            idx = np.unravel_index(flat, p.shape)
            numeric = derivative(lambda: [model.run(batch, need_grads=False)[0]], [1.0],
                                 entry_mover(p, idx), eps=EPS)
            err = float(relative_error(np.array(grads[name][idx]), np.array(numeric), FLOOR))
            assert err < TOL, (name, idx, grads[name][idx], numeric)


def test_char_lm_reports_bits_per_character(tmp_path):
    config = TrainConfig(task="charlm", task_options={"T": 20, "text": "small"}, cell="lstm",
                         hidden=16, embedding=8, batch=8, optimizer="adam", lr=1e-2, momentum=0.0,
                         nesterov=False, epochs=1, steps_per_epoch=3, dtype="float64",
                         eval_splits=("valid",))
    result = train(config, tmp_path / "lm", progress=False)
    r = result.final["valid"]
    assert r["metric"] == pytest.approx(r["loss"] / np.log(2), rel=1e-12)  # BPC = CE / ln 2


def test_presets_cover_the_paper_setups():
    for name in PRESETS:
        preset_config(name).validate()
    c = preset_config("wmc-adding-400")
    assert (c.task, c.task_options["T"], c.cell, c.hidden, c.batch) == ("adding", 400, "wmc",
                                                                        128, 128)
    assert (c.optimizer, c.lr, c.momentum, c.nesterov, c.clip, c.epochs) == (
        "sgd", 1e-2, 0.9, True, 1.0, 200)
    assert preset_config("peephole-copy-200").epochs == 500
    lm = preset_config("wmc-charlm-150")  # PTB is not shipped: its text must fill a batch
    assert make_task("charlm", **lm.task_options).size("train") >= lm.batch
    assert {"fw_lstm-art-k8", "fw_rnn-mart-k16", "ln_lstm-art-k4"} <= set(PRESETS)
    with pytest.raises(ConfigError, match="unknown preset"):
        preset_config("wmc-adding-800")


def test_cli_train_with_flags_and_preset_override(tmp_path, capsys):
    out = tmp_path / "cli"
    code = npcell_main(["train", "--task", "adding", "--T", "6", "--n-train", "64",
                        "--n-test", "16", "--cell", "peephole", "--hidden", "4", "--batch", "32",
                        "--lr", "1e-2", "--momentum", "0.9", "--nesterov", "--clip", "1.0",
                        "--epochs", "1", "--seed", "3", "--out", str(out), "--no-progress"])
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["cell"] == "peephole" and config["seed"] == 3 and config["nesterov"] is True
    assert "test: loss" in capsys.readouterr().out
    out2 = tmp_path / "preset"
    code = npcell_main(["train", "--preset", "wmc-adding-200", "--T", "5", "--n-train", "32",
                        "--n-test", "8", "--hidden", "4", "--batch", "16", "--epochs", "1",
                        "--steps-per-epoch", "1", "--out", str(out2), "--no-progress"])
    assert code == 0
    config = json.loads((out2 / "config.json").read_text())
    assert config["preset"] == "wmc-adding-200" and config["task_options"]["T"] == 5
    assert config["lr"] == 1e-2 and config["nesterov"] is True and config["hidden"] == 4
    assert npcell_main(["train", "--task", "adding", "--out", str(tmp_path / "x"),
                        "--hidden", "0"]) == 2  # a clear one-line error, not a traceback
    assert "hidden must be a positive int" in capsys.readouterr().err


@pytest.mark.gpu
def test_training_on_cupy_matches_numpy(tmp_path):
    import npcell

    config = small_adding(epochs=1, steps_per_epoch=5, log_every=1,
                          task_options={"T": 6, "n_train": 640, "n_test": 64})
    on_cpu = train(config, tmp_path / "cpu", progress=False)
    with npcell.use_backend("cupy"):
        on_gpu = train(config, tmp_path / "gpu", progress=False)
    cpu_losses = [r["loss"] for r in on_cpu.history]
    gpu_losses = [r["loss"] for r in on_gpu.history]
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-9)
