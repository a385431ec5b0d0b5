"""The test functions of the finite-difference exercise, built from arrays (NumPy only).

Both sides build them here: the grading process (:func:`npcell.exercises.finite_difference.
known_gradient_cases`, which also knows each closed-form gradient) and the sandboxed child, which
loads this file by path. The child must not import npcell (a submission could reach npcell's
own code through it, e.g. ``f.__globals__``), so this module imports nothing but NumPy, and the
LSTM loss runs the step forward the ``lstm`` exercise gives students, passed in as ``step``.
"""

import numpy


def make(kind, a, step=None):
    """The scalar function ``f(v)`` of test ``kind`` with arrays ``a`` (name -> array).

    kind: 'quadratic' (A (n, n) symmetric, b (n,)), 'sin_x2', 'tanh_layer' (R (m,), v (n,)),
    'cubic', 'lstm' (the LSTM's parameters plus R (T, B, H); ``step`` is
    ``step_forward(params, x_t, state) -> (state, cache)``).
    """
    if kind == "quadratic":
        return lambda v: float(0.5 * v @ a["A"] @ v + a["b"] @ v)
    if kind == "sin_x2":
        return lambda v: float(numpy.sum(numpy.sin(v) * v ** 2))
    if kind == "tanh_layer":
        return lambda w: float(a["R"] @ numpy.tanh(w @ a["v"]))
    if kind == "cubic":
        return lambda v: float(numpy.sum(v ** 3))
    if kind == "lstm":
        params = {k: w for k, w in a.items() if k != "R"}

        def lstm_loss(x):
            """sum(R * h) of an LSTM run over x (T, B, X) from a zero state."""
            H = a["R"].shape[2]
            state = {"h": numpy.zeros((x.shape[1], H)), "c": numpy.zeros((x.shape[1], H))}
            total = 0.0
            for t in range(x.shape[0]):
                state, _ = step(params, x[t], state)
                total += float(numpy.sum(a["R"][t] * state["h"]))
            return total
        return lstm_loss
    raise ValueError(f"unknown finite-difference test {kind!r}")
