"""benchmarks/gpu_check.sh keeps working on a CPU: its dry run passes every part (slow, ~30 s).

The GPU machine gives the check one try of a few minutes, so the command must not rot while the
code around it moves; this runs it the way the machine would, minus the device.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_dry_run_passes_every_part(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable)
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    parts = [line.split("\t") for line in (tmp_path / "parts.tsv").read_text().splitlines()[1:]]
    assert [p[0] for p in parts] == ["versions", "gradcheck", "equality", "kernels", "tests",
                                     "bench", "report"]
    assert all(p[1] == "ok" for p in parts), parts
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["mode"].startswith("DRY RUN")
    assert summary["tests"]["passed"] > 30 and not summary["tests"]["failed"]
    kinds = {r["kind"] for r in summary["gradcheck"]["results"]}
    assert {"lstm", "peephole", "wmc", "gru", "ulstm"} <= kinds
    assert all(r["ok"] for r in summary["gradcheck"]["results"] + summary["equality"]["results"]
               + summary["kernels"]["results"])
    bench = summary["bench"]["results"]
    assert {r["shape"] for r in bench} >= {"adding", "adding-H512", "adding-H1024"}
    assert not any("error" in r for r in bench)
    md = (tmp_path / "summary.md").read_text()
    assert "ratio vs eager" in md and "torch.nn.LSTM" in md
