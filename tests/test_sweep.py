"""training/sweep.py: the same sweep through local joblib workers and a real Dask cluster."""

from __future__ import annotations

import pytest

from npcell.errors import ConfigError
from npcell.training import TrainConfig, read_metrics
from npcell.training.sweep import run_dirs, run_sweep


def _configs():
    return [TrainConfig(task="adding", task_options={"T": 6, "n_train": 64, "n_test": 32},
                        cell=cell, hidden=4, batch=16, epochs=1, steps_per_epoch=2,
                        dtype="float64", seed=seed, log_every=1)
            for seed in (0, 1) for cell in ("lstm", "wmc")]


def test_local_sweep_rows_follow_configs(tmp_path):
    rows = run_sweep(_configs(), tmp_path, n_jobs=1)
    assert [(r["cell"], r["seed"]) for r in rows] == [("lstm", 0), ("wmc", 0), ("lstm", 1),
                                                      ("wmc", 1)]
    for row in rows:
        assert row["steps"] == 2 and row["steps_per_s"] > 0
        assert row["history"] == read_metrics(row["run_dir"])  # the row is the run folder's log
        assert row["already_finished"] is False
    again = run_sweep(_configs(), tmp_path, n_jobs=1)  # every run resumes finished: a redraw
    assert all(r["already_finished"] and r["steps_per_s"] > 0 for r in again)


def test_dask_cluster_runs_the_same_sweep(tmp_path):
    """A real LocalCluster on the loopback interface (one in-process worker), addressed by URL
    as a remote one would be; its rows equal the local sweep's losses exactly (float64)."""
    distributed = pytest.importorskip("dask.distributed")
    local = run_sweep(_configs(), tmp_path / "local", n_jobs=1)
    with distributed.LocalCluster(n_workers=1, processes=False, threads_per_worker=2,
                                  protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        remote = run_sweep(_configs(), tmp_path / "dask", cluster=cluster.scheduler_address,
                           threads=None)
    assert len(remote) == len(local) == 4
    for a, b in zip(local, remote):
        assert (a["cell"], a["seed"]) == (b["cell"], b["seed"])
        assert b["run_dir"].startswith(str(tmp_path / "dask"))
        assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]


def test_run_names_must_be_distinct(tmp_path):
    with pytest.raises(ConfigError, match="distinct run name"):
        run_dirs(_configs()[:2], tmp_path, names=["a", "a"])
