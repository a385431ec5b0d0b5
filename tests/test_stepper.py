"""The BPTT stepper without a browser: what it shows equals npcell's forward/backward, the
reference lines are the real source, check mode names the first wrong step and variable, the
page is self-contained, and the CLI's user errors are one line with exit code 2."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy  # noqa: F401 - my_backward's name for NumPy, as in the file the child runs
import numpy as np
import pytest

import npcell
from npcell.exercises.catalogue import BUGS, EXERCISES
from npcell.exercises.generator import solution_source
from npcell.stepper import StepperView, record
from npcell.stepper.page import ESM, EXPORT
from npcell.stepper.source import reference_line

KINDS = ("lstm", "peephole", "wmc")
T, B, X, H = 6, 2, 3, 4
ROOT = Path(__file__).resolve().parent.parent


def _x(seed=0, scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal((T, B, X))


def _backward_steps(cell, x, dh):
    """npcell.backward's own per-step values, by its on_step hook: t -> (dstate_t, prev)."""
    steps = {}
    _, _, cache = npcell.forward(cell, x, fused=False)
    npcell.backward(cell, dh, cache,
                    on_step=lambda t, ds, g, dx, prev: steps.__setitem__(t, (ds, prev, g)))
    return steps


@pytest.mark.parametrize("kind", KINDS)
def test_step_back_shows_npcell_backward_at_that_step(kind):
    cell = npcell.make_cell(kind, X, H, seed=1)
    x = _x()
    view = npcell.stepper(cell, x, loss="every", seed=3)
    dh = record.loss_gradient((T, B, H), "every", 3)
    steps = _backward_steps(cell, x, dh)
    assert view.step == T - 1  # backward mode starts where BPTT starts
    for t in range(T - 2, -1, -1):
        view.step_back()
        assert view.step == t
        shown = view.shown()
        dstate_t, prev, grads_t = steps[t]
        np.testing.assert_allclose(shown["dh"], dstate_t["h"], rtol=0, atol=1e-15)
        np.testing.assert_allclose(shown["dc_carried"], dstate_t["c"], rtol=0, atol=1e-15)
        np.testing.assert_allclose(shown["dc_prev"], prev["c"], rtol=0, atol=1e-15)
        np.testing.assert_allclose(shown["dh_prev"], prev["h"], rtol=0, atol=1e-15)
        # the local da_k are the step's own: their batch sums are the bias gradients
        for g in "ifgo":
            np.testing.assert_allclose(shown[f"da_{g}"].sum(axis=0), grads_t[f"b_{g}"],
                                       atol=1e-14)
        # dL/dh_t = the loss's part + the part carried from t+1
        np.testing.assert_allclose(shown["dh_loss"], dh[t], atol=1e-15)
        np.testing.assert_allclose(shown["dh_carried"], steps[t + 1][1]["h"], atol=1e-15)
    view.step_back()
    assert view.step == 0  # clipped, not wrapped
    assert view.step_forward().step == 1


def test_locals_are_the_reference_names_of_each_kind():
    x = _x()
    have = {k: set(npcell.stepper(npcell.make_cell(k, X, H), x).shown()) for k in KINDS}
    common = {"da_i", "da_f", "da_g", "da_o", "dc", "dc_prev", "dh_prev"}
    assert common <= have["lstm"] and not {"dz_i", "dz_f", "dz_o"} & have["lstm"]
    assert {"dz_i", "dz_f", "dz_o"} <= have["wmc"]
    assert not {"dz_i", "dz_f", "dz_o"} & have["peephole"]  # its reads are linear: dz = da


def test_weight_gradients_accumulate_to_npcell_backward():
    cell = npcell.make_cell("wmc", X, H, seed=2)
    x = _x(1)
    view = npcell.stepper(cell, x)
    dh = record.loss_gradient((T, B, H), "last", 0)
    _, _, cache = npcell.forward(cell, x)
    grads, _, _ = npcell.backward(cell, dh, cache)
    norms = view.data["walks"]["wmc"]["backward"][0]["grad_norms"]  # after the whole walk
    for name, g in grads.items():
        assert norms[name] == pytest.approx(np.linalg.norm(g), rel=1e-12), name
    last = view.data["walks"]["wmc"]["backward"][T - 1]["grad_norms"]
    only = _backward_steps(cell, x, dh)[T - 1][2]  # at t = T-1 one step has been summed
    assert last["W_gx"] == pytest.approx(np.linalg.norm(only["W_gx"]), rel=1e-12)
    assert last["W_gx"] != pytest.approx(norms["W_gx"])


def test_forward_view_is_the_forward_and_marks_saturation():
    cell = npcell.make_cell("wmc", X, H, seed=0)
    x = _x(scale=6.0)  # large inputs drive gates into saturation
    view = npcell.stepper(cell, x, mode="forward")
    assert view.step == 0
    _, _, cache = npcell.forward(cell, x, fused=False)
    fwd = view.data["walks"]["wmc"]["forward"]
    for t in (0, T - 1):
        view.jump(t)
        for gate in "ifgoc":
            np.testing.assert_allclose(view.shown()[gate], cache.steps[t][gate], atol=1e-15)
        sat = np.array(fwd[t]["saturated"]["f"]).T.astype(bool)
        f = cache.steps[t]["f"]
        assert np.array_equal(sat, (f < 0.05) | (f > 0.95))
        read = cache.steps[t]["c_prev"] @ cell.params["W_ic"].T  # W_ic c_{t-1}
        np.testing.assert_allclose(np.array(fwd[t]["reads"]["i"]["z"]).T, read, atol=1e-14)
        np.testing.assert_allclose(np.array(fwd[t]["reads"]["i"]["tanh"]).T,
                                   cache.steps[t]["u_i"], atol=1e-14)  # what wmc's gate adds
    assert any(np.array(s["saturated"]["f"]).any() for s in fwd), "no saturated unit marked"
    lstm = npcell.stepper(npcell.make_cell("lstm", X, H), x, mode="forward")
    assert lstm.data["walks"]["lstm"]["forward"][0]["reads"] == {}  # lstm reads no cell


@pytest.mark.parametrize("kind,name,eqs", [("wmc", "da_o", {"6", "9"}),
                                           ("lstm", "da_i", {"2", "4"}),
                                           ("peephole", "da_f", {"4", "17"}),
                                           ("wmc", "dz_i", {"15"}),
                                           ("wmc", "dc_prev", set()),
                                           ("lstm", "dh_prev", set())])
def test_reference_line_is_the_real_source_line(kind, name, eqs):
    ref = reference_line(kind, name)
    line = (ROOT / ref["file"]).read_text().splitlines()[ref["line"] - 1]
    assert line.strip().startswith(f"{name} = ") and ref["code"] in line
    assert eqs <= set(ref["eqs"])


def test_compare_puts_every_cell_on_one_page():
    cells = [npcell.make_cell(k, X, H, seed=0) for k in KINDS]
    view = npcell.stepper(cells, _x())
    assert list(view.data["walks"]) == list(KINDS) and view.kind == "lstm"
    norms = {k: view.data["walks"][k]["norms"]["dc"] for k in KINDS}
    assert len({tuple(v) for v in norms.values()}) == 3  # different cells, different carries
    with pytest.raises(npcell.ConfigError, match="different kinds"):
        npcell.stepper([cells[0], cells[0]], _x())
    with pytest.raises(npcell.ConfigError, match="lstm"):
        npcell.stepper(npcell.make_cell("gru", X, H), _x())


# ----- check mode ---------------------------------------------------------------------------
def _write(tmp_path, kind, text, name=None):
    path = tmp_path / (name or f"{kind}.py")
    path.write_text(text)
    return path


def _check(kind, student, **kw):
    return npcell.stepper(npcell.make_cell(kind, X, H, seed=0), _x(), student=student, **kw)


def test_check_mode_passes_the_solution_file(tmp_path):
    view = _check("wmc", _write(tmp_path, "wmc", solution_source(EXERCISES["wmc"])))
    assert view.check.ok and view.check.first_wrong is None
    assert all(s.ok for s in view.check.steps) and len(view.check.steps) == T
    assert view.data["check"]["line"].startswith("every step agrees")


def test_check_mode_passes_a_function_in_another_style():
    """A correct backward written differently (einsum, one stacked gate block, no helpers'
    names) is still right at every step."""
    def my_backward(params, dstate, cache):
        p, k = params, cache
        dh, dcn = dstate["h"], dstate["c"]
        da_o = dh * k["tanh_c"] * k["o"] * (1 - k["o"])
        dc = dcn + dh * k["o"] * (1 - k["tanh_c"] ** 2)
        da = {"i": dc * k["g"] * k["i"] * (1 - k["i"]),
              "f": dc * k["c_prev"] * k["f"] * (1 - k["f"]),
              "g": dc * k["i"] * (1 - k["g"] ** 2), "o": da_o}
        grads = {}
        for gate, d in da.items():
            grads["W_" + gate + "x"] = numpy.einsum("bh,bx->hx", d, k["x"])
            grads["W_" + gate + "h"] = numpy.einsum("bh,bj->hj", d, k["h_prev"])
            grads["b_" + gate] = numpy.einsum("bh->h", d)
        dx = sum(d @ p["W_" + g + "x"] for g, d in da.items())
        dh_prev = sum(d @ p["W_" + g + "h"] for g, d in da.items())
        return grads, dx, {"h": dh_prev, "c": dc * k["f"]}

    view = _check("lstm", my_backward)
    assert view.check.ok, view.check.line()


def test_check_mode_names_dc_prev_when_the_f_carry_is_dropped(tmp_path):
    text = solution_source(EXERCISES["wmc"])
    bad = text.replace('dc_prev = dc * k["f"] + ', "dc_prev = ")
    assert bad != text
    view = _check("wmc", _write(tmp_path, "wmc", bad))
    first = view.check.first_wrong
    assert (first.t, first.variables, first.wrong_tensors) == (T - 1, ["dc_prev"], ["dc_prev"])
    assert view.check.line() == f"first wrong: dc_prev at t = {T - 1}"
    assert view.kind == "wmc"


def test_check_mode_finds_the_first_step_a_forgotten_carry_shows(tmp_path):
    """Forgetting the carried dL/dc_t is invisible at t = T-1 (nothing is carried there) and
    wrong from T-2 down: that step is first, and t = T-1 before it stays green."""
    text = solution_source(EXERCISES["lstm"])
    bad = text.replace('dc = dstate["c"] + dh', "dc = dh")
    assert bad != text
    check = _check("lstm", _write(tmp_path, "lstm", bad)).check
    assert check.steps[T - 1].ok
    assert (check.first_wrong.t, check.first_wrong.variables) == (T - 2, ["dc"])
    assert check.to_dict()["first_wrong"]["t"] == T - 2


@pytest.mark.parametrize("bug", [b for b in BUGS.values() if b.exercise in KINDS],
                         ids=lambda b: b.name)
def test_check_mode_names_every_planted_bug(bug, tmp_path):
    check = _check(bug.exercise, bug.write(tmp_path)).check
    assert not check.ok and check.first_wrong.variables == [bug.variable], check.line()


def test_check_mode_reports_a_crash_and_refuses_other_cells(tmp_path):
    text = solution_source(EXERCISES["wmc"]).replace("da_i = dc", "da_i = undefined_name * dc")
    check = _check("wmc", _write(tmp_path, "wmc", text)).check
    assert "NameError" in check.line() and check.first_wrong.t == T - 1
    variant = solution_source(EXERCISES["wmc"]).replace("NPCELL_VARIANT = None",
                                                         "NPCELL_VARIANT = 3")
    with pytest.raises(npcell.ConfigError, match="variant 3"):
        _check("wmc", _write(tmp_path, "wmc", variant, "v.py"))
    with pytest.raises(npcell.ConfigError, match="paper's 'wmc' cell"):
        npcell.stepper(npcell.make_cell("wmc", X, H, cell_bias=True), _x(),
                       student=_write(tmp_path, "wmc", solution_source(EXERCISES["wmc"])))


# ----- the page and the command -------------------------------------------------------------
def test_save_html_is_one_self_contained_page(tmp_path):
    view = npcell.stepper(npcell.make_cell("wmc", X, H), _x())
    view.step_back()
    text = view.save_html(tmp_path / "page.html").read_text()
    assert not re.search(r"""\b(src|href)\s*=""", text)  # nothing loaded from anywhere
    assert "default-src 'none'" in text and EXPORT not in text
    state = re.search(r'id="npcell-stepper-state">(.*?)</script>', text, re.S).group(1)
    state = json.loads(state)
    assert state["step"] == T - 2 and state["kind"] == "wmc"
    assert state["data"]["walks"]["wmc"]["backward"][1]["locals"]["dc"] == \
        view.data["walks"]["wmc"]["backward"][1]["locals"]["dc"]


def test_plain_view_has_the_same_api_without_anywidget():
    view = npcell.stepper(npcell.make_cell("lstm", X, H), _x())
    plain = StepperView(view.data, {}, None, step=3, mode="backward", kind="lstm")
    assert plain.step_back().step == 2
    assert plain.shown()["dc"].shape == (B, H)
    assert plain._repr_html_().startswith("<iframe srcdoc=")


def test_es_module_ends_with_its_export():
    assert ESM.read_text().rstrip().splitlines()[-1] == EXPORT


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "npcell", "stepper", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_cli_writes_the_page_and_names_the_bug(tmp_path):
    bad = solution_source(EXERCISES["wmc"]).replace('dc_prev = dc * k["f"] + ', "dc_prev = ")
    _write(tmp_path, "wmc", bad)
    run = _cli("--cell", "wmc", "--T", "12", "--student", "wmc.py", "--out", "page.html",
               cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "first wrong: dc_prev at t = 11" in run.stdout
    assert '"first_wrong":{"t":11' in (tmp_path / "page.html").read_text()


@pytest.mark.parametrize("args,message", [
    (["--T", "0", "--out", "p.html"], "--T must be at least 1"),
    (["--student", "missing.py", "--out", "p.html"], "does not exist"),
    (["--out", "no/such/dir/p.html"], "does not exist"),
    (["--cell", "gru", "--out", "p.html"], "invalid choice"),
])
def test_cli_user_errors_are_one_line_exit_2(tmp_path, args, message):
    run = _cli(*args, cwd=tmp_path)
    assert run.returncode == 2 and message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert not (tmp_path / "p.html").exists()


def test_student_function_runs_in_the_child_not_here(tmp_path, monkeypatch):
    """A function is checked by running its source in the sandboxed child, where npcell cannot
    be imported: a backward that borrows npcell's works here but fails there."""
    (tmp_path / "borrowed.py").write_text(textwrap.dedent('''
        def borrowed(params, dstate, cache):
            from npcell.cells.lstm import lstm_step_backward
            return lstm_step_backward(params, dstate, cache)
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    import borrowed

    check = _check("lstm", borrowed.borrowed).check
    assert not check.ok and "npcell cannot be imported" in check.line()
    ns = {}
    exec(compile("def f(params, dstate, cache):\n    pass\n", "<typed>", "exec"), ns)
    with pytest.raises(npcell.ConfigError, match="cannot read the source"):
        _check("lstm", ns["f"])  # no source to send to the child: refused, never run here


@pytest.mark.parametrize("ci,outcome", [("", "1 skipped"),
                                        ("true", "browser tests must run in CI")])
def test_browser_tests_skip_without_chromium_but_fail_under_ci(tmp_path, ci, outcome):
    env = {**os.environ, "NPCELL_CHROMIUM": str(tmp_path / "no-chromium"),
           "CI": ci}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                          str(ROOT / "tests" / "test_stepper_browser.py"), "-k",
                          "correct_file_has_no_wrong_step"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert outcome in run.stdout and "no Chromium at" in run.stdout, run.stdout[-2000:]
    assert ("passed" in run.stdout.splitlines()[-1]) is False
