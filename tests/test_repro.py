"""The reproduction scripts' bookkeeping: results rows, figure names, standard errors,
verdicts; and that docs/results.md says what it measured."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import repro_adding  # noqa: E402
import repro_common as rc  # noqa: E402


def test_results_rows_never_print_a_missing_epoch():
    text = (ROOT / "docs" / "results.md").read_text()
    assert "ep None" not in text and "at None" not in text


def test_every_results_figure_exists_and_is_named_in_figures_readme():
    rows = [line for line in (ROOT / "docs" / "results.md").read_text().splitlines()
            if line.startswith("| ") and not line.startswith(("| experiment", "|---"))]
    assert rows
    named = (ROOT / "figures" / "README.md").read_text()
    for row in rows:
        for figure in re.findall(r"figures/([\w.-]+\.png)", row):
            assert (ROOT / "figures" / figure).is_file(), figure
            assert f"`{figure}`" in named, figure


def test_crossing_is_said_in_steps_or_as_not_reached():
    class Args:
        epochs, steps_per_epoch = 25, 100

    assert repro_adding._when(12, Args) == "at step 1,200 (ep 12)"
    assert repro_adding._when(None, Args) == "not within 2,500 steps"
    assert rc.first_epoch_below([0, 1, 2], [0.2, 0.05, 0.01], 0.1) == 1
    assert rc.first_epoch_below([0, 1], [0.2, 0.15], 0.1) is None


def test_mean_and_standard_error_over_seeds():
    values = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]])  # 3 seeds x 2 epochs
    mean, se = rc.mean_and_stderr(values)
    np.testing.assert_allclose(mean, [3.0, 6.0])
    np.testing.assert_allclose(se, [2.0 / np.sqrt(3), 4.0 / np.sqrt(3)])
    _, se_one = rc.mean_and_stderr(values[:1])
    assert np.all(se_one == 0)  # one seed: no band, not NaN


def test_results_and_figure_rows_are_replaced_not_duplicated(tmp_path, monkeypatch):
    monkeypatch.setattr(rc, "RESULTS", tmp_path / "results.md")
    monkeypatch.setattr(rc, "FIGURES", tmp_path)
    (tmp_path / "README.md").write_text("# Figures\n\n| figure | command |\n|---|---|\n")
    for wall in (60.0, 120.0):
        rc.record_result("copy T=100", command="python x.py", wall_s=wall, ours="a",
                         paper="b", notes="c")
        rc.record_figure(tmp_path / "copy.png", "python x.py")
    rows = [line for line in rc.RESULTS.read_text().splitlines() if line.startswith("| copy")]
    assert len(rows) == 1 and rows[0].endswith(" | 2.0 min | a | b | c |")
    assert rc.machine() in rows[0] and "commit " in rows[0]  # every row says which code ran
    assert (tmp_path / "README.md").read_text().count("`copy.png`") == 1


def test_identical_final_values_are_no_separation_not_an_order():
    # the adding T=100 SGD row: every cell at the 1/6 plateau, 0.1671 x 3
    assert rc.no_separation([0.1671, 0.1671, 0.1671]) == \
        "no separation (final values within 0.0001)"
    assert rc.no_separation([0.17193, 0.17193, 0.17204]) == \
        "no separation (final values within 0.0002)"
    # a spread above 1e-3 but inside the seeds' standard error is still a tie
    assert rc.no_separation([0.20, 0.198, 0.185], [0.001, 0.02, 0.003]) == \
        "no separation (final values within 0.0150)"
    # a spread larger than both the standard errors and 1e-3 leaves the order standing
    assert rc.no_separation([0.0135, 0.0422, 0.0229], [0.002, 0.003, 0.004]) is None


def test_new_rows_go_into_the_results_table_not_a_later_one(tmp_path, monkeypatch):
    monkeypatch.setattr(rc, "RESULTS", tmp_path / "results.md")
    rc.RESULTS.write_text(rc.RESULTS_HEADER.rstrip("\n") + "\n| old | c | m | 1 min | a | b | n |\n"
                          "\n## Later\n\n| claim | held? |\n|---|---|\n| x | yes |\n")
    rc.record_result("new", command="python x.py", wall_s=60.0, ours="a", paper="b", notes="c")
    lines = rc.RESULTS.read_text().splitlines()
    assert lines.index("| x | yes |") == len(lines) - 1
    assert lines[lines.index("| old | c | m | 1 min | a | b | n |") + 1].startswith("| new |")


def test_rows_skip_a_summary_table_that_comes_before_the_run_table(tmp_path, monkeypatch):
    monkeypatch.setattr(rc, "RESULTS", tmp_path / "results.md")
    rc.RESULTS.write_text("# Reproductions\n\n| claim | reproduces |\n|---|---|\n| A | yes |\n\n"
                          + rc.RUN_TABLE_HEADER + "\n|---|---|---|---|---|---|---|\n")
    rc.record_result("new", command="python x.py", wall_s=60.0, ours="a", paper="b", notes="c")
    lines = rc.RESULTS.read_text().splitlines()
    assert lines[lines.index("| A | yes |") + 1] == ""  # the summary table got no row
    assert lines[-1].startswith("| new |")


# ----- the pre-registered decision rules of docs/results.md (claims A and D) --------------------

import replication_report as report  # noqa: E402


def _adding(first_by_seed, cap=20_000):
    """A summary where, per seed, the named cell reaches MSE < 0.01 first (the others later or
    never)."""
    runs = []
    for seed, winner in enumerate(first_by_seed):
        for k, cell in enumerate(("lstm", "peephole", "wmc")):
            reached = 5_000 if cell == winner else (9_000 + 1_000 * k if k != 1 else None)
            runs.append({"cell": cell, "seed": seed, "steps_below_0.1": reached,
                         "steps_below_0.01": reached, "last_step": reached or cap,
                         "last_test_mse": 0.009 if reached else 0.17, "cap": cap,
                         "steps_per_s": 50.0, "wall_s": 60.0})
    return {"seeds": list(range(len(first_by_seed))), "runs": runs, "command": "x",
            "commit": "c", "dtype": "float32", "blas_threads": 1, "wall_s": 1, "cpu_s": 1,
            "machine": "m", "setup": {"steps": cap, "T": 200, "hidden": 32}}


def test_claim_a_is_supported_only_when_wmc_is_first_in_four_of_five_seeds():
    assert report.verdict_a(_adding(["wmc"] * 4 + ["lstm"]))[0] == "supported"
    assert report.verdict_a(_adding(["wmc"] * 3 + ["lstm"] * 2))[0] == "not separated"
    assert report.verdict_a(_adding(["lstm"] * 4 + ["wmc"]))[0] == "contradicted"
    # the peephole never got there in these summaries: "final MSE similar" fails
    assert report.section_a(_adding(["wmc"] * 5))[1][2] == "not supported"


def test_a_tie_has_no_single_first_and_a_cell_that_never_arrives_is_not_first():
    summary = _adding(["wmc"])
    for r in summary["runs"]:
        r["steps_below_0.01"] = 5_000 if r["cell"] in ("wmc", "lstm") else None
    assert report.firsts(summary, 0.01) == {0: "-"}
    for r in summary["runs"]:
        r["steps_below_0.01"] = None
    assert report.firsts(summary, 0.01) == {0: None}


def test_claim_d_compares_fw_lstms_lead_between_k_seed_by_seed():
    def art(lead4, lead8):
        runs = []
        for seed, (a, b) in enumerate(zip(lead4, lead8)):
            for K, lead in ((4, a), (8, b)):
                runs += [{"K": K, "cell": "fw_rnn", "seed": seed, "test_accuracy": 0.3},
                         {"K": K, "cell": "ln_lstm", "seed": seed, "test_accuracy": 0.25},
                         {"K": K, "cell": "fw_lstm", "seed": seed, "test_accuracy": 0.3 + lead}]
        return {"seeds": list(range(len(lead4))), "runs": runs, "command": "x", "commit": "c",
                "dtype": "float32", "blas_threads": 1, "wall_s": 1, "cpu_s": 1, "machine": "m"}

    verdict, _, best = report.section_d(art([0.1] * 5, [0.3] * 5))[1]
    assert verdict == "supported" and best == {4: 5, 8: 5}
    assert report.section_d(art([0.3] * 5, [0.1] * 5))[1][0] == "contradicted"
    verdict, _, best = report.section_d(art([0.1, 0.3, 0.1, 0.3, 0.2], [0.2] * 5))[1]
    assert verdict == "not separated"
    assert report.section_d(art([-0.1] * 5, [-0.05] * 5))[1][2] == {4: 0, 8: 0}


@pytest.mark.slow
def test_the_whole_replication_pipeline_runs_at_toy_size(tmp_path):
    import shutil
    import subprocess

    clone = tmp_path / "repo"
    shutil.copytree(ROOT / "scripts", clone / "scripts")
    (clone / "docs").mkdir()
    done = subprocess.run(["bash", "scripts/replicate.sh", "smoke"], cwd=clone, text=True,
                          capture_output=True, env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "== summary" in done.stdout and "claim A" in done.stdout
    assert (clone / "runs/replicate-smoke/figures/replication_adding_T200.png").stat().st_size


def test_claim_c_needs_contrast_at_init_and_persistence_in_training():
    def fig2(wmc_ratio, peephole_at_60):
        init = [{"seed": s, "init": "normal-1", "forget_bias": 1.0, "lstm": 1.0,
                 "peephole": 100.0 if s < 2 else 1.0, "wmc": wmc_ratio if s == 0 else 1.0}
                for s in range(4)]
        train = [{"seed": s, "kind": kind, "c_T": {"0": value, "60": end}}
                 for s in (0, 1) for kind, value, end in (("lstm", 1.0, 1.0),
                                                         ("peephole", 100.0, peephole_at_60),
                                                         ("wmc", 2.0, 2.0))]
        return {"flood_ratio": 3.0, "init": init, "train": train, "command": "x", "cpu_s": 60}

    assert report.section_c(fig2(2.0, 150.0))[1][0] == "reproduces as in the paper"
    assert report.section_c(fig2(3.5, 150.0))[1][0].startswith("partial: the peephole floods")
    assert report.section_c(fig2(2.0, 1.2))[1][0].startswith("contrast supported")
    assert report.reproduces_c(report.section_c(fig2(3.5, 1.2))[1][0]) == "no"


def test_claim_b_on_one_seed_with_adam_is_never_a_plain_yes():
    assert report.reproduces_b("supported at this size: only wmc leaves the plateau").startswith(
        "partial")
    assert report.reproduces_b("not a property of the cell alone: ...").startswith("no")
    assert report.reproduces_b("not informative: neither leaves the plateau") == \
        "not testable here"
