"""The reproduction scripts' bookkeeping: results rows, figure names, standard errors,
verdicts; and that docs/results.md says what it measured."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

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
