"""The stepper in a real browser: Debian's Chromium (/usr/bin/chromium) driven by Playwright.

1. The standalone page of ``npcell stepper`` opened from disk: the controls and the arrow keys
   move the step, check mode names the planted bug, no console error, no network request.
2. The widget inside a real JupyterLab served by this test on 127.0.0.1: it renders, a click
   moves the step, and the kernel's ``view.step`` follows.

Without Chromium (or Playwright) these tests skip with the reason, except under CI (``CI`` set):
there a missing browser is a failure, so the browser tests can never silently stop running.
The screenshots in docs/ come from here with ``NPCELL_SCREENSHOTS=1``.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from npcell.exercises.catalogue import EXERCISES
from npcell.exercises.generator import solution_source

CHROMIUM = os.environ.get("NPCELL_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "images"
SHOTS = os.environ.get("NPCELL_SCREENSHOTS") == "1"


def _unavailable(reason):
    if os.environ.get("CI"):
        pytest.fail(f"browser tests must run in CI: {reason} (.ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (pip install -e '.[test]')")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


class Watched:
    """A page with its console errors, page errors and requests recorded."""

    def __init__(self, browser, **kw):
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000}, **kw)
        self.errors, self.requests = [], []
        self.page.on("console", lambda m: m.type in ("error", "warning") and self.errors.append(
            f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def step_text(self):
        return self.page.get_by_test_id("current-step").inner_text()


def _npcell_stepper(tmp_path, *args):
    run = subprocess.run([sys.executable, "-m", "npcell", "stepper", *args], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run


def _shot(page, name):
    if SHOTS:
        DOCS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS / name), full_page=True)


def test_standalone_page_controls_move_the_step(browser, tmp_path):
    _npcell_stepper(tmp_path, "--cell", "wmc", "--T", "12", "--compare", "lstm", "peephole",
                    "--x-scale", "3", "--out", "page.html")
    w = Watched(browser)
    url = (tmp_path / "page.html").as_uri()
    w.page.goto(url)
    assert w.step_text().startswith("t = 11")  # backward mode starts at t = T-1
    w.page.get_by_test_id("step-back").click()
    assert w.step_text().startswith("t = 10")
    w.page.get_by_test_id("step-back").click()
    w.page.keyboard.press("ArrowLeft")  # keyboard: the focus stays on the stepper
    assert w.step_text().startswith("t = 8")
    w.page.get_by_test_id("step-forward").click()
    assert w.step_text().startswith("t = 9")
    assert w.page.locator(".nps-cellbox.nps-here").inner_text() == "t=9"
    # the backward view shows the local gradients beside their reference lines
    dc_prev = w.page.locator('[data-variable="dc_prev"]')
    assert "dc_prev = dc * k[\"f\"]" in dc_prev.inner_text()
    assert "npcell/cells/wmc.py" in dc_prev.inner_text()
    _shot(w.page, "stepper_backward.png")
    w.page.get_by_test_id("mode-forward").click()
    w.page.get_by_test_id("jump").fill("2")
    w.page.get_by_test_id("jump").dispatch_event("change")
    assert w.step_text().startswith("t = 2")
    assert w.page.get_by_test_id("forward-view").is_visible()
    assert w.page.locator("text=tanh(W_ic c_{t-1})").count() == 1  # wmc's read of the cell
    _shot(w.page, "stepper_forward.png")
    w.page.get_by_test_id("cell").select_option("lstm")
    assert "· lstm ·" in w.page.locator(".nps-bar-top b").inner_text()
    assert w.errors == []
    assert w.requests == [url]  # the page itself, nothing else
    w.page.close()


def test_standalone_check_mode_names_dc_prev(browser, tmp_path):
    text = solution_source(EXERCISES["wmc"])
    (tmp_path / "wmc.py").write_text(text.replace('dc_prev = dc * k["f"] + ', "dc_prev = "))
    _npcell_stepper(tmp_path, "--cell", "wmc", "--T", "12", "--student", "wmc.py",
                    "--out", "check.html")
    w = Watched(browser)
    url = (tmp_path / "check.html").as_uri()
    w.page.goto(url)
    first = w.page.get_by_test_id("first-wrong").inner_text()
    assert "first wrong: dc_prev at t = 11" in first
    assert w.page.locator('.nps-local.nps-wrong').get_attribute("data-variable") == "dc_prev"
    assert "nps-bad" in w.page.locator('.nps-cellbox[data-t="11"]').get_attribute("class")
    _shot(w.page, "stepper_check.png")
    assert w.errors == [] and w.requests == [url]
    w.page.close()


def test_standalone_check_mode_correct_file_has_no_wrong_step(browser, tmp_path):
    (tmp_path / "wmc.py").write_text(solution_source(EXERCISES["wmc"]))
    _npcell_stepper(tmp_path, "--T", "5", "--student", "wmc.py", "--out", "ok.html")
    w = Watched(browser)
    w.page.goto((tmp_path / "ok.html").as_uri())
    assert "every step agrees" in w.page.get_by_test_id("first-wrong").inner_text()
    assert w.page.locator(".nps-cellbox.nps-ok").count() == 5
    assert w.page.locator(".nps-local.nps-wrong").count() == 0
    assert w.errors == []
    w.page.close()


# ----- the widget in JupyterLab -------------------------------------------------------------
NOTEBOOK_CODE = """
import numpy as np, npcell
from pathlib import Path
cell = npcell.make_cell("wmc", 3, 6, seed=0)
x = np.random.default_rng(0).standard_normal((8, 2, 3))
view = npcell.stepper(cell, x)
# the kernel's side: every change of view.step is written where the test can read it
view.observe(lambda change: Path("kernel_step.txt").write_text(str(change["new"])), names="step")
view
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    if shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)) is None:
        _unavailable("JupyterLab is not installed (pip install -e '.[test]')")
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {},
                     "outputs": [], "source": NOTEBOOK_CODE.strip()}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                      "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "stepper.ipynb").write_text(json.dumps(nb))
    port, token = _free_port(), "npcell-test"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "run"), "JUPYTERLAB_WORKSPACES_DIR":
           str(tmp_path / "ws")}
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
         "--allow-root", "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(240):  # wait for the server to answer (2 busy cores: up to a minute)
            assert proc.poll() is None, (tmp_path / "lab.log").read_text()[-2000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.25)
        yield f"http://127.0.0.1:{port}/lab/tree/stepper.ipynb?token={token}", tmp_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_widget_in_jupyterlab_moves_the_kernel_step(browser, jupyterlab):
    url, folder = jupyterlab
    w = Watched(browser)
    w.page.set_default_timeout(90_000)
    w.page.goto(url)
    # run the notebook once its kernel is up (JupyterLab's own command, exposed for tests)
    w.page.wait_for_function("(() => { const nb = window.jupyterapp?.shell.currentWidget;"
                             " return nb?.sessionContext?.session?.kernel?.status === 'idle'; })()")
    w.page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    step = w.page.get_by_test_id("current-step")
    step.wait_for()
    assert step.inner_text().startswith("t = 7")  # rendered by the ES module in the output
    w.page.get_by_test_id("step-back").click()
    assert step.inner_text().startswith("t = 6")
    kernel = folder / "kernel_step.txt"
    for _ in range(100):  # the kernel receives the change over the comm
        if kernel.exists() and kernel.read_text() == "6":
            break
        time.sleep(0.2)
    assert kernel.read_text() == "6"
    w.page.get_by_test_id("step-forward").click()
    for _ in range(100):
        if kernel.read_text() == "7":
            break
        time.sleep(0.2)
    assert kernel.read_text() == "7"
    _shot(w.page, "stepper_jupyterlab.png")
    errors = [e for e in w.errors if "stepper" in e.lower() or "pageerror" in e]
    assert errors == [], errors
    w.page.close()
