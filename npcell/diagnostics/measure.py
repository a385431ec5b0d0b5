"""diagnose and compare: one forward and one backward pass, measured step by step.

The measuring happens inside the one stepwise BPTT loop of :mod:`npcell.sequence` (the
``on_step`` hooks of ``stepwise_forward`` / ``stepwise_backward``) on the pure step pair every
cell has and the named step caches, so every registered kind works, including kinds added
later: a cell without ``c`` reports the states it has, and gate names come from
``cell.gate_blocks()`` matched against the step cache keys (a cell may also declare
``gate_activations() -> {gate: 'sigmoid' | 'tanh' | 'relu'}``).
"""

from __future__ import annotations

import numpy

from ..backend import array_module, to_numpy
from ..errors import ConfigError, ShapeError, shape_str
from ..sequence import (
    check_input,
    check_state,
    complete_dstate,
    stepwise_backward,
    stepwise_forward,
)
from ..training.layers import Linear, mse_loss
from .local_terms import PAPER_GATES, PAPER_KINDS, local_term_norm
from .result import Comparison, Diagnosis

DEFAULT_THRESHOLD = 0.05
# Gate names whose activation is tanh in the cells npcell ships (the candidates); every other
# gate found in a step cache is read as a sigmoid gate unless its values leave [0, 1].
TANH_GATE_NAMES = frozenset({"g", "n", "u", "ltm_cand", "cand", "candidate"})


def diagnose(cell, seq, target=None, loss=None, *, state=None, dstate=None,
             threshold=DEFAULT_THRESHOLD, task=None, label=None, gates=None,
             keep_step_grads=False, seed=0) -> Diagnosis:
    """One forward and one backward pass of ``cell`` over ``seq``, measured step by step.

    Parameters
    ----------
    cell : any npcell cell.
    seq : x (T, B, X), or a pair (x, target) such as ``npcell.tasks.adding.make_batch`` returns.
    target : optional. (B, Y) is read out at the last step, (T, B, Y) at every step, by a
        seeded linear readout (``npcell.training.layers.Linear(H, Y, seed=seed)``) and the MSE loss.
    loss : optional callable ``loss(h) -> (value, dh)`` with h and dh (T, B, H); overrides the
        target readout.
        Default (no target, no loss): L = mean over the batch of r · h_{T-1}, with r a fixed
        random unit vector (seeded by ``seed``). The error enters at the last step only, like
        the adding task, so ‖dL/dh_t‖ over t shows how far back the signal reaches.
    state : initial state dict (zeros when None).
    dstate : optional gradient of the loss with respect to the *final* state, as in
        :func:`npcell.backward` (e.g. ``{"c": r}`` puts error straight on c_{T-1}, which reaches
        the cell even when tanh(c) is saturated). It adds to the loss above; pass
        ``loss=lambda h: (0.0, 0 * h)`` to use it alone.
    threshold : tau of the saturation maps (see the module docstring), in (0, 0.5).
    task : text naming the task, for titles (default "a custom sequence").
    label : legend label (default: the kind plus its non-default options).
    gates : optional {gate name: 'sigmoid' | 'tanh' | 'relu'} overriding the detected gates.
    keep_step_grads : also keep every step's full gradient contribution (memory T x params).

    Returns
    -------
    :class:`Diagnosis`.
    """
    if isinstance(seq, tuple) and len(seq) == 2:
        if target is not None:
            raise ConfigError("give the target either inside seq=(x, target) or as target=")
        seq, target = seq
    xp = check_input(cell, seq)
    if (isinstance(threshold, bool) or not isinstance(threshold, (int, float, numpy.number))
            or not 0.0 < float(threshold) < 0.5):
        raise ConfigError(f"threshold must be a number in (0, 0.5); got {threshold!r}")
    threshold = float(threshold)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, numpy.integer))
                             or seed < 0):
        raise ConfigError(f"seed must be a non-negative int; got {seed!r}")
    x = seq
    T, B, _ = x.shape
    H = cell.hidden_size
    params = cell.params
    state = check_state(cell, state, B, "state")

    # ----- forward: the stepwise loop keeps every step cache; the hook measures each step ----
    state_norms = {name: [_batch_norms(value)] for name, value in state.items()}
    reads_cell = getattr(cell, "cell_read", None) is not None and cell.kind in PAPER_KINDS
    term_norms = {f"W_{gate}c": [] for gate in PAPER_GATES} if reads_cell else {}

    def measure_forward(t, state_t, cache_t):
        for name, value in state_t.items():
            state_norms[name].append(_batch_norms(value))
        for gate in PAPER_GATES if reads_cell else ():
            term_norms[f"W_{gate}c"].append(local_term_norm(cell, cache_t, gate))

    h, _, caches = stepwise_forward(cell, x, state, on_step=measure_forward)
    gate_act = _resolve_gates(cell, caches, B, gates)
    saturation = {
        gate: to_numpy(xp.stack([_saturated(c[gate], act, threshold).mean(axis=0)
                                 for c in caches]))
        for gate, act in gate_act.items()
    }

    # ----- the loss and its gradient dL/dh_t -------------------------------------------------
    loss_value, dh = _loss_and_dh(cell, h, target, loss, seed)

    # ----- backward (BPTT, t = T-1 .. 0): the hook keeps each step's contribution -----------
    step_norms = {name: [] for name in params}
    step_grads = {name: [] for name in params} if keep_step_grads else {}
    dstate_norms = {name: [] for name in cell.state_names}
    dx_norms = []

    def measure_backward(t, dstate_t, grads_t, dx_t, dstate_prev):
        for name, value in dstate_t.items():
            dstate_norms[name].append(_frobenius(value))
        dx_norms.append(_frobenius(dx_t))
        for name, g in grads_t.items():
            step_norms[name].append(_frobenius(g))
            if keep_step_grads:
                step_grads[name].append(g)

    grads, _, _ = stepwise_backward(cell, dh, caches, complete_dstate(cell, dstate, B),
                                    on_step=measure_backward)

    def series(values, reverse=False):
        arr = to_numpy(xp.stack(values))
        return arr[::-1].copy() if reverse else arr

    norms = {name: to_numpy(xp.stack(v)) for name, v in state_norms.items()}  # (T + 1, B)
    return Diagnosis(
        kind=cell.kind,
        label=label or _default_label(cell),
        task=task or "a custom sequence",
        loss=float(loss_value),
        threshold=threshold,
        batch_size=int(B),
        hidden_size=int(H),
        state_norm_mean={name: n.mean(axis=1) for name, n in norms.items()},
        state_norm_max={name: n.max(axis=1) for name, n in norms.items()},
        saturation=saturation,
        gate_activation=gate_act,
        grad_step_norm={name: series(v, reverse=True) for name, v in step_norms.items()},
        grads={name: to_numpy(g) for name, g in grads.items()},
        step_grads={name: series(v, reverse=True) for name, v in step_grads.items()},
        dstate_norm={name: series(v, reverse=True) for name, v in dstate_norms.items()},
        dx_norm=series(dx_norms, reverse=True),
        term_norm={name: series(v) for name, v in term_norms.items()},
        gate_blocks={k: list(v) for k, v in cell.gate_blocks().items()},
        options=_jsonable(cell.options),
    )


def _batch_norms(value):
    """Per-sequence L2 norm of a state array (B, ...) -> (B,)."""
    xp = array_module(value)
    flat = value.reshape(value.shape[0], -1)
    return xp.sqrt((flat * flat).sum(axis=1))


def _frobenius(value):
    xp = array_module(value)
    return xp.sqrt((value * value).sum())


def _saturated(gate_values, activation, tau):
    """Boolean (B, H): the gate unit sits within tau of an asymptote (its slope is ~0)."""
    xp = array_module(gate_values)
    if activation == "sigmoid":
        return (gate_values < tau) | (gate_values > 1.0 - tau)  # sigma' < tau (1 - tau)
    if activation == "tanh":
        return xp.abs(gate_values) > 1.0 - tau  # tanh' < tau (2 - tau)
    if activation == "relu":
        return gate_values <= 0.0  # a dead ReLU passes no gradient
    raise ConfigError(f"unknown gate activation {activation!r}; expected sigmoid, tanh or relu")


def _resolve_gates(cell, caches, batch, override):
    """Gate name -> activation, from an override, the cell's own declaration, or the caches."""
    if override is not None:
        unknown = [g for g in override if g not in caches[0]]
        if unknown:
            raise ConfigError(
                f"gates {unknown} are not in the {cell.kind} step cache; it holds {list(caches[0])}"
            )
        return dict(override)
    declared = cell.gate_activations() if hasattr(cell, "gate_activations") else None
    if declared:
        return dict(declared)
    H = cell.hidden_size
    gates = [gate for gate in cell.gate_blocks()
             if caches[0].get(gate) is not None and tuple(caches[0][gate].shape) == (batch, H)]
    if not gates:  # only blocks that are not gate outputs (e.g. "c-connections")
        return {}
    # Each gate's range over all steps, reduced on the device and read back once for all gates
    # (not once per step and gate: on a GPU every read-back waits for the device).
    xp = array_module(caches[0][gates[0]])

    def low_high(gate):
        steps = xp.stack([c[gate] for c in caches])  # (T, B, H)
        return xp.stack([steps.min(), steps.max()])

    ranges = to_numpy(xp.stack([low_high(gate) for gate in gates]))  # (gates, 2)
    found = {}
    for gate, (lo, hi) in zip(gates, ranges):
        if gate in TANH_GATE_NAMES or lo < 0.0:
            found[gate] = "tanh" if lo >= -1.0 and hi <= 1.0 else "relu"
        elif hi <= 1.0:
            found[gate] = "sigmoid"
        else:
            found[gate] = "relu"
    return found


def _default_label(cell) -> str:
    extras = [f"{k}={v}" for k, v in cell.options.items()
              if type(cell).default_options.get(k) != v]
    return cell.kind + (f" ({', '.join(extras)})" if extras else "")


def _jsonable(options: dict) -> dict:
    return {k: (v if isinstance(v, (bool, int, float, str)) or v is None else repr(v))
            for k, v in options.items()}


def _loss_and_dh(cell, h, target, loss, seed):
    """The loss value and dL/dh (T, B, H) for the three ways diagnose can be asked."""
    xp = array_module(h)
    T, B, H = h.shape
    if loss is not None:
        if not callable(loss):
            raise ConfigError(f"loss must be a callable loss(h) -> (value, dh); got {loss!r}")
        value, dh = loss(h)
        if tuple(dh.shape) != (T, B, H):
            raise ShapeError(
                f"loss(h) must return dh with the shape of h {shape_str(h.shape)}; "
                f"got {shape_str(dh.shape)}"
            )
        return float(value), dh
    dh = xp.zeros_like(h)
    if target is None:
        # L = mean_b r . h_{T-1}: a fixed random direction read at the last step only.
        r = numpy.random.default_rng(seed).standard_normal(H)
        r = xp.asarray(r / numpy.linalg.norm(r), dtype=h.dtype)
        dh[-1] = r / B  # dL/dh_{T-1}, the same for every sequence
        return float((h[-1] @ r).mean()), dh

    target = xp.asarray(target, dtype=h.dtype)
    if target.ndim == 2 and target.shape[0] == B:
        read = h[-1]  # a (B, Y) target is read out at the last step (adding task)
    elif target.ndim == 3 and target.shape[:2] == (T, B):
        read = h  # a (T, B, Y) target at every step
    else:
        raise ShapeError(
            f"target must be (B, Y) = ({B}, Y) for a last-step readout or (T, B, Y) = "
            f"({T}, {B}, Y) for every step; got {shape_str(target.shape)}"
        )
    readout = Linear(H, target.shape[-1], dtype=h.dtype.name, seed=seed, xp=xp)
    pred, cache = readout.forward(readout.params, read)
    value, dpred = mse_loss(pred, target)
    _, dread = readout.backward(readout.params, dpred, cache)  # dL/dh through the readout
    if target.ndim == 2:
        dh[-1] = dread
    else:
        dh[...] = dread
    return value, dh


def compare(cells, seq, target=None, loss=None, *, labels=None, task=None,
            **kwargs) -> Comparison:
    """Diagnose several cells on the same sequence (draw it with
    :func:`npcell.plots.comparison_figure`).

    ``cells``: a list of cells (same input size). ``labels``: optional legend labels.
    Other keyword arguments go to :func:`diagnose`.
    """
    cells = list(cells)
    if not cells:
        raise ConfigError("compare needs at least one cell")
    if labels is not None and len(labels) != len(cells):
        raise ConfigError(f"got {len(labels)} labels for {len(cells)} cells")
    if isinstance(seq, tuple) and len(seq) == 2 and target is None:
        seq, target = seq
    diagnoses = [
        diagnose(cell, seq, target, loss, task=task,
                 label=None if labels is None else labels[n], **kwargs)
        for n, cell in enumerate(cells)
    ]
    return Comparison(diagnoses)
