"""npcell.plots: every panel runs headless, returns its Axes and draws the data it was given."""

import json

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import npcell  # noqa: E402
from npcell import diagnostics as D  # noqa: E402
from npcell import plots  # noqa: E402
from npcell.errors import ConfigError  # noqa: E402
from npcell.tasks.adding import make_batch  # noqa: E402


@pytest.fixture(scope="module")
def diags():
    x, y = make_batch(15, 4, np.random.default_rng(0))
    cells = [npcell.make_cell(k, 2, 5, seed=1) for k in ("lstm", "peephole", "wmc")]
    return [npcell.diagnose(c, x, y, task="adding T=15") for c in cells]


@pytest.fixture(autouse=True)
def no_show_and_close(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("npcell.plots must never call plt.show()")

    monkeypatch.setattr(plt, "show", refuse)
    yield
    plt.close("all")


def test_backend_is_headless():
    assert matplotlib.get_backend().lower() == "agg"


def test_cell_norm_draws_mean_and_max_per_diagnosis(diags):
    ax = plots.cell_norm(diags)
    assert isinstance(ax, matplotlib.axes.Axes)
    lines = ax.get_lines()
    assert len(lines) == 2 * len(diags)
    for n, d in enumerate(diags):
        np.testing.assert_array_equal(lines[2 * n].get_ydata(), d.cell_norm_mean)
        np.testing.assert_array_equal(lines[2 * n + 1].get_ydata(), d.cell_norm_max)
        np.testing.assert_array_equal(lines[2 * n].get_xdata(), np.arange(d.T))
        assert lines[2 * n].get_label().startswith(d.label)
    assert ax.get_xlabel() == "time step t" and "c_t" in ax.get_ylabel()
    assert ax.get_yscale() == "log" and len(ax.get_title()) <= 30  # short titles
    assert ax.get_legend() is not None
    # the paper's three cells keep fixed colours
    assert [line.get_color() for line in lines[::2]] == ["#1f77b4", "#d62728", "#2ca02c"]


def test_cell_norm_on_a_given_axes_and_a_cell_without_c():
    fig, ax = plt.subplots()
    gru = npcell.diagnose(npcell.make_cell("gru", 2, 3), np.zeros((4, 2, 2)))
    assert plots.cell_norm(gru, ax=ax, show_max=False) is ax
    assert len(ax.get_lines()) == 1 and "h_t" in ax.get_lines()[0].get_label()


def test_saturation_heat_map_with_colour_bar(diags):
    d = diags[2]
    ax = plots.saturation(d, "f")
    images = ax.get_images()
    assert len(images) == 1
    np.testing.assert_array_equal(images[0].get_array(), d.saturation["f"].T)  # unit by time
    assert images[0].get_clim() == (0.0, 1.0)
    fig = ax.figure
    assert len(fig.axes) == 2  # the heat map and its colour bar
    assert fig.axes[1].get_ylabel() == "fraction of batch saturated"
    assert ax.get_xlabel() == "time step t" and ax.get_ylabel() == "unit"
    assert "f (sigmoid)" in ax.get_title() and "wmc" in ax.get_title()
    with pytest.raises(ConfigError, match="no gate"):
        plots.saturation(d, "zz")


def test_saturation_summary_draws_only_gates_that_saturate():
    sat = {"i": np.zeros((4, 3)), "f": np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1.0]])}
    d = D.Diagnosis(kind="x", label="x", task="t", loss=0.0, threshold=0.05, batch_size=1,
                    hidden_size=3, saturation=sat, gate_activation={"i": "sigmoid",
                                                                      "f": "sigmoid"},
                    dx_norm=np.zeros(4))
    ax = plots.saturation_summary(d)
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["x: i", "x: f"]
    np.testing.assert_allclose(lines[0].get_ydata(), 0)  # never saturated: a line at 0%, no text
    np.testing.assert_allclose(lines[1].get_ydata(), [0, 100 / 3, 200 / 3, 100])
    assert not ax.texts
    assert plots.informative_gates(d) == ["f"]  # the all-zero i map is not drawn


def test_weight_grad_panel_is_log_log_with_fitted_slopes(diags):
    ax = plots.weight_grad_vs_cell_norm(diags, gate="i", against="c")
    lines = ax.get_lines()
    assert len(lines) == 2  # lstm has no W_ic; peephole and wmc draw one series each
    peephole = diags[1]
    np.testing.assert_allclose(lines[0].get_xdata(), peephole.state_norm("c", prev=True))
    y = lines[0].get_ydata()
    assert np.isnan(y[0]) and peephole.grad_step_norm["W_ic"][0] == 0  # c_{-1} = 0: no point
    np.testing.assert_allclose(y[1:], peephole.grad_step_norm["W_ic"][1:])
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    term = plots.weight_grad_vs_cell_norm(diags, gate="o", what="term", against="c")
    np.testing.assert_allclose(term.get_lines()[1].get_xdata(), diags[2].state_norm("c"))
    np.testing.assert_allclose(term.get_lines()[1].get_ydata(), diags[2].term_norm["W_oc"])
    assert "eq. 14/21" in term.get_title()
    # T=15 steps span less than a decade of ||c||: no slope is claimed
    assert "no slope" in lines[0].get_label()
    # by default a flat ||c|| (< 1 decade) is not an x axis: the values are drawn over t
    over_t = plots.weight_grad_vs_cell_norm(diags, gate="i")
    assert over_t.get_xscale() == "linear" and over_t.get_yscale() == "log"
    np.testing.assert_array_equal(over_t.get_lines()[0].get_xdata(), np.arange(15))
    assert "over t" in over_t.get_title()
    empty = plots.weight_grad_vs_cell_norm(diags[0])
    assert not empty.get_lines() and "no W_ic" in empty.texts[0].get_text()
    with pytest.raises(ConfigError, match="gate must be"):
        plots.weight_grad_vs_cell_norm(diags, gate="g")


def test_fit_label_prints_the_slope_over_enough_decades():
    x = np.logspace(0, 2, 20)
    assert plots.fit_label(x, 3 * x) == "slope 1.00 (R² 1.00, 2.0 decades)"
    assert plots.fit_label(x[:8], 3 * x[:8]) == "no slope (‖c‖ spans 0.7 decades)"
    noise = np.random.default_rng(0).lognormal(0.0, 3.0, size=20)  # y unrelated to x
    assert plots.fit_label(x, noise).startswith("no slope (R² 0.")


def test_grad_flow_is_on_a_log_axis_and_skips_zeros(diags):
    ax = plots.grad_flow(diags, dx=True)
    assert ax.get_yscale() == "log"
    lines = ax.get_lines()
    assert len(lines) == 3 * len(diags)  # dh, dc, dx per cell
    d = diags[0]
    np.testing.assert_array_equal(lines[0].get_ydata(), d.dstate_norm["h"])
    dc = lines[1].get_ydata()
    assert np.isnan(dc[-1]) and d.dstate_norm["c"][-1] == 0  # nothing carried into c_{T-1}
    np.testing.assert_array_equal(dc[:-1], d.dstate_norm["c"][:-1])
    assert "dL/dh_t" in lines[0].get_label() and ax.get_xlabel() == "time step t"


def test_figures_have_no_empty_panels_and_a_computed_takeaway(diags):
    fig = plots.diagnosis_figure(diags[2])
    assert isinstance(fig, matplotlib.figure.Figure)
    assert all(ax.has_data() or ax.texts for ax in fig.axes if ax.get_label() != "<colorbar>")
    assert "wmc" in fig.get_suptitle() and D.takeaway([diags[2]]) in fig.get_suptitle()
    fig = plots.comparison_figure(diags)
    assert len(fig.axes) == 3 * 3
    assert all(name in fig.get_suptitle() for name in ("lstm", "peephole", "wmc"))
    titles = [ax.get_title() for ax in fig.axes]
    assert len(set(titles)) == len(titles)  # no two panels share (or collide on) a title
    regime = D.run_regime("pytorch-init")
    fig = plots.comparison_figure(regime)
    assert D.REGIMES["pytorch-init"].claim in fig.get_suptitle()
    assert regime.takeaway() in fig.get_suptitle()


def test_plots_imports_diagnostics_never_back():
    import ast
    from pathlib import Path

    source = Path(D.__file__).read_text()
    imported = {node.module for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(ast.parse(source))
                 if isinstance(node, ast.Import) for alias in node.names}
    assert not any("plots" in name for name in imported)
    assert "_save_figure" not in source


# ============================================================================================
# learning curves of run directories (npcell plot-run)
# ============================================================================================
def write_run(root, name, config, losses, split="train"):
    run = root / name
    run.mkdir()
    (run / "config.json").write_text(json.dumps(config))
    with open(run / "metrics.jsonl", "w") as fh:
        for step, loss in enumerate(losses):
            fh.write(json.dumps({"step": step, "epoch": 0, "split": split, "loss": loss}) + "\n")
        fh.write(json.dumps({"step": len(losses), "epoch": 1, "split": "val", "loss": 0.5,
                             "metric": 0.9}) + "\n")
    return run


def test_learning_curves_group_seeds_and_shade_the_standard_error(tmp_path):
    write_run(tmp_path, "wmc_s0", {"cell": "wmc", "lr": 0.01, "seed": 0}, [3.0, 2.0, 1.0])
    write_run(tmp_path, "wmc_s1", {"cell": "wmc", "lr": 0.01, "seed": 1}, [1.0, 1.0, 2.0])
    write_run(tmp_path, "lstm_s0", {"cell": "lstm", "lr": 0.01, "seed": 0}, [4.0, 4.0, 4.0])
    ax = plots.learning_curves([tmp_path], splits=["train"])
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"cell=wmc (train, 2 seeds)", "cell=lstm (train)"}
    np.testing.assert_allclose(lines["cell=wmc (train, 2 seeds)"].get_ydata(), [2.0, 1.5, 1.5])
    assert len(ax.collections) == 1  # one shaded band: the group with two seeds
    xs, mean, stderr = plots.mean_and_stderr([{0: 3.0, 1: 2.0}, {0: 1.0, 1: 1.0, 2: 7.0}])
    np.testing.assert_allclose(xs, [0, 1])  # only the steps every seed has
    np.testing.assert_allclose(mean, [2.0, 1.5])
    np.testing.assert_allclose(stderr, [np.std([3, 1], ddof=1) / np.sqrt(2),
                                        np.std([2, 1], ddof=1) / np.sqrt(2)])
    assert ax.get_xlabel() == "step" and "loss" in ax.get_ylabel()
    metric = plots.learning_curves([tmp_path / "wmc_s0"], key="metric")
    np.testing.assert_allclose(metric.get_lines()[0].get_ydata(), [0.9])


def test_plot_run_legend_names_only_what_differs_and_never_pools_one_seed(tmp_path):
    common = {"cell": "wmc", "lr": 0.01, "task_options": {"T": 50, "n_train": 128},
              "eval_splits": ["test"]}
    write_run(tmp_path, "a", {**common, "seed": 0}, [3.0, 2.0])
    write_run(tmp_path, "a_again", {**common, "seed": 0}, [1.0, 1.0])  # same seed: a repeat
    write_run(tmp_path, "b", {**common, "seed": 0, "task_options": {"T": 100, "n_train": 128}},
              [4.0, 4.0])
    groups = plots.group_runs([tmp_path])
    assert set(groups) == {"task_options.T=50", "task_options.T=50 [a_again]",
                           "task_options.T=100"}
    assert all(len(runs) == 1 for runs in groups.values())
    ax = plots.learning_curves([tmp_path], splits=["train"])
    labels = [line.get_label() for line in ax.get_lines()]
    assert not any("seeds" in label for label in labels) and not ax.collections
    assert plots.flatten_config({"a": {"b": [1, 2]}, "c": 1}) == {"a.b": (1, 2), "c": 1}


def test_plot_run_command(tmp_path, capsys):
    from npcell.cli import main

    write_run(tmp_path, "a", {"cell": "wmc", "seed": 0}, [1.0, 0.5])
    out = tmp_path / "curves.png"
    assert main(["plot-run", str(tmp_path / "a"), "--out", str(out), "--log"]) == 0
    assert out.stat().st_size > 5_000 and "wrote" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main(["plot-run", str(tmp_path / "empty"), "--out", str(out)]) == 2
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.jsonl").write_text('{"step": 0, "split": "train"}\n')
    with pytest.raises(ConfigError, match="missing key"):
        plots.read_run(bad)


@pytest.mark.parametrize("kind", ["gru", "fw_rnn"])
def test_standard_panel_for_cells_without_c_or_gates(kind):
    if kind not in npcell.CELLS:
        pytest.skip(f"{kind} is not registered in this checkout")
    d = npcell.diagnose(npcell.make_cell(kind, 2, 3), np.ones((5, 2, 2)))
    fig = plots.diagnosis_figure(d)
    gates = plots.informative_gates(d)
    # norm, gradient flow, the saturation summary when there are gates; each informative map + bar
    assert len(fig.axes) == 2 + bool(d.saturation) + 2 * len(gates)
    assert "h_t" in fig.axes[0].get_lines()[0].get_label()  # no c: the norm panel shows h


def test_figure2_script_smoke(tmp_path):
    """scripts/figure2_cell_norm.py end to end on a tiny model (2 SGD steps per cell) on real
    sMNIST digits, with the options the Figure 2 investigation varies."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "figure2_cell_norm.py"
    spec = importlib.util.spec_from_file_location("figure2_cell_norm", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "fig2.png"
    numbers = tmp_path / "fig2.json"
    assert module.main(["--iterations", "2", "--records", "2", "--hidden", "4", "--batch", "8",
                        "--probe", "4", "--cell-init", "normal", "--forget-bias", "1",
                        "--out", str(out), "--json", str(numbers)]) == 0
    assert out.stat().st_size > 10_000
    written = json.loads(numbers.read_text())
    assert [c["kind"] for c in written["cells"]] == ["lstm", "peephole", "wmc"]
    assert "W_kc normal(1), forget bias 1" in written["setting"]
    assert "peephole/wmc" in written["takeaway"]
