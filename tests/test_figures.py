"""Every figure `npcell demo` and the regime commands write tells its claim (issue 26): no slope
without a good fit, no linear axis over decades, no smear, no equal lines hiding each other, no
repeated legend entry, no empty or text-only panel. Each check is shown catching its fault."""

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from figure_checks import figure_problems  # noqa: E402 - tests/figure_checks.py

import npcell  # noqa: E402
from npcell import diagnostics as D  # noqa: E402
from npcell.tasks.adding import make_batch  # noqa: E402


def diagnose_adding():
    """figures/diagnose_adding.png: `npcell diagnose --cell peephole,wmc,lstm --T 400`."""
    x, y = make_batch(400, 32, np.random.default_rng(0))
    cells = [npcell.make_cell(k, 2, 64, seed=0) for k in ("peephole", "wmc", "lstm")]
    return D.compare(cells, x, y, task="adding T=400", seed=0)


# name -> how its Comparison is made: the demo's two figures and the three regime figures
FIGURES = {
    "demo_diagnose_adding / diagnose_pytorch-init": lambda: D.run_regime(
        "pytorch-init", ("lstm", "peephole", "wmc")),
    "demo_growing_cell / diagnose_flooding": lambda: D.run_regime(
        "flooding", ("lstm", "peephole", "wmc")),
    "diagnose_eq21-vs-eq14": lambda: D.run_regime("eq21-vs-eq14"),
    "diagnose_adding": diagnose_adding,
}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_demo_and_regime_figures_tell_their_claim(name):
    result = FIGURES[name]()
    fig = result.plot()
    assert isinstance(fig, matplotlib.figure.Figure)
    assert figure_problems(fig) == []
    if result.regime is not None:  # the claim and how the regime was built, in the figure
        assert result.regime.claim in fig.get_suptitle().replace("\n", " ")
        assert "construction:" in fig.get_suptitle()


def test_eq21_vs_eq14_says_each_cell_has_its_own_w_kc():
    fig = D.run_regime("eq21-vs-eq14").plot()
    title = fig.get_suptitle().replace("\n", " ")
    assert "each cell gets its own W_kc by construction" in title
    saturation = fig.axes[2]
    labels = [t.get_text() for t in saturation.get_legend().get_texts()]
    assert "peephole f; wmc f" in labels  # both pinned at 100%: one line names both


def test_single_diagnosis_plot_is_clean():
    cell = npcell.make_cell("peephole", 2, 16, seed=0)
    x, y = make_batch(200, 8, np.random.default_rng(1))
    fig = npcell.diagnose(cell, x, y).plot()
    assert isinstance(fig, matplotlib.figure.Figure)
    assert figure_problems(fig) == []


# ----- each check catches the fault it names ------------------------------------------------
def one_axes():
    fig, ax = plt.subplots()
    return fig, ax


def test_check_catches_a_slope_with_a_poor_fit():
    fig, ax = one_axes()
    ax.plot([1, 10, 100], [1, 3, 2], label="wmc: slope 2.03 (R² 0.12)")
    ax.set_xscale("log")
    ax.legend()
    assert any("without a good fit" in p for p in figure_problems(fig))
    fig.suptitle("W_ic term ~ ‖c‖^2.03 (wmc, R² 0.12)")
    assert sum("without a good fit" in p for p in figure_problems(fig)) == 2


def test_check_catches_a_slope_over_too_few_decades():
    fig, ax = one_axes()
    ax.plot([1, 2], [1, 2], label="slope 1.00 (R² 1.00, 0.3 decades)")
    ax.legend()
    assert any("too few decades" in p for p in figure_problems(fig))


def test_check_catches_decades_on_a_linear_axis():
    fig, ax = one_axes()
    ax.plot(np.arange(5), np.logspace(-10, 0, 5))
    assert any("decades on a linear axis" in p for p in figure_problems(fig))
    ax.set_yscale("log")
    assert figure_problems(fig) == []


def test_check_catches_a_smear_at_one_x():
    fig, ax = one_axes()
    ax.plot(np.full(50, 0.6), np.logspace(-78, 0, 50), ".")
    ax.set_xscale("log")
    ax.set_yscale("log")
    assert any("smears" in p for p in figure_problems(fig))


def test_check_catches_equal_lines_and_repeated_legend_entries():
    fig, ax = one_axes()
    ax.plot([0, 1], [100, 100], label="peephole: f")
    ax.plot([0, 1], [100, 100], label="wmc: f")
    ax.legend()
    assert any("hides under" in p for p in figure_problems(fig))
    fig, ax = one_axes()
    ax.plot([0, 1], [1, 2], label="a")
    ax.plot([0, 1], [2, 3], label="a")
    ax.legend()
    assert any("repeats an entry" in p for p in figure_problems(fig))


def test_check_catches_empty_and_text_only_panels():
    fig, (ax, text_only) = plt.subplots(1, 2)
    ax.plot([0, 1], [1, 2])
    text_only.set_axis_off()
    text_only.text(0.5, 0.5, "no gate unit is ever saturated")
    assert figure_problems(fig) == ["a panel: empty (no data)"]
