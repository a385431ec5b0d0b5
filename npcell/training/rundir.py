"""Run directories: the one module that writes, reads and groups them.

A run directory (what :func:`npcell.training.train` writes, what ``npcell plot-run`` and the
reproduction scripts read) holds

* ``config.json``: the TrainConfig as a dict (``"seed"`` included);
* ``metrics.jsonl``: one JSON object per line with keys ``step``, ``epoch``, ``split``, ``loss``,
  ``metric`` (optional) and ``wall_s``;
* ``metrics.csv``: the same rows as CSV;
* ``checkpoint.npz``: see npcell.training.checkpoint.

Runs of one setting with different seeds are pooled into one curve by :func:`group_runs`, and
summarised by the one mean +- standard error of npcell, :func:`mean_and_stderr`.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy

from ..errors import ConfigError

CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.jsonl"
CSV_NAME = "metrics.csv"
CHECKPOINT_NAME = "checkpoint.npz"
CSV_COLUMNS = ("step", "epoch", "split", "loss", "metric", "wall_s")
REQUIRED_KEYS = ("step", "split", "loss")


class RunDir:
    """The files of one run directory, and how a run writes them."""

    def __init__(self, path):
        self.path = Path(path)
        self.config = self.path / CONFIG_NAME
        self.metrics = self.path / METRICS_NAME
        self.csv = self.path / CSV_NAME
        self.checkpoint = self.path / CHECKPOINT_NAME

    def write_config(self, config: dict):
        """config.json, replaced atomically (a crash leaves the old one or the new one)."""
        tmp = Path(str(self.config) + ".tmp")
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.config)

    def append(self, record: dict):
        """One metrics record, to metrics.jsonl and metrics.csv."""
        with open(self.metrics, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        with open(self.csv, "a", newline="") as fh:
            csv.writer(fh).writerow([record.get(k, "") for k in CSV_COLUMNS])

    def rewrite(self, history: list):
        """Both logs rewritten to exactly ``history`` (a resume drops what came after its
        checkpoint)."""
        with open(self.metrics, "w") as fh:
            for record in history:
                fh.write(json.dumps(record) + "\n")
        with open(self.csv, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(CSV_COLUMNS)
            for record in history:
                writer.writerow([record.get(k, "") for k in CSV_COLUMNS])


def read_metrics(run_dir) -> list:
    """The records of ``run_dir/metrics.jsonl`` as a list of dicts ([] when there is none).

    A line that is not JSON, or lacks step, split or loss, is a ConfigError naming file and line.
    """
    path = Path(run_dir) / METRICS_NAME
    if not path.exists():
        return []
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}, line {lineno}: not JSON ({err.msg})") from None
        missing = [k for k in REQUIRED_KEYS if k not in row]
        if missing:
            raise ConfigError(f"{path}, line {lineno}: missing key(s) {missing}")
        rows.append(row)
    return rows


def read_run(run_dir) -> tuple[dict, list[dict]]:
    """(config, rows) of one run directory: ``config.json`` (optional, {} without) and the
    records of ``metrics.jsonl`` (which must exist)."""
    run = RunDir(run_dir)
    if not run.metrics.is_file():
        raise ConfigError(f"{run_dir} is not a run directory: {run.metrics} does not exist")
    rows = read_metrics(run_dir)
    config = json.loads(run.config.read_text(encoding="utf-8")) if run.config.is_file() else {}
    return config, rows


def expand_run_dirs(paths) -> list[str]:
    """Run directories named directly, or the run subdirectories of a parent directory."""
    out = []
    for path in paths:
        path = str(path)
        if os.path.isfile(os.path.join(path, METRICS_NAME)):
            out.append(path)
            continue
        subs = sorted(os.path.join(path, s) for s in os.listdir(path)) if os.path.isdir(
            path) else []
        runs = [s for s in subs if os.path.isfile(os.path.join(s, METRICS_NAME))]
        if not runs:
            raise ConfigError(f"{path} holds no {METRICS_NAME} and no run subdirectories")
        out.extend(runs)
    return out


def flatten_config(config, prefix="") -> dict:
    """Nested config dicts as dotted leaves: {'task_options': {'T': 50}} -> {'task_options.T': 50}.

    Lists become tuples so that every leaf can be compared and hashed."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_config(value, prefix=f"{name}."))
        else:
            out[name] = tuple(value) if isinstance(value, list) else value
    return out


def _short(value, width=16) -> str:
    text = str(value)
    return text if len(text) <= width else text[:width - 1] + "…"


def group_runs(run_dirs) -> dict:
    """Group runs whose config.json is equal apart from 'seed': label -> list of (config, rows).

    Only runs with *different* seeds are pooled (as seeds of one setting); a run whose seed
    another run of its setting already has is its own curve, named by its directory. Labels
    list only the (flattened) config entries that differ between the groups, e.g.
    'cell=wmc, lr=0.01'; with no config to tell runs apart, the directory name.
    """
    runs = [(d, *read_run(d)) for d in expand_run_dirs(run_dirs)]
    groups: dict[str, list] = {}  # key -> [(run_dir, config, rows)]
    bases: dict[str, dict] = {}
    for run_dir, config, rows in runs:
        base = {k: v for k, v in flatten_config(config).items() if k != "seed"}
        key = json.dumps(base, sort_keys=True, default=str) if config else run_dir
        members = groups.setdefault(key, [])
        if config and any(c.get("seed") == config.get("seed") for _, c, _ in members):
            key = f"{key}#{run_dir}"  # the same seed again: a repeat, not another seed
            members = groups.setdefault(key, [])
        members.append((run_dir, config, rows))
        bases[key] = base
    varying = sorted({k for base in bases.values() for k in base
                      if any(other.get(k) != base[k] for other in bases.values())})
    labels = {}
    for key, members in groups.items():
        base = bases[key]
        parts = [f"{k}={_short(base[k])}" for k in varying if k in base]
        label = ", ".join(parts)
        if "#" in key or not label:
            name = os.path.basename(os.path.normpath(members[0][0]))
            label = f"{label} [{name}]" if label else name
        labels[label] = [(config, rows) for _, config, rows in members]
    return labels


# ----- one mean +- standard error over seeds -------------------------------------------------
def mean_and_stderr(values):
    """Mean over seeds (axis 0) and its standard error, std (ddof=1) / sqrt(n); 0 for one seed.

    ``values``: (n_seeds, n_points)."""
    values = numpy.asarray(values, dtype=float)
    mean = values.mean(axis=0)
    if values.shape[0] < 2:
        return mean, numpy.zeros_like(mean)
    return mean, values.std(axis=0, ddof=1) / math.sqrt(values.shape[0])


def align_curves(curves: list[dict]):
    """Curves as {x: value}, one per seed -> (x (n,), values (n_seeds, n)) over the x all
    seeds share."""
    shared = sorted(set.intersection(*(set(c) for c in curves)))
    values = numpy.array([[c[x] for x in shared] for c in curves], dtype=float)
    return numpy.array(shared, dtype=float), values
