"""The standalone page: one HTML file with the stepper's data, its ES module and its styles
inlined, which opens from disk and fetches nothing (a Content-Security-Policy forbids every
request, so a stray one fails loudly instead of silently working online)."""

from __future__ import annotations

import html
import json
from pathlib import Path

HERE = Path(__file__).parent
ESM = HERE / "stepper.js"
CSS = HERE / "stepper.css"
EXPORT = "export default { render };"
# No network, no external anything: inline scripts and styles only.
CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"

# A model with anywidget's interface (get, set, on, save_changes) over a plain object.
_MODEL = """
const state = JSON.parse(document.getElementById("npcell-stepper-state").textContent);
const listeners = {};
const model = {
  get: (name) => state[name],
  set: (name, value) => {
    state[name] = value;
    for (const cb of listeners[`change:${name}`] || []) cb();
  },
  on: (event, cb) => { (listeners[event] = listeners[event] || []).push(cb); },
  save_changes: () => {},
};
stepperModule.render({ model, el: document.getElementById("npcell-stepper") });
"""


def _json_for_script(value) -> str:
    """JSON that cannot end its <script> element early."""
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


def module_source() -> str:
    """The ES module with its export turned into a local name, to run inline in the page."""
    source = ESM.read_text(encoding="utf-8")
    if source.rstrip().splitlines()[-1] != EXPORT:
        raise RuntimeError(f"{ESM.name} must end with {EXPORT!r}")
    return source.replace(EXPORT, "const stepperModule = { render };")


def page_html(state: dict, title: str) -> str:
    """The page for ``state`` ({'data', 'step', 'mode', 'kind'}, as the widget syncs them)."""
    return "\n".join([
        "<!doctype html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f"<title>{html.escape(title)}</title>",
        f"<style>\n{CSS.read_text(encoding='utf-8')}</style>", "</head>", "<body>",
        '<div id="npcell-stepper"></div>',
        f'<script type="application/json" id="npcell-stepper-state">{_json_for_script(state)}'
        "</script>",
        f'<script type="module">\n{module_source()}\n{_MODEL}</script>', "</body>", "</html>", ""])
