"""The built docs typeset their mathematics with nothing fetched (issue 26).

The docs are built once for this module (as `make docs` does, but with the notebooks rendered
unexecuted: the math under test is in the Markdown, and tests/test_docs.py covers the executed
build), then every built page that holds math is opened from file:// in headless Chromium,
driven by Playwright, with the browser context offline and every request that is not file://
aborted and recorded. A page passes when MathJax (copied from the django-static-mathjax package
into _static/mathjax/ by docs/conf.py) has turned every formula into SVG, no formula failed to
parse, no raw TeX delimiters are left in the text a reader sees, and nothing outside file://
was asked for. Chromium is Debian's (/usr/bin/chromium, `apt-get install chromium`), or
$NPCELL_CHROMIUM. Without Chromium or Playwright the test skips with the reason, except under
CI=true, where it fails.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# the WMC and peephole equations (display math with aligned environments) must be among them
MUST_CHECK = ["derivations/connected.html", "derivations/lstm.html"]
# raw TeX that a reader would see if MathJax did not run
RAW_TEX = ["\\[", "\\]", "\\(", "\\)", "\\begin", "\\end{", "$$", "\\frac", "\\sigma", "\\odot"]


def _unavailable(reason):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (under CI this check may not skip)", pytrace=False)
    pytest.skip(reason)


def _chromium():
    for candidate in (os.environ.get("NPCELL_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory):
    for module in ("sphinx", "myst_nb", "mathjax"):
        try:
            __import__(module)
        except ImportError:
            _unavailable(f"{module} is not installed (pip install -e '.[test]')")
    tmp = tmp_path_factory.mktemp("offline-math")
    out = tmp / "html"
    env = dict(os.environ, NPCELL_DOCS_EXECUTE="off")
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-d", str(tmp / "doctrees"),
         str(ROOT / "docs"), str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert proc.returncode == 0, f"sphinx failed:\n{proc.stderr[-4000:]}"
    assert "django-static-mathjax is not installed" not in proc.stderr, proc.stderr[-2000:]
    print(f"docs built without executing the notebooks in {time.perf_counter() - start:.1f} s")
    return out


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    executable = _chromium()
    if executable is None:
        _unavailable("Chromium not found (apt-get install chromium, or set NPCELL_CHROMIUM)")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            # as root Chromium needs --no-sandbox; the rest keep the browser itself quiet
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-quic"])
        yield browser
        browser.close()


def test_built_docs_ship_mathjax(built_docs):
    """The pages point at the MathJax copied next to them, never at a CDN."""
    mathjax = built_docs / "_static" / "mathjax"
    assert (mathjax / "tex-svg.js").is_file()
    assert (mathjax / "LICENSE").is_file()
    pages = [p for p in built_docs.rglob("*.html") if "_static" not in p.parts]
    with_math = [p for p in pages if 'class="math' in p.read_text()]
    assert len(with_math) >= 8, [p.name for p in with_math]
    for page in with_math:
        html = page.read_text()
        assert "_static/mathjax/tex-svg.js" in html, page
        assert "cdn.jsdelivr" not in html and "mathjax@" not in html, page


def _pages_with_math(out):
    pages = sorted(p for p in out.rglob("*.html")
                   if "_static" not in p.parts and 'class="math' in p.read_text())
    names = [p.relative_to(out).as_posix() for p in pages]
    for name in MUST_CHECK:
        assert name in names, (name, names)
    return pages


# The text a reader sees in the page's main part, code blocks and MathJax's hidden MathML aside.
_VISIBLE_TEXT = """() => {
  const clone = (document.querySelector('main') || document.body).cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, mjx-assistive-mml').forEach(e => e.remove());
  return clone.textContent;
}"""
# The state of the page once MathJax is done: every element of class "math" holds one rendered
# formula, none of the internal MathML trees holds an error (merror, or noundefined's red text),
# and the visible text holds no TeX.
_REPORT = """() => {
  const math = [...document.querySelectorAll('.math')];
  const unrendered = math.filter(e => !e.querySelector('mjx-container svg'))
                         .map(e => e.textContent.slice(0, 120));
  const errors = [];
  for (const item of MathJax.startup.document.math) {
    const mml = MathJax.startup.toMML(item.root);
    if (mml.includes('<merror') || mml.includes('mathcolor="red"')) errors.push(item.math);
  }
  return {version: MathJax.version, math: math.length, unrendered, errors,
          display: document.querySelectorAll('mjx-container[display="true"]').length,
          text: (VISIBLE_TEXT)()};
}""".replace("VISIBLE_TEXT", _VISIBLE_TEXT)


def test_math_typesets_offline_in_chromium(built_docs, browser):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    pages = _pages_with_math(built_docs)
    context = browser.new_context()
    context.set_offline(True)
    outside = []

    def only_files(route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_files)
    context.on("request", lambda r: None if r.url.startswith(("file:", "data:", "blob:",
                                                              "about:")) else outside.append(r.url))
    failed = []
    context.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
    page = context.new_page()
    problems, displays = [], 0
    for path in pages:
        name = path.relative_to(built_docs).as_posix()
        page.goto(path.as_uri())
        try:
            page.wait_for_function(
                "() => window.MathJax && MathJax.startup && MathJax.startup.promise"
                " && MathJax.startup.document && MathJax.startup.document.math",
                timeout=20_000)
        except PlaywrightTimeout:
            text = page.evaluate(_VISIBLE_TEXT)
            problems.append((name, "MathJax never started", [t for t in RAW_TEX if t in text]))
            break  # the others would wait as long, for the same reason
        page.evaluate("() => MathJax.startup.promise")  # resolves once the page is typeset
        report = page.evaluate(_REPORT)
        assert report["version"].startswith("3."), report["version"]
        displays += report["display"]
        if report["math"] == 0 or report["unrendered"] or report["errors"]:
            problems.append((name, report["math"], report["unrendered"][:3],
                             report["errors"][:3]))
        raw = [t for t in RAW_TEX if t in report["text"]]
        if raw:
            at = report["text"].find(raw[0])
            problems.append((name, "raw TeX visible", raw, report["text"][at - 80:at + 80]))
    context.close()
    assert not outside, f"requests outside file:// were attempted: {sorted(set(outside))[:10]}"
    assert not problems, problems
    assert displays >= 10, displays  # the derivations' display equations are among them
    assert not failed, failed[:10]
