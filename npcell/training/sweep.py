"""Sweeps: many training runs (cells x seeds x settings) through joblib, locally or on Dask.

::

    from npcell.training.sweep import run_sweep
    rows = run_sweep(configs, "runs/sweep")                       # local worker processes
    rows = run_sweep(configs, "runs/sweep", cluster="tcp://10.0.0.5:8786")   # a Dask cluster

Each config trains into ``out_root/<cell>-s<seed>`` (or ``<name>`` when ``names`` are given),
so a sweep that was stopped resumes every run from its checkpoint when started again.

The same ``joblib.Parallel`` call does the work in both cases; only its backend changes:

* local (default): joblib's ``loky`` backend, ``n_jobs`` worker processes on this machine;
* ``cluster=ADDRESS``: joblib's ``dask`` backend on a ``dask.distributed`` scheduler at ADDRESS
  (``dask-scheduler`` + ``dask-worker`` on other machines, or a ``LocalCluster``). The workers
  need npcell installed and write into ``out_root``, so on several machines it must be a shared
  filesystem path. ``dask[distributed]`` is part of the ``parallel`` extra.

Each row is a plain dict (``cell``, ``seed``, ``run_dir``, ``history``, ``final``, ``steps``,
``steps_per_s``, ``wall_s``, ``already_finished``), so rows gathered from remote workers need no
npcell classes.
"""

from __future__ import annotations

import time
from pathlib import Path

from joblib import Parallel, delayed, parallel_config

from ..backend import BLAS_THREAD_VARIABLES, limit_blas_threads  # noqa: F401 - re-exported
from ..errors import ConfigError
from .config import TrainConfig
from .loop import train


def train_one(config_dict: dict, run_dir: str, threads: int | None = 1) -> dict:
    """One run of a sweep, as a worker executes it: train, then return the run's row.

    threads : BLAS threads for this worker process (None: leave them alone, as a thread-based
        worker sharing its process with others must).
    """
    if threads is not None:
        limit_blas_threads(threads)
    config = TrainConfig.from_dict(config_dict)
    t0 = time.perf_counter()
    # progress=None: in a worker (no terminal) that is a line every 30 s with the ETA
    result = train(config, run_dir, progress=None)
    return {
        "cell": config.cell,
        "seed": config.seed,
        "run_dir": str(run_dir),
        "history": result.history,
        "final": result.final,
        "steps": result.steps,
        "steps_per_s": result.steps_per_s,
        "wall_s": time.perf_counter() - t0,
        "already_finished": result.already_finished,  # resumed a finished run: nothing trained
    }


def run_dirs(configs, out_root, names=None) -> list[Path]:
    """Where each config trains: ``out_root/<cell>-s<seed>`` unless ``names`` are given."""
    names = names or [f"{c.cell}-s{c.seed}" for c in configs]
    if len(names) != len(configs) or len(set(names)) != len(names):
        raise ConfigError(f"need one distinct run name per config; got {len(names)} names "
                         f"({len(set(names))} distinct) for {len(configs)} configs")
    return [Path(out_root) / name for name in names]


def run_sweep(configs, out_root, *, n_jobs=1, threads=1, cluster=None, names=None) -> list:
    """Train every :class:`TrainConfig` in ``configs``; the rows in the order of ``configs``.

    n_jobs : local worker processes (ignored with ``cluster``: the cluster's workers decide).
    threads : BLAS threads per run (None: unchanged).
    cluster : the address of a ``dask.distributed`` scheduler (``tcp://host:8786``) or None.
    """
    jobs = [delayed(train_one)(c.to_dict(), str(d), threads)
            for c, d in zip(configs, run_dirs(configs, out_root, names))]
    if cluster is None:
        with parallel_config(backend="loky", n_jobs=n_jobs):
            return Parallel()(jobs)
    from dask.distributed import Client  # optional extra: imported only when a cluster is named

    with Client(cluster), parallel_config(backend="dask", n_jobs=-1):
        return Parallel()(jobs)
