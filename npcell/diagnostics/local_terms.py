"""The paper's local gradients, eq. (10)-(15) (WMC) and (19)-(21) (peephole).

Functions a notebook can call on one cached step of an ``lstm``, ``peephole`` or ``wmc`` cell,
for each of the gates i, f, o: :func:`gate_preactivation` (ī_t, eq. 10 / 20),
:func:`gate_derivative` (∂i/∂ī, eq. 11 / 19), :func:`delta_hat` (δ̂i_t, eq. 15),
:func:`weight_local_gradients` (the outer products of eq. 12-14 / 21) and
:func:`local_term_norm` (the norm :func:`~npcell.diagnostics.diagnose` records every step).
"""

from __future__ import annotations

from ..backend import array_module
from ..cells.ops import cell_read, dtanh, sigmoid
from ..errors import ConfigError

# The cells and gates of the paper's analysis (eq. 10-21): gates i and f read c_{t-1}, o reads c_t.
PAPER_GATES = ("i", "f", "o")
PAPER_KINDS = ("lstm", "peephole", "wmc")

def _paper_cell(cell, gate):
    """The cell's CellRead (squash, diagonal, bias) or None for lstm; raise for other kinds /
    gates."""
    if cell.kind not in PAPER_KINDS:
        raise ConfigError(
            f"the eq. 10-15 / 19-21 local gradients are defined for the lstm, peephole and wmc "
            f"cells; got a {cell.kind!r} cell"
        )
    if gate not in PAPER_GATES:
        raise ConfigError(f"gate must be one of {PAPER_GATES}; got {gate!r}")
    return cell.cell_read


def _cell_read(cell, cache_t, gate):
    """The cell state gate k reads: c_{t-1} for i and f, the new c_t for o (eq. 9 / 18)."""
    return cache_t["c"] if gate == "o" else cache_t["c_prev"]


def _connection_argument(cell, cache_t, gate):
    """W_kc c (+ b_kc): the argument of the tanh in eq. (10) / the peephole term of eq. (20)."""
    p = cell.params
    return cell_read(p[f"W_{gate}c"], _cell_read(cell, cache_t, gate), p.get(f"b_{gate}c"))


def gate_preactivation(cell, cache_t, gate="i"):
    """ī_t, the argument of the gate's sigmoid, recomputed from the parameters. (B, H).

    WMC: W_ix x_t + W_ih h_{t-1} + tanh(W_ic c_{t-1}) + b_i (eq. 10); peephole: the same with
    W_ic c_{t-1} unsquashed (eq. 20); LSTM: no cell term (eq. 2). Gate o reads c_t.
    ``cache_t`` is one step cache (``npcell.forward(cell, x, fused=False)[2].steps[t]``).
    """
    connection = _paper_cell(cell, gate)
    p, k = cell.params, cache_t
    a = k["x"] @ p[f"W_{gate}x"].T + k["h_prev"] @ p[f"W_{gate}h"].T + p[f"b_{gate}"]
    if connection is None:
        return a  # eq. (2) / (3) / (5): the LSTM gates do not read c
    squash = connection.squash
    z = _connection_argument(cell, cache_t, gate)
    xp = array_module(z)
    return a + (xp.tanh(z) if squash else z)  # eq. (10) (WMC) / eq. (20) (peephole)


def gate_derivative(cell, cache_t, gate="i"):
    """∂i_t/∂ī_t = diag[σ(ī_t) ⊙ (1 - σ(ī_t))], returned as its diagonal (B, H). Eq. (11)/(19)."""
    s = sigmoid(gate_preactivation(cell, cache_t, gate))
    return s * (1.0 - s)  # eq. (11) / (19)


def delta_hat(cell, cache_t, gate="i"):
    """δ̂i_t of eq. (15): ∂i/∂ī ⊙ (1 - tanh²(W_ic c_{t-1})), (B, H).

    For the peephole there is no tanh, so the factor is 1 and δ̂ = ∂i/∂ī (eq. 21). The LSTM
    has no cell connection and raises ConfigError.
    """
    connection = _paper_cell(cell, gate)
    if connection is None:
        raise ConfigError("delta_hat needs a cell connection (peephole or wmc); lstm has none")
    d = gate_derivative(cell, cache_t, gate)
    if not connection.squash:
        return d  # eq. (21): the peephole term enters the sigmoid unprotected
    z = _connection_argument(cell, cache_t, gate)
    return d * dtanh(array_module(z).tanh(z))  # eq. (15)


def weight_local_gradients(cell, cache_t, gate="i") -> dict:
    """The outer products of eq. (12)-(14) (WMC) / (21) (peephole), one per sequence.

    Returns parameter name -> array with entry [b, j, k] = ∂(gate)_{t,j} / ∂W_{jk} for sequence
    b (gate unit j depends on row j of W only, so this is the whole Jacobian):

    * ``W_kx``: (B, H, X) = ∂i/∂ī ⊗ x_t (eq. 12)
    * ``W_kh``: (B, H, H) = ∂i/∂ī ⊗ h_{t-1} (eq. 13)
    * ``b_k``: (B, H) = ∂i/∂ī
    * ``W_kc``: (B, H, H) = δ̂i_t ⊗ c_{t-1} (eq. 14 / 21; c_t for gate o), or (B, H) = δ̂ ⊙ c
      for a diagonal peephole; ``b_kc`` (B, H) = δ̂ when the cell has cell biases.

    Weighted by dL/d(gate)_t and summed over the batch, each equals step t's contribution to
    that gradient in BPTT (tests/test_diagnostics.py checks it).
    """
    connection = _paper_cell(cell, gate)
    d = gate_derivative(cell, cache_t, gate)
    out = {
        f"W_{gate}x": d[:, :, None] * cache_t["x"][:, None, :],  # eq. (12)
        f"W_{gate}h": d[:, :, None] * cache_t["h_prev"][:, None, :],  # eq. (13)
        f"b_{gate}": d,
    }
    if connection is not None:
        diagonal, cell_bias = connection.diagonal, connection.bias
        dhat = delta_hat(cell, cache_t, gate)
        c_read = _cell_read(cell, cache_t, gate)
        if diagonal:
            out[f"W_{gate}c"] = dhat * c_read  # eq. (21), diagonal: one weight per unit
        else:
            out[f"W_{gate}c"] = dhat[:, :, None] * c_read[:, None, :]  # eq. (14) / (21)
        if cell_bias:
            out[f"b_{gate}c"] = dhat
    return out


def local_term_norm(cell, cache_t, gate="i"):
    """Root-mean-square over the batch of ‖∂k_t/∂W_kc‖ for one sequence (a 0-d array).

    The norm of the outer product of :func:`weight_local_gradients` without forming it: for a
    full W_kc, ‖δ̂ ⊗ c‖_F = ‖δ̂‖ ‖c‖ per sequence (eq. 14 / 21); for a diagonal one, ‖δ̂ ⊙ c‖.
    """
    dhat = delta_hat(cell, cache_t, gate)
    c_read = _cell_read(cell, cache_t, gate)
    xp = array_module(dhat)
    if cell.params[f"W_{gate}c"].ndim == 1:  # a diagonal read: one weight per unit
        per_seq = ((dhat * c_read) ** 2).sum(axis=1)
    else:
        per_seq = (dhat * dhat).sum(axis=1) * (c_read * c_read).sum(axis=1)
    return xp.sqrt(per_seq.mean())

