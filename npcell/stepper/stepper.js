// npcell BPTT stepper: the view of npcell/stepper (anywidget ES module, no build step).
//
// The model holds `data` (what npcell/stepper/record.py recorded: per cell kind, per step, the
// forward gates and the backward carries and local gradients; the reference source lines; the
// check-mode verdicts), `step` (the time step t, 0-based as in npcell.backward's on_step),
// `mode` ('forward' | 'backward') and `kind` (the cell shown). The same module renders the
// standalone page (npcell/stepper/page.py gives it a small model of its own).
// Test hooks (stable): data-testid current-step, step-back, step-forward, first-wrong.

const SVG = "http://www.w3.org/2000/svg";
const KIND_COLORS = { lstm: "#1f77b4", peephole: "#d62728", wmc: "#2ca02c" };

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of children) if (c != null) el.append(c);
  return el;
}

function s(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

// Colour of one value: gates in [0, 1] on a sequential scale, signed values diverging around 0
// (scaled by the largest magnitude in the map, so small gradients are still visible).
function color(v, scale, signed) {
  if (v === null) return "#000";
  if (!signed) {
    const a = Math.max(0, Math.min(1, v));
    return `rgb(${Math.round(255 - 200 * a)}, ${Math.round(255 - 130 * a)}, 255)`;
  }
  const a = Math.max(-1, Math.min(1, v / (scale || 1)));
  const w = Math.round(255 * (1 - Math.abs(a)));
  return a >= 0 ? `rgb(255, ${w}, ${w})` : `rgb(${w}, ${w}, 255)`;
}

// A heatmap of one (units x batch) array, saturated entries marked with a dot.
function heatmap(label, rows, { signed = true, saturated = null, note = "" } = {}) {
  const flat = rows.flat().filter((v) => v !== null);
  const scale = Math.max(1e-300, ...flat.map(Math.abs));
  const grid = h("div", { class: "nps-grid", style: `grid-template-columns: repeat(${rows[0].length}, 14px)` });
  rows.forEach((row, u) => row.forEach((v, b) => {
    const sat = saturated && saturated[u][b] > 0.5;
    grid.append(h("div", {
      class: "nps-px" + (sat ? " nps-sat" : ""), style: `background:${color(v, scale, signed)}`,
      title: `${label}[unit ${u}, example ${b}] = ${v === null ? "NaN/Inf" : v.toPrecision(4)}${sat ? " (saturated)" : ""}`,
    }));
  }));
  const norm = Math.sqrt(flat.reduce((a, v) => a + v * v, 0));
  return h("figure", { class: "nps-map", "data-name": label },
    h("figcaption", { text: label }), grid,
    h("div", { class: "nps-small", text: (signed ? `‖·‖ = ${norm.toPrecision(3)}` : "") + note }));
}

// Norms over time on a log axis: one line per series, the current step marked.
function normPlot(series, T, step, title) {
  const W = 300, H = 150, L = 40, B = 20;
  const svg = s("svg", { width: W, height: H, class: "nps-plot" });
  const all = series.flatMap((ser) => ser.values).filter((v) => v > 0);
  const lo = Math.log10(Math.min(...all, 1)), hi = Math.log10(Math.max(...all, 1e-12));
  const span = Math.max(hi - lo, 1e-9);
  const x = (t) => L + (t + 0.5) * (W - L - 5) / T;
  const y = (v) => 5 + (H - B - 10) * (1 - (Math.log10(Math.max(v, 1e-300)) - lo) / span);
  svg.append(s("line", { x1: x(step), x2: x(step), y1: 0, y2: H - B, class: "nps-now" }));
  for (const ser of series) {
    // a zero (no carry into t = T-1) has no place on a log axis: leave it out of the line
    const pts = ser.values.map((v, t) => (v > 0 ? `${x(t)},${y(v)}` : null)).filter(Boolean).join(" ");
    svg.append(s("polyline", { points: pts, fill: "none", stroke: ser.color, "stroke-width": 2, "stroke-dasharray": ser.dash || "" }));
  }
  const label = (text, px, py, anchor = "start") => {
    const el = s("text", { x: px, y: py, "text-anchor": anchor, class: "nps-axis" });
    el.textContent = text;
    svg.append(el);
  };
  label(`1e${hi.toFixed(1)}`, 2, 12);
  label(`1e${lo.toFixed(1)}`, 2, H - B);
  label("t = 0", L, H - 5);
  label(`t = ${T - 1}`, W - 5, H - 5, "end");
  const legend = h("div", { class: "nps-legend" },
    ...series.map((ser) => h("span", { style: `color:${ser.color}`, text: `${ser.dash ? "┄" : "━"} ${ser.name} ` })));
  return h("figure", { class: "nps-map" }, h("figcaption", { text: title }), svg, legend);
}

function forwardView(walk, t) {
  const f = walk.forward[t];
  const gates = h("div", { class: "nps-row" },
    heatmap("i_t", f.i, { signed: false, saturated: f.saturated.i }),
    heatmap("f_t", f.f, { signed: false, saturated: f.saturated.f }),
    heatmap("g_t", f.g, { saturated: f.saturated.g }),
    heatmap("o_t", f.o, { signed: false, saturated: f.saturated.o }),
    heatmap("c_t", f.c), heatmap("h_t", f.h));
  const parts = [h("h3", { text: `Forward at t = ${t}: gates, cell and output (units × batch; • saturated)` }), gates];
  if (Object.keys(f.reads).length) {
    const squash = walk.kind === "wmc";
    parts.push(h("h3", { text: squash
      ? "The gates read the cell: W_kc c, and tanh(W_kc c) which they add (eq. 7-9)"
      : "The gates read the cell: W_kc c, which they add unbounded (eq. 16-18); tanh(W_kc c) is what WMC would add" }));
    const reads = h("div", { class: "nps-row" });
    for (const [k, r] of Object.entries(f.reads)) {
      const c = k === "o" ? "c_t" : "c_{t-1}";
      reads.append(heatmap(`W_${k}c ${c}`, r.z), heatmap(`tanh(W_${k}c ${c})`, r.tanh, { saturated: r.saturated }));
    }
    parts.push(reads);
  }
  return h("div", { class: "nps-view", "data-testid": "forward-view" }, ...parts);
}

function sourceLine(src) {
  if (!src) return h("span");
  const eqs = src.eqs.length ? src.eqs.map((n) => `eq. (${n})`).join(", ") : "";
  return h("div", { class: "nps-src" },
    h("code", { text: src.code }),
    h("div", { class: "nps-small", text: `# ${src.comment}` }),
    h("div", { class: "nps-small" }, h("b", { text: eqs }), ` ${src.file}:${src.line}`));
}

function backwardView(walk, t, verdict) {
  const b = walk.backward[t];
  const carry = h("div", { class: "nps-row" },
    heatmap("dL/dh_t from the loss", b.dh_loss),
    heatmap("dL/dh_t carried from t+1", b.dh_carried),
    heatmap("dL/dh_t (sum)", b.dh),
    heatmap("dL/dc_t carried from t+1", b.dc_carried));
  const wrong = new Set(verdict && !verdict.ok ? verdict.variables : []);
  const locals = h("div", { class: "nps-locals" });
  for (const [name, rows] of Object.entries(b.locals)) {
    locals.append(h("div", { class: "nps-local" + (wrong.has(name) ? " nps-wrong" : ""), "data-variable": name },
      heatmap(name, rows), sourceLine(walk.source[name])));
  }
  const names = Object.keys(b.grad_norms);
  const top = Math.max(...names.map((n) => b.grad_norms[n]), 1e-300);
  const bars = h("div", { class: "nps-bars" }, ...names.map((n) => h("div", { class: "nps-bar" },
    h("span", { class: "nps-bar-name", text: n }),
    h("span", { class: "nps-bar-fill", style: `width:${(120 * b.grad_norms[n] / top).toFixed(1)}px` }),
    h("span", { class: "nps-small", text: b.grad_norms[n].toPrecision(3) }))));
  return h("div", { class: "nps-view", "data-testid": "backward-view" },
    h("h3", { text: `Backward at t = ${t}: what step t receives` }), carry,
    h("h3", { text: "Local gradients, beside the reference line that computes each" }), locals,
    h("h3", { text: `‖dL/dW‖ accumulated over t = ${walk.T - 1} … ${t}` }), bars);
}

function render({ model, el }) {
  const root = h("div", { class: "nps-root", tabindex: "0" });
  el.append(root);
  let timer = null;

  const get = () => ({ data: model.get("data"), step: model.get("step"), mode: model.get("mode"), kind: model.get("kind") });
  const setStep = (t) => {
    const { data, step } = get();
    const next = Math.max(0, Math.min(data.T - 1, t));
    if (next !== step) { model.set("step", next); model.save_changes(); }
    root.focus({ preventScroll: true }); // keep the arrow keys working after a click
  };
  const set = (name, value) => { model.set(name, value); model.save_changes(); root.focus({ preventScroll: true }); };
  const stopPlay = () => { if (timer) clearInterval(timer); timer = null; };
  const play = () => {
    if (timer) return stopPlay();
    // backward mode walks as BPTT does, from T-1 down to 0; forward mode from 0 up
    const { data, mode } = get();
    const dir = mode === "backward" ? -1 : 1;
    set("step", dir < 0 ? data.T - 1 : 0);
    timer = setInterval(() => {
      const { step } = get();
      const next = step + dir;
      if (next < 0 || next >= data.T) return stopPlay();
      setStep(next);
    }, 600);
  };
  root.addEventListener("keydown", (e) => {
    if (e.key === "ArrowLeft") { setStep(get().step - 1); e.preventDefault(); }
    if (e.key === "ArrowRight") { setStep(get().step + 1); e.preventDefault(); }
  });

  function draw() {
    const { data, step, mode, kind } = get();
    const walk = data.walks[kind];
    const check = data.check && data.check.kind === kind ? data.check : null;
    root.replaceChildren();
    const jump = h("input", { type: "number", min: 0, max: data.T - 1, value: step, class: "nps-jump", "data-testid": "jump",
      onchange: (e) => setStep(parseInt(e.target.value, 10)) });
    const kinds = h("select", { "data-testid": "cell", onchange: (e) => set("kind", e.target.value) },
      ...Object.keys(data.walks).map((k) => { const o = h("option", { value: k, text: k }); if (k === kind) o.selected = true; return o; }));
    const modes = ["forward", "backward"].map((m) => h("button", {
      class: m === mode ? "nps-on" : "", "data-testid": `mode-${m}`, text: m, onclick: () => set("mode", m) }));
    root.append(h("div", { class: "nps-bar-top" },
      h("b", { text: `npcell BPTT stepper · ${kind} · T=${walk.T}, B=${walk.B}, H=${walk.H}` }),
      h("button", { "data-testid": "step-back", title: "step back (←)", text: "◀ t−1", onclick: () => setStep(step - 1) }),
      h("button", { "data-testid": "step-forward", title: "step forward (→)", text: "t+1 ▶", onclick: () => setStep(step + 1) }),
      h("button", { "data-testid": "play", text: timer ? "■ stop" : "▶ play", onclick: () => { play(); draw(); } }),
      h("label", { text: "jump to t " }, jump), h("label", { text: " cell " }, kinds), ...modes,
      h("span", { class: "nps-current", "data-testid": "current-step", text: `t = ${step} of 0…${walk.T - 1}` })));

    // the unrolled strip; in check mode: green = agrees, red = first wrong, grey = not reached
    const strip = h("div", { class: "nps-strip" });
    for (let t = 0; t < walk.T; t++) {
      let cls = "nps-cellbox" + (t === step ? " nps-here" : "");
      if (check) {
        const first = check.first_wrong ? check.first_wrong.t : -1;
        cls += t > first ? " nps-ok" : t === first ? " nps-bad" : " nps-later";
      }
      strip.append(h("div", { class: cls, "data-t": t, onclick: () => setStep(t), text: `t=${t}` }));
    }
    root.append(strip);
    if (data.check) {
      const verdict = data.check.first_wrong;
      root.append(h("div", { class: "nps-check " + (verdict ? "nps-bad" : "nps-ok"), "data-testid": "first-wrong",
        text: `check of ${data.check.student} (${data.check.kind}): ${data.check.line}` }));
    }

    const body = h("div", { class: "nps-body" });
    const verdict = check ? check.steps[step] : null;
    body.append(mode === "forward" ? forwardView(walk, step) : backwardView(walk, step, verdict));
    const side = h("div", { class: "nps-side" });
    const kindsShown = Object.keys(data.walks);
    side.append(normPlot(kindsShown.flatMap((k) => [
      { name: `${k} ‖dL/dc_t‖`, values: data.walks[k].norms.dc, color: KIND_COLORS[k] || "#444" },
      { name: `${k} ‖dL/dh_t‖`, values: data.walks[k].norms.dh, color: KIND_COLORS[k] || "#444", dash: "4 3" }]),
      walk.T, step, "Carries over time (log), every cell on one axis"));
    side.append(normPlot(kindsShown.map((k) => ({ name: `${k} ‖c_t‖`, values: data.walks[k].norms.c, color: KIND_COLORS[k] || "#444" })),
      walk.T, step, "‖c_t‖ over time (log)"));
    body.append(side);
    root.append(body);
  }

  for (const name of ["step", "mode", "kind", "data"]) model.on(`change:${name}`, draw);
  draw();
  return () => stopPlay();
}

export default { render };
