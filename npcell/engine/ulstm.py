"""The fused sequence pair of the Untied LSTM (npcell/cells/ulstm.py, eq. U1-U8).

One input GEMM for all T; per step the two sequential recurrent GEMMs; weight gradients as one
GEMM over all T*B rows after the loop. It equals looping ``ulstm_step_forward`` /
``ulstm_step_backward`` (tests/test_engine.py holds them equal).
"""

from __future__ import annotations

from ..backend import array_module
from ..cells.ops import dsigmoid, dtanh
from ..cells.ulstm import sigmoid_gates
from .device import device_for


def ulstm_forward(cell, params, x, state):
    """Registered fused forward of the ulstm (see npcell.engine.fused_pair)."""
    return ulstm_fused_forward(params, x, state, use_o=cell.options["use_o"])


def ulstm_cache_floats(cell):
    """Floats per batch row the fused forward keeps: (per step: the n sigmoid gates and the
    candidate, h_t, c_t, tanh(c_t), m_t = (n + 5)H; once: index 0 of hs, cs, tanh_cs and the
    final state's copies = 5H)."""
    H, n = cell.hidden_size, 4 if cell.options["use_o"] else 3
    return (n + 5) * H, 5 * H


def ulstm_backward(cell, params, dh, cache, dstate):
    """Registered fused backward of the ulstm."""
    return ulstm_fused_backward(params, dh, cache, dstate, use_o=cell.options["use_o"])


def ulstm_fused_forward(params, x, state, *, use_o=True):
    """Forward over all T steps. x (T, B, X) -> h (T, B, H), final state, cache dict.

    One GEMM projects x for all T steps into a (T, B, (n+1)H) buffer (n sigmoid gates in code
    order, then the candidate); per step two recurrent GEMMs run in sequence: h_{t-1} -> the n
    gates, then m_t -> the candidate (it must wait for z_t).
    """
    p = params
    xp = array_module(x)
    gates = sigmoid_gates(use_o)
    n = len(gates)
    T, B, X = x.shape
    H = state["h"].shape[1]
    act = device_for(x, units=B * H, lstm_kernels=False).gate_math()  # its activation form
    col = {k: slice(j * H, (j + 1) * H) for j, k in enumerate(gates)}  # columns of each gate
    W_x = xp.concatenate([p[f"W_{k}x"] for k in gates] + [p["W_ux"]], axis=0)  # ((n+1)H, X)
    b = xp.concatenate([p[f"b_{k}x"] + p[f"b_{k}h"] for k in gates] + [p["b_ux"] + p["b_m"]])
    W_h = xp.concatenate([p[f"W_{k}h"] for k in gates], axis=0)  # (nH, H)
    acts = (x.reshape(T * B, X) @ W_x.T + b).reshape(T, B, (n + 1) * H)
    hs = xp.empty((T + 1, B, H), dtype=x.dtype)
    cs = xp.empty((T + 1, B, H), dtype=x.dtype)
    tanh_cs = xp.empty((T + 1, B, H), dtype=x.dtype)  # index t holds tanh(c_t), t = 0..T
    ms = xp.empty((T, B, H), dtype=x.dtype)
    hs[0], cs[0] = state["h"], state["c"]
    xp.tanh(cs[0], out=tanh_cs[0])
    for t in range(T):
        a = acts[t]
        a[:, : n * H] += hs[t] @ W_h.T  # first recurrent GEMM: the n gates
        act.sigmoid_unscaled_(a[:, : n * H])  # eq. (U1)-(U4)
        i, z, f = a[:, col["i"]], a[:, col["z"]], a[:, col["f"]]
        xp.multiply(z, tanh_cs[t], out=ms[t])  # eq. (U5)
        u = a[:, n * H :]
        u += ms[t] @ p["U_m"].T  # second recurrent GEMM waits for z_t
        act.tanh_unscaled_(u)  # eq. (U6)
        c = cs[t + 1]
        xp.multiply(f, cs[t], out=c)
        c += i * u  # eq. (U7)
        xp.tanh(c, out=tanh_cs[t + 1])
        if use_o:
            xp.multiply(a[:, col["o"]], tanh_cs[t + 1], out=hs[t + 1])  # eq. (U8)
        else:
            hs[t + 1] = tanh_cs[t + 1]  # eq. (U8), use_o=False
    cache = dict(x=x, acts=acts, hs=hs, cs=cs, tanh_cs=tanh_cs, ms=ms)
    return hs[1:], {"h": hs[T].copy(), "c": cs[T].copy()}, cache


def ulstm_fused_backward(params, dh, cache, dstate, *, use_o=True):
    """Backward over all T steps; returns (grads, dx (T, B, X), dstate0)."""
    p = params
    x, acts, hs, cs, tanh_cs, ms = (cache[k] for k in ("x", "acts", "hs", "cs", "tanh_cs", "ms"))
    xp = array_module(x)
    gates = sigmoid_gates(use_o)
    n = len(gates)
    T, B, X = x.shape
    H = hs.shape[2]
    col = {k: slice(j * H, (j + 1) * H) for j, k in enumerate(gates)}
    W_x = xp.concatenate([p[f"W_{k}x"] for k in gates] + [p["W_ux"]], axis=0)
    W_h = xp.concatenate([p[f"W_{k}h"] for k in gates], axis=0)
    dacts = xp.empty((T, B, (n + 1) * H), dtype=x.dtype)  # dL/da for every gate and u
    dh_next, dc_next = dstate["h"].copy(), dstate["c"].copy()
    for t in range(T - 1, -1, -1):
        a, da = acts[t], dacts[t]
        i, z, f, u = a[:, col["i"]], a[:, col["z"]], a[:, col["f"]], a[:, n * H :]
        tanh_c, tanh_c_prev = tanh_cs[t + 1], tanh_cs[t]
        dh_t = dh[t] + dh_next
        if use_o:
            o = a[:, col["o"]]
            da[:, col["o"]] = dh_t * tanh_c * dsigmoid(o)  # dL/da_o: through eq. (U8)
            dc = dc_next + dh_t * o * dtanh(tanh_c)  # dL/dc_t: carried + through (U8)
        else:
            dc = dc_next + dh_t * dtanh(tanh_c)  # dL/dc_t: carried + through h_t = tanh(c_t)
        da[:, col["i"]] = dc * u * dsigmoid(i)  # dL/da_i: through eq. (U7)
        da[:, col["f"]] = dc * cs[t] * dsigmoid(f)  # dL/da_f: through eq. (U7)
        da_u = da[:, n * H :]
        xp.multiply(dc * i, dtanh(u), out=da_u)  # dL/da_u: through (U7), tanh' of (U6)
        dm = da_u @ p["U_m"]  # dL/dm_t: back through U_m
        da[:, col["z"]] = dm * tanh_c_prev * dsigmoid(z)  # dL/da_z: through eq. (U5)
        # dL/dc_{t-1}: through f_t and through tanh(c_{t-1}) inside m_t
        dc_next = dc * f + dm * z * dtanh(tanh_c_prev)
        dh_next = da[:, : n * H] @ W_h  # dL/dh_{t-1}: the gates only, no candidate term
    # Weight gradients: one GEMM over all T*B rows each.
    flat = dacts.reshape(T * B, (n + 1) * H)
    dW_x = flat.T @ x.reshape(T * B, X)
    db = flat.sum(axis=0)
    dx = (flat @ W_x).reshape(T, B, X)
    dW_h = flat[:, : n * H].T @ hs[:-1].reshape(T * B, H)
    grads = {"W_ux": dW_x[n * H :], "b_ux": db[n * H :], "b_m": db[n * H :].copy(),
             "U_m": flat[:, n * H :].T @ ms.reshape(T * B, H)}  # dL/dU_m pairs with m_t
    for k in gates:
        grads[f"W_{k}x"], grads[f"W_{k}h"] = dW_x[col[k]], dW_h[col[k]]
        grads[f"b_{k}x"], grads[f"b_{k}h"] = db[col[k]], db[col[k]].copy()
    grads = {name: grads[name] for name in params}
    return grads, dx, {"h": dh_next, "c": dc_next}
