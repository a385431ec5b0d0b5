"""npcell.plots: every panel runs headless, returns its Axes and draws the data it was given."""

import json

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import npcell  # noqa: E402
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
    assert "wmc" in ax.get_title() and "adding T=15" in ax.get_title()
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
    assert "gate f" in ax.get_title() and "wmc" in ax.get_title()
    assert "adding T=15" in ax.get_title()
    with pytest.raises(ConfigError, match="no gate"):
        plots.saturation(d, "zz")


def test_weight_grad_scatter_overlays_connection_blocks(diags):
    ax = plots.weight_grad_vs_cell_norm(diags)
    collections = ax.collections
    # lstm has no cell connection; peephole and wmc draw W_ic, W_fc, W_oc each
    assert len(collections) == 6
    peephole = diags[1]
    offsets = collections[0].get_offsets()
    np.testing.assert_allclose(offsets[:, 0], peephole.state_norm("c", prev=True))
    np.testing.assert_allclose(offsets[:, 1], peephole.grad_step_norm["W_ic"])
    w_oc = collections[2].get_offsets()  # W_oc pairs with c_t, not c_{t-1}
    np.testing.assert_allclose(w_oc[:, 0], peephole.state_norm("c"))
    labels = [c.get_label() for c in collections]
    assert any("wmc: W_ic" in lab for lab in labels) and ax.get_legend() is not None
    assert "eq. (14)" in ax.get_title() and "eq. (21)" in ax.get_title()
    assert ax.get_xlabel() and ax.get_ylabel()
    empty = plots.weight_grad_vs_cell_norm(diags[0])
    assert not empty.collections and "no cell-connection" in empty.texts[0].get_text()


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


def test_figures(diags):
    fig = diags[2].plot()
    assert isinstance(fig, matplotlib.figure.Figure)
    # 3 panels on top, 4 gate maps (i, f, g, o) with their 4 colour bars below
    assert len(fig.axes) == 3 + 4 + 4
    assert "wmc" in fig.get_suptitle()
    fig = plots.comparison_figure(diags)
    assert len(fig.axes) == 3 + 3 + 3
    assert all(name in fig.get_suptitle() for name in ("lstm", "peephole", "wmc"))


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
    fig = d.plot()
    assert len(fig.axes) == 3 + 2 * len(d.saturation)
    assert "h_t" in fig.axes[0].get_lines()[0].get_label()  # no c: the norm panel shows h


def test_figure2_script_smoke(tmp_path):
    """scripts/figure2_cell_norm.py end to end on a tiny model (2 SGD steps per cell)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "figure2_cell_norm.py"
    spec = importlib.util.spec_from_file_location("figure2_cell_norm", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "fig2.png"
    assert module.main(["--iterations", "2", "--records", "2", "--hidden", "4", "--batch", "8",
                        "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
