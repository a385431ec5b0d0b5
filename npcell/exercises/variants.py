"""Per-student variants of the LSTM-family exercises, and the source code of each variant.

A :class:`Variant` fixes what one student's cell looks like: which gates read the cell state
(``reads``), whether the read is linear (peephole, eq. 16-18) or squashed (WMC, eq. 7-9), the
candidate nonlinearity, and whether the forget gate is coupled to the input gate (f = 1 - i).
:func:`draw` picks one from a seed, so each student gets a cell whose backward is not npcell's
own code; :func:`base` gives the paper's cell of each exercise.

:func:`forward_source` and :func:`backward_source` write the variant's step functions as plain
Python (the forward the student is given; the backward the solution file holds, with
``### BEGIN SOLUTION`` markers). The grader runs the forward it wrote itself and differentiates
it numerically (complex step): no answers are stored anywhere. :func:`footprints` says which of
the returned tensors each of the student's variables feeds, which is how the grader names the
variable a bug lives in.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from ..errors import ConfigError

CELL_EXERCISES = ("lstm", "peephole", "wmc")
READERS = ("i", "f", "o")  # the gates that may read the cell: i, f read c_{t-1}, o reads c_t

# name -> (forward expression of a, derivative from the output g, what the student reads)
CANDIDATES = {
    "tanh": ("tanh(a)", 'dtanh(k["g"])', "g = tanh(a)"),
    "lecun_tanh": ("1.7159 * tanh(2.0 * a / 3.0)",
                   '(2.0 / 3.0) * (1.7159 - k["g"] ** 2 / 1.7159)',
                   "g = 1.7159 tanh(2a/3) (LeCun's scaled tanh)"),
    "centered_sigmoid": ("2.0 * sigmoid(a) - 1.0", '0.5 * (1.0 - k["g"] ** 2)',
                         "g = 2 sigmoid(a) - 1"),
}


@dataclass(frozen=True)
class Variant:
    """One cell of the LSTM family, as an exercise sees it."""

    exercise: str  # 'lstm' | 'peephole' | 'wmc'
    reads: tuple = ()  # gates whose pre-activation reads the cell (subset of i, f, o)
    squash: bool = False  # the read goes through tanh (WMC) or not (peephole)
    diagonal: bool = True  # w * c with w (H,), or W c with W (H, H)
    cell_bias: bool = False  # a bias inside the read: tanh(W c + b) (WMC only)
    candidate: str = "tanh"
    coupled: bool = False  # f = 1 - i: no forget-gate parameters
    seed: int | None = None  # the seed it was drawn from (None: the paper's cell)

    def __post_init__(self):
        if self.exercise not in CELL_EXERCISES:
            raise ConfigError(f"variant exercise must be one of {CELL_EXERCISES}; got "
                             f"{self.exercise!r}")
        if self.candidate not in CANDIDATES:
            raise ConfigError(f"candidate must be one of {list(CANDIDATES)}; got "
                             f"{self.candidate!r}")
        bad = [g for g in self.reads if g not in READERS or (g == "f" and self.coupled)]
        if bad:
            raise ConfigError(f"gates {bad} cannot read the cell in this variant")

    @property
    def gates(self) -> tuple:
        return ("i", "g", "o") if self.coupled else ("i", "f", "g", "o")

    def param_shapes(self, X: int, H: int) -> dict:
        shapes = {f"W_{k}x": (H, X) for k in self.gates}
        shapes |= {f"W_{k}h": (H, H) for k in self.gates}
        shapes |= {f"b_{k}": (H,) for k in self.gates}
        for k in self.reads:
            shapes[f"W_{k}c"] = (H,) if self.diagonal else (H, H)
            if self.cell_bias:
                shapes[f"b_{k}c"] = (H,)
        return shapes

    def to_dict(self) -> dict:
        out = asdict(self)
        out["reads"] = list(self.reads)
        return out

    @classmethod
    def from_dict(cls, data) -> Variant:
        data = dict(data)
        data["reads"] = tuple(data.get("reads", ()))
        return cls(**data)

    def describe(self) -> str:
        """One paragraph for the top of the student file."""
        if not self.reads:
            reads = "No gate reads the cell state."
        else:
            kind = "tanh(W_kc c + b_kc)" if self.squash and self.cell_bias else (
                "tanh(W_kc c)" if self.squash else "W_kc c")
            if self.diagonal:
                kind = kind.replace("W_kc c", "w_kc * c (elementwise, w_kc of shape (H,))")
            which = ", ".join(f"{g} (reads {'c_t' if g == 'o' else 'c_{t-1}'})"
                              for g in self.reads)
            reads = f"Gates that read the cell, through u_k = {kind}: {which}."
        parts = [reads, f"Candidate: {CANDIDATES[self.candidate][2]}."]
        if self.coupled:
            parts.append("The forget gate is coupled to the input gate: f = 1 - i "
                         "(there are no W_fx, W_fh, b_f).")
        return " ".join(parts)


def base(exercise: str) -> Variant:
    """The paper's cell of an exercise: plain LSTM (eq. 1-6), peephole (16-18), WMC (7-9)."""
    if exercise == "lstm":
        return Variant("lstm")
    if exercise == "peephole":
        return Variant("peephole", reads=READERS, squash=False, diagonal=True)
    return Variant("wmc", reads=READERS, squash=True, diagonal=False)


def draw(exercise: str, seed: int) -> Variant:
    """A per-student variant of ``exercise`` drawn from ``seed`` (the same seed, the same cell)."""
    rng = random.Random(f"npcell-variant-{exercise}-{seed}")
    coupled = rng.random() < 0.5
    candidate = rng.choice(sorted(CANDIDATES))
    readers = [g for g in READERS if not (coupled and g == "f")]
    reads = ()
    if exercise != "lstm":
        reads = tuple(g for g in readers if rng.random() < 0.6) or (rng.choice(readers),)
    if candidate == "tanh" and not coupled and reads in ((), READERS):
        # every gate as in the paper: npcell's own cell, whose reference backward would be the
        # answer; change the candidate instead (decided last, so other seeds keep their cell)
        candidate = sorted(c for c in CANDIDATES if c != "tanh")[seed % 2]
    if exercise == "lstm":
        return Variant("lstm", candidate=candidate, coupled=coupled, seed=seed)
    if exercise == "peephole":
        return Variant("peephole", reads=reads, diagonal=rng.random() < 0.5,
                       candidate=candidate, coupled=coupled, seed=seed)
    return Variant("wmc", reads=reads, squash=True, diagonal=False,
                   cell_bias=rng.random() < 0.5, candidate=candidate, coupled=coupled,
                   seed=seed)


def init_params(variant: Variant, X: int, H: int, rng) -> dict:
    """Random float64 parameters (a ``numpy.random.Generator``): large enough that every gate
    is away from saturation and every term of the backward matters."""
    params = {}
    for name, shape in variant.param_shapes(X, H).items():
        scale = 0.3 if name.startswith("b_") else 0.6
        params[name] = scale * rng.standard_normal(shape)
    return params


# ----- source code ------------------------------------------------------------------------------
def _read(variant, gate, c) -> str:
    """The expression of u_k, the gate's read of the cell ``c`` (a source expression)."""
    z = f'p["W_{gate}c"] * {c}' if variant.diagonal else f'{c} @ p["W_{gate}c"].T'
    if variant.cell_bias:
        z += f' + p["b_{gate}c"]'
    return f"tanh({z})" if variant.squash else z


# The activations every exercise file is given (plain NumPy, complex-safe), as source text.
ACTIVATIONS_SOURCE = '''def sigmoid(a):
    """Logistic sigmoid 1 / (1 + exp(-a)), written through tanh so it never overflows."""
    return 0.5 * (1.0 + numpy.tanh(0.5 * a))


def dsigmoid(s):
    """d sigmoid / d a from the output s = sigmoid(a)."""
    return s * (1.0 - s)


def tanh(a):
    return numpy.tanh(a)


def dtanh(t):
    """d tanh / d a from the output t = tanh(a)."""
    return 1.0 - t * t
'''


def helpers_source(variant: Variant) -> str:
    """The activations the step functions use: ACTIVATIONS_SOURCE and the variant's candidate."""
    text = ACTIVATIONS_SOURCE
    if variant.candidate != "tanh":
        expr, _, what = CANDIDATES[variant.candidate]
        text += f'''

def candidate(a):
    """The candidate nonlinearity of this cell: {what}."""
    return {expr}
'''
    return text


def forward_source(variant: Variant) -> str:
    """``step_forward(params, x_t, state) -> (state, cache)`` of the variant, as source."""
    v = variant
    cand = "tanh" if v.candidate == "tanh" else "candidate"
    lines = [
        "def step_forward(params, x_t, state):",
        '    """One step of this exercise\'s cell. x_t (B, X); state {"h", "c"}: (B, H) each.',
        "",
        "    Returns (new state, cache); the cache holds what the backward needs.",
        '    """',
        "    p = params",
        '    h_prev, c_prev = state["h"], state["c"]',
    ]
    for gate in ("i", "f"):
        if gate in v.reads:
            lines.append(f"    u_{gate} = {_read(v, gate, 'c_prev')}  # gate {gate} reads "
                         "c_{t-1}")

    def pre(gate):
        read = f" + u_{gate}" if gate in v.reads else ""
        return (f'x_t @ p["W_{gate}x"].T + h_prev @ p["W_{gate}h"].T{read} + p["b_{gate}"]')

    lines.append(f"    g = {cand}({pre('g')})  # the candidate, eq. (1)")
    lines.append(f"    i = sigmoid({pre('i')})  # input gate")
    if v.coupled:
        lines.append("    f = 1.0 - i  # coupled forget gate: no parameters of its own")
    else:
        lines.append(f"    f = sigmoid({pre('f')})  # forget gate")
    lines.append("    c = f * c_prev + i * g  # the cell, eq. (4)")
    if "o" in v.reads:
        lines.append(f"    u_o = {_read(v, 'o', 'c')}  # the output gate reads the new c_t")
    lines.append(f"    o = sigmoid({pre('o')})  # output gate")
    lines.append("    tanh_c = tanh(c)")
    lines.append("    h = o * tanh_c  # eq. (6)")
    reads = "".join(f", u_{g}=u_{g}" for g in ("i", "f", "o") if g in v.reads)
    lines.append("    cache = dict(x=x_t, h_prev=h_prev, c_prev=c_prev, i=i, f=f, g=g, o=o, "
                 "c=c, tanh_c=tanh_c" + ("," if reads else ")"))
    if reads:
        lines.append("                 " + reads[2:] + ")")
    lines.append('    return {"h": h, "c": c}, cache')
    return "\n".join(_wrap(lines)) + "\n"


def backward_source(variant: Variant) -> str:
    """The solution: ``step_backward(params, dstate, cache)`` with two solution blocks."""
    v = variant
    dcand = CANDIDATES[v.candidate][1]
    dact = "dtanh" if v.squash else None

    def dz(gate):
        return (f'    dz_{gate} = da_{gate} * dtanh(k["u_{gate}"])  # through the tanh of the read'
                if dact else f"    dz_{gate} = da_{gate}  # the read is linear: dz = da")

    def read_back(gate):
        return f'dz_{gate} * p["W_{gate}c"]' if v.diagonal else f'dz_{gate} @ p["W_{gate}c"]'

    lines = [
        "def step_backward(params, dstate, cache):",
        '    """Backward of step_forward.',
        "",
        '    dstate: {"h": dL/dh_t, "c": dL/dc_t}, each (B, H), carried from step t+1 (plus the',
        "    loss at step t); cache: what step_forward returned. Do not modify the arguments.",
        "",
        "    Returns (grads, dx, dstate_prev): grads keyed like params, each shaped like its",
        '    parameter (summed over the batch); dx (B, X); dstate_prev {"h": dL/dh_{t-1},',
        '    "c": dL/dc_{t-1}}.',
        '    """',
        "    p, k = params, cache",
        '    dh = dstate["h"]',
        "    # 1. dL/da of every gate pre-activation, dL/dc_t and dL/dc_{t-1}",
        "    ### BEGIN SOLUTION",
        '    da_o = dh * k["tanh_c"] * dsigmoid(k["o"])  # through h = o tanh(c), then sigma\'',
    ]
    dc = 'dc = dstate["c"] + dh * k["o"] * dtanh(k["tanh_c"])'
    if "o" in v.reads:
        lines.append(dz("o"))
        dc += f" + {read_back('o')}"
        lines.append(f"    {dc}  # carried + through h + through the o-gate's read of c_t")
    else:
        lines.append(f"    {dc}  # carried + through h = o tanh(c)")
    if v.coupled:
        lines.append('    da_i = dc * (k["g"] - k["c_prev"]) * dsigmoid(k["i"])  '
                     "# c = c_prev + i (g - c_prev) when f = 1 - i")
    else:
        lines.append('    da_i = dc * k["g"] * dsigmoid(k["i"])  # through i g of eq. (4)')
        lines.append('    da_f = dc * k["c_prev"] * dsigmoid(k["f"])  # through f c_{t-1}')
    lines.append(f'    da_g = dc * k["i"] * {dcand}  # through i g, then the candidate\'s slope')
    prev = 'dc_prev = dc * k["f"]'
    for gate in ("i", "f"):
        if gate in v.reads:
            lines.append(dz(gate))
            prev += f" + {read_back(gate)}"
    lines.append(f"    {prev}  # dL/dc_{{t-1}}: through f" + (" and the reads of c_{t-1}"
                                                          if set(v.reads) & {"i", "f"} else ""))
    lines += [
        "    ### END SOLUTION",
        "    # 2. the parameter gradients, dx and dL/dh_{t-1}",
        "    ### BEGIN SOLUTION",
        "    grads = {}",
        "    dx = 0.0",
        "    dh_prev = 0.0",
        "    for gate, da in (" + ", ".join(f'("{g}", da_{g})' for g in v.gates) + "):",
        '        grads[f"W_{gate}x"] = da.T @ k["x"]  # dL/dW_kx, summed over the batch',
        '        grads[f"W_{gate}h"] = da.T @ k["h_prev"]  # dL/dW_kh: pairs with h_{t-1}',
        '        grads[f"b_{gate}"] = da.sum(axis=0)  # dL/db_k',
        '        dx = dx + da @ p[f"W_{gate}x"]  # dL/dx_t, summed over the gates',
        '        dh_prev = dh_prev + da @ p[f"W_{gate}h"]  # dL/dh_{t-1}, summed over the gates',
    ]
    for gate in v.reads:
        c = "c" if gate == "o" else "c_prev"
        pair = (f'(dz_{gate} * k["{c}"]).sum(axis=0)' if v.diagonal
                else f'dz_{gate}.T @ k["{c}"]')
        when = "c_t" if gate == "o" else "c_{t-1}"
        lines.append(f'    grads["W_{gate}c"] = {pair}  # the {gate}-gate read {when}')
        if v.cell_bias:
            lines.append(f'    grads["b_{gate}c"] = dz_{gate}.sum(axis=0)')
    lines += [
        "    ### END SOLUTION",
        '    return grads, dx, {"h": dh_prev, "c": dc_prev}',
    ]
    return "\n".join(_wrap(lines)) + "\n"


def _wrap(lines):
    """Keep generated lines within 100 columns by dropping the comment of a long line."""
    out = []
    for line in lines:
        if len(line) > 100 and "  # " in line:
            line = line.split("  # ")[0]
        out.append(line)
    return out


# ----- where each of the student's variables shows ---------------------------------------------
def footprints(variant: Variant) -> dict:
    """Student variable -> the returned tensors it feeds (param names, 'dx', 'dh_prev',
    'dc_prev'). A wrong variable makes exactly its footprint wrong (for generic inputs), so the
    set of wrong tensors names the variable. Ordered upstream first."""
    v = variant
    gate_out = {g: {f"W_{g}x", f"W_{g}h", f"b_{g}", "dx", "dh_prev"} for g in v.gates}
    fp = {}
    for g in ("i", "f"):
        if g in v.reads:
            fp[f"dz_{g}"] = {f"W_{g}c", "dc_prev"} | ({f"b_{g}c"} if v.cell_bias else set())
    fp["dc_prev"] = {"dc_prev"}
    for g in ("i", "f", "g"):
        if g in v.gates:
            fp[f"da_{g}"] = gate_out[g] | fp.get(f"dz_{g}", set())
    fp["dc"] = set().union(*(fp[f"da_{g}"] for g in ("i", "f", "g") if g in v.gates),
                           fp["dc_prev"])
    if "o" in v.reads:
        fp["dz_o"] = {"W_oc"} | ({"b_oc"} if v.cell_bias else set()) | fp["dc"]
        fp["da_o"] = gate_out["o"] | fp["dz_o"]
    else:
        fp["da_o"] = gate_out["o"]
    # the lines of part 2: a loop line touches every gate, a single line one tensor
    fp["dW_kx"] = {f"W_{g}x" for g in v.gates}
    fp["dW_kh"] = {f"W_{g}h" for g in v.gates}
    fp["db_k"] = {f"b_{g}" for g in v.gates}
    fp["dx"] = {"dx"}
    fp["dh_prev"] = {"dh_prev"}
    for name in v.param_shapes(1, 1):
        fp.setdefault("d" + name, {name})
    order = ["da_o", "dz_o", "dc", "da_i", "da_f", "da_g", "dz_i", "dz_f", "dc_prev"]
    ordered = {n: fp[n] for n in order if n in fp}
    ordered |= {n: s for n, s in fp.items() if n not in ordered}
    return ordered


def describe_variable(name: str) -> str:
    """What a student variable is, in words."""
    if name.startswith("da_"):
        return f"dL/da_{name[3:]}, the gradient of gate {name[3:]}'s pre-activation"
    if name.startswith("dz_"):
        return f"dL/dz_{name[3:]}, through gate {name[3:]}'s read of the cell"
    words = {"dc": "dL/dc_t, carried plus through h_t (and the o-gate's read of c_t)",
             "dc_prev": "dL/dc_{t-1}, the cell gradient you pass back",
             "dh_prev": "dL/dh_{t-1}, summed over every gate",
             "dx": "dL/dx_t, summed over every gate",
             "dW_kx": "the input-weight lines grads['W_kx'] (every gate)",
             "dW_kh": "the recurrent-weight lines grads['W_kh'] (every gate)",
             "db_k": "the bias lines grads['b_k'] (every gate)",
             "dhn": "dL/d(W_nh h_{t-1} + b_nh), the reset_after form's gradient inside the "
                    "reset"}
    if name in words:
        return words[name]
    return f"your grads['{name[1:]}'] line"
