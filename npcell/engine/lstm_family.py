"""The fused sequence pair of lstm (eq. 1-6), peephole (eq. 16-18) and wmc (eq. 7-9).

It computes what looping the reference step pairs of npcell/cells/lstm.py, peephole.py and
wmc.py computes (``lstm_step_forward`` / ``peephole_step_forward`` / ``wmc_step_forward`` and
their backwards), with the same variable names and equation tags, but over all T steps at once:
one input GEMM for all T, one packed recurrent GEMM per step, weight gradients as one GEMM over
all T*B rows after the loop, buffers from the workspace. tests/test_engine.py holds it equal to
the step loop on every path (plain NumPy, Numba kernels, CuPy kernels).
"""

from __future__ import annotations

from ..backend import array_module
from .cpu import loops as cpu_loops
from .cuda import kernels as cuda_kernels
from .device import device_for
from .ops import cell_read_back_into, cell_read_into

GATES = ("i", "f", "g", "o")  # the gates of npcell.cells.lstm, eq. (1)-(6)
# Packed order inside the fused path (see the layout note below): the sigmoid gates o, i, f
# first and the tanh candidate g last, so [0, 3H) is every sigmoid gate and [H, 4H) is what
# dc_t feeds.
PACKED_ORDER = ("o", "i", "f", "g")


def lstm_family_forward(cell, params, x, state):
    """Registered fused forward of lstm, peephole and wmc (see npcell.engine.fused_pair).
    ``cell.cell_read`` (None for lstm, a CellRead for peephole and wmc) says what the gates
    read from c."""
    return fused_forward(params, x, state, cell.cell_read)


def lstm_family_backward(cell, params, dh, cache, dstate):
    """Registered fused backward of lstm, peephole and wmc."""
    return fused_backward(params, dh, cache, dstate, cell.cell_read)


def lstm_family_cache_floats(cell):
    """Floats per batch row that :func:`fused_forward` keeps: (per step, once). Per step the
    gates (4H), c_t, tanh(c_t), h_t (3H), and for WMC the squashed reads u_if, u_o (3H); once
    h_0, c_0 (index 0 of hs, cs) and the copies of the final state (4H)."""
    H = cell.hidden_size
    squashed = cell.cell_read is not None and cell.cell_read.squash
    return (10 if squashed else 7) * H, 4 * H


# Layout. The four gates of step t live side by side in one row block of a (T, B, 4H) buffer,
# in PACKED_ORDER = (o, i, f, g):
#
#     [ o | i | f | g ]      o, i, f: sigmoid gates [0, 3H);  i, f, g: what dL/dc_t feeds [H, 4H)
#
# so every group the loop touches at once is one contiguous slice.
#
# Activations without temporaries. The rows of the packed weights and biases are multiplied
# once per call by a power of two (exact), so that each gate needs only in-place passes, in the
# activation form of the device (npcell/engine/device.py, where the measurement is):
#
#   tanh form: sigmoid rows x 1/2, g rows x 1;
#       o, i, f = 0.5 * tanh(a/2) + 0.5 = sigma(a);  g = tanh(a)
#   exp form (NumPy from B*H = 256 units): sigmoid rows x -1, g rows x -2;
#       o, i, f = 1 / (1 + exp(-a)) = sigma(a);     g = 2 / (1 + exp(-2a)) - 1 = tanh(a)
#   exp(-a) may overflow to inf (a < -709 in float64, a < -88 in float32); 1 / (1 + inf) = 0
#   is the right limit, so the overflow warning is silenced for the loop.
#
# Per step the forward does the one recurrent GEMM plus ~9 in-place ufunc calls on preallocated
# (B, H) or (B, 4H) buffers; the backward computes every local derivative that does not depend
# on the recurrence for a block of CHUNK steps at once (vectorised, and small enough to still be
# in cache when the loop reads it: over all T at once it was ~35% slower, memory-bound), so the
# loop body is the recurrent GEMM plus ~6 in-place multiplies. The step loops allocate nothing;
# the backward allocates one small block of local derivatives every CHUNK steps.
# With Numba installed (default on), compiled CPU kernels replace the gate block of lstm,
# peephole and wmc (engine/cpu/loops.py; they take the pre-activations unscaled). On CuPy,
# `npcell.engine.use_fused_kernels(True)` replaces the LSTM gate block of each step by one
# ElementwiseKernel launch (forward) and one (backward). The plain path below stays the
# reference, and tests compare each fast path with it.
_O, _I, _F, _G = 0, 1, 2, 3  # block index of each gate in PACKED_ORDER
CHUNK = 8  # time steps whose local derivatives the backward computes at once (cache-sized)


def _doubling_overflows(params, xp, dtype):
    """True when a gate weight or bias is so large (> max/2, e.g. 1e308) that the exp form's
    row scale of -2 would overflow it to inf; the forward then takes the tanh form (scales 1/2
    and 1), which computes the same function without that overflow."""
    limit = float(xp.finfo(dtype).max) / 2
    return any(float(xp.abs(params[f"{prefix}_{k}{suffix}"]).max()) > limit
               for k in GATES for prefix, suffix in (("W", "x"), ("W", "h"), ("b", "")))


def pack(params, part, gates=PACKED_ORDER, sigmoid_scale=1.0, g_scale=1.0):
    """Stack one part of every gate into one array, in PACKED_ORDER (o, i, f, g).

    part 'x' -> [W_ox; W_ix; W_fx; W_gx] (4H, X); 'h' -> the W_kh (4H, H); 'b' -> the b_k (4H,).
    ``sigmoid_scale`` multiplies the rows of the sigmoid gates (o, i, f) and ``g_scale`` those of
    g; the forward passes its gate-math scales (see the note above), the backward none.
    """
    pattern = {"x": "W_{}x", "h": "W_{}h", "b": "b_{}"}[part]
    arrays = [params[pattern.format(k)] for k in gates]
    packed = array_module(*arrays).concatenate(arrays, axis=0)
    H = arrays[0].shape[0]
    for n, k in enumerate(gates):
        scale = g_scale if k == "g" else sigmoid_scale
        if scale != 1.0:
            packed[n * H : (n + 1) * H] *= scale
    return packed


def _cell_reads(params, spec, xp, *, sig_scale):
    """The packed cell-to-gate weights of peephole/WMC for the fused path (None for lstm).

    Returns a dict: ``W_if`` (2H, H) full or (2, H) diagonal for i, f (which read c_{t-1}),
    ``W_o`` (H, H) or (H,) for o (which reads c_t), the biases inside the read (or None), and
    The forward adds the peephole's read to the scaled pre-activation, so its weights get the
    sigmoid rows' scale ``sig_scale`` too (exact); the WMC's read is squashed first, so the
    forward scales it after its tanh instead. The backward asks for the true weights (1.0).
    """
    if spec is None:
        return None
    squash, diagonal, cell_bias = spec.squash, spec.diagonal, spec.bias
    scale = 1.0 if squash else sig_scale
    stack = xp.stack if diagonal else xp.concatenate
    reads = dict(
        squash=squash, diagonal=diagonal,
        W_if=stack([params["W_ic"], params["W_fc"]], axis=0) * scale,
        W_o=params["W_oc"] * scale,
        b_if=xp.concatenate([params["b_ic"], params["b_fc"]]) * scale if cell_bias else None,
        b_o=params["b_oc"] * scale if cell_bias else None,
    )
    return reads


def fused_forward(params, x, state, spec=None):
    """Forward over all T steps. x (T, B, X) -> h (T, B, H), final state, cache dict.

    Cache (the stored activations, per step t): ``gates`` (T, B, 4H) the four gate activations
    in PACKED_ORDER, ``hs``/``cs`` (T+1, B, H) h_t and c_t with the initial state at index 0,
    ``tanh_cs`` (T, B, H) tanh(c_t), ``x`` (a reference to the input); WMC adds ``u_if``
    (T, B, 2H) and ``u_o`` (T, B, H), the squashed cell reads tanh(W_kc c) that tanh' needs.
    """
    xp = array_module(x)
    T, B, X = x.shape
    H = state["h"].shape[1]
    dtype = x.dtype
    device = device_for(x, units=B * H, cell_read=spec)
    if device.exp_form and _doubling_overflows(params, xp, dtype):  # g rows x -2 would be inf
        device = device.in_tanh_form()
    path, act = device.kernels, device.gate_math()
    if path == "numba":  # the CPU kernels take the pre-activations as they are
        sig_scale, g_scale = 1.0, 1.0
    else:
        sig_scale, g_scale = act.sig_scale, act.g_scale
    scales = dict(sigmoid_scale=sig_scale, g_scale=g_scale)
    W_x = pack(params, "x", **scales)
    # W_h^T made contiguous once per call: BLAS multiplies h (B, H) by it up to ~15% faster
    # than by the transposed view (measured at B=32, H=512 and B=1, H=32; equal at H=128).
    W_hT = xp.ascontiguousarray(pack(params, "h", **scales).T)
    b = pack(params, "b", **scales)
    # One GEMM for the input projection of all T steps; the buffer then holds the gates.
    # The big buffers come from the workspace: reused across calls once nothing holds them.
    gates = device.empty((T, B, 4 * H), dtype)
    small_input = _small_input(path, x, W_x)
    if small_input is None:  # else the CPU kernels' loop projects x_t step by step
        xp.matmul(x.reshape(T * B, X), W_x.T, out=gates.reshape(T * B, 4 * H))
    if path != "numba":  # the CPU kernels add b as they go
        gates += b
    hs = device.empty((T + 1, B, H), dtype)
    cs = device.empty((T + 1, B, H), dtype)
    tanh_cs = device.empty((T, B, H), dtype)
    hs[0], cs[0] = state["h"], state["c"]
    recurrent = xp.empty((B, 4 * H), dtype=dtype)  # per-step temporaries, allocated once
    i_times_g = xp.empty((B, H), dtype=dtype)
    reads = _cell_reads(params, spec, xp, sig_scale=sig_scale)
    cache = dict(x=x, gates=gates, hs=hs, cs=cs, tanh_cs=tanh_cs)
    if reads is not None:
        if reads["squash"]:
            cache["u_if"] = device.empty((T, B, 2 * H), dtype)
            cache["u_o"] = device.empty((T, B, H), dtype)
    if path == "numba" and reads is None:  # the gate block below as one compiled pass
        cpu_loops.forward_loop(gates, hs, cs, tanh_cs, W_hT, b, recurrent, small_input)
    elif path == "numba":  # two passes, around the o gate's read of c_t
        cpu_loops.connected_forward_loop(gates, hs, cs, tanh_cs, W_hT, b, recurrent, reads,
                                           cache.get("u_if"), cache.get("u_o"),
                                           small_input)
    elif path == "cupy":
        step = cuda_kernels.lstm_forward_step  # the gate block below as one CuPy kernel launch
        for t in range(T):
            xp.matmul(hs[t], W_hT, out=recurrent)
            step(gates[t], recurrent, cs[t], cs[t + 1], tanh_cs[t], hs[t + 1])
    else:
        with act.quiet():
            _forward_loop(gates, hs, cs, tanh_cs, W_hT, reads, cache, act, recurrent, i_times_g)
    return hs[1:], {"h": hs[T].copy(), "c": cs[T].copy()}, cache


def _small_input(path, x, W_x):
    """A cpu_loops.SmallInput when the CPU kernels run and X is small enough for the loops
    to take the input term step by step (see there why); else None (the hoisted GEMMs)."""
    T, B, X = x.shape
    if path == "numba" and cpu_loops.loops_take_input(B, X, W_x.shape[0] // 4):
        return cpu_loops.SmallInput(x, W_x)
    return None


def _forward_loop(gates, hs, cs, tanh_cs, W_hT, reads, cache, act, recurrent, i_times_g):
    """The time loop of :func:`fused_forward` (plain path): fills gates, hs, cs, tanh_cs."""
    xp = act.xp
    T, B, H4 = gates.shape
    H = H4 // 4
    gates4 = gates.reshape(T, B, 4, H)  # the same memory, one gate per index of axis 2
    if reads is not None:
        read_if = xp.empty((B, 2 * H), dtype=gates.dtype)
        read_o = xp.empty((B, H), dtype=gates.dtype)
        u_if, u_o = cache.get("u_if"), cache.get("u_o")
    for t in range(T):
        a, a4 = gates[t], gates4[t]  # (B, 4H) and its (B, 4, H) view
        o, i, f, g = a4[:, _O], a4[:, _I], a4[:, _F], a4[:, _G]
        c_prev, c = cs[t], cs[t + 1]
        xp.matmul(hs[t], W_hT, out=recurrent)  # the one recurrent GEMM of the LSTM
        a += recurrent  # pre-activations of eq. (1), (2), (3), (5), rows scaled
        if reads is None:
            act.sigmoid_(a4[:, :_G])  # o, i, f = sigma(a), eq. (5), (2), (3)
            act.tanh_(g)  # g = tanh(a_g), eq. (1)
        else:  # i, f read c_{t-1}: eq. (7)-(8) / (16)-(17)
            cell_read_into(c_prev, reads["W_if"], reads["b_if"], reads["diagonal"], read_if)
            if reads["squash"]:
                act.tanh_into(read_if, u_if[t])  # tanh(W_kc c_{t-1} [+ b_kc]), eq. (7)-(8)
                xp.multiply(u_if[t], act.sig_scale, out=read_if)
            a[:, H : 3 * H] += read_if
            act.sigmoid_(a4[:, _I:_G])  # i, f: eq. (7)-(8) / (16)-(17)
            act.tanh_(g)  # g, eq. (1)
        xp.multiply(f, c_prev, out=c)
        xp.multiply(i, g, out=i_times_g)
        c += i_times_g  # c_t = f c_{t-1} + i g, eq. (4)
        if reads is not None:  # o reads the new c_t: eq. (9) / (18)
            cell_read_into(c, reads["W_o"], reads["b_o"], reads["diagonal"], read_o)
            if reads["squash"]:
                act.tanh_into(read_o, u_o[t])
                xp.multiply(u_o[t], act.sig_scale, out=read_o)
            o += read_o
            act.sigmoid_(o)  # o_t, eq. (9) / (18)
        act.tanh_into(c, tanh_cs[t])
        xp.multiply(o, tanh_cs[t], out=hs[t + 1])  # h_t = o_t tanh(c_t), eq. (6)


def local_derivatives(cache, spec, steps=slice(None), D_out=None):
    """Everything backward multiplies by that does not depend on the recurrence, for the time
    steps ``steps`` (a slice; default all T). The backward asks for a few steps at a time, just
    before its loop reaches them, so the arrays are still in cache when the loop reads them.

    Returns ``D`` (T', B, 4H) (written into ``D_out`` when given), PACKED_ORDER blocks, which
    the backward loop turns into dL/da in place: D_o = tanh(c_t) sigma'(o) (times dL/dh_t gives
    dL/da_o), D_i = g sigma'(i), D_f = c_{t-1} sigma'(f), D_g = i tanh'(g) (times dL/dc_t give
    dL/da_i, da_f, da_g);
    ``dc_dh`` (T, B, H) = o tanh'(c_t), the path dL/dh_t -> dL/dc_t of eq. (6); and for WMC
    ``du_if`` (T, B, 2H), ``du_o`` (T, B, H) = tanh' of the squashed cell reads.
    """
    start = steps.start or 0
    gates, tanh_cs = cache["gates"][steps], cache["tanh_cs"][steps]
    c_prev = cache["cs"][:-1][steps]
    xp = array_module(gates)
    T, B, H4 = gates.shape
    H = H4 // 4
    A = gates.reshape(T, B, 4, H)
    D_flat = xp.empty_like(gates) if D_out is None else D_out
    D = D_flat.reshape(T, B, 4, H)
    sig, sig_d = A[:, :, :_G], D[:, :, :_G]
    xp.subtract(1.0, sig, out=sig_d)
    sig_d *= sig  # sigma' = s (1 - s) for o, i, f
    D[:, :, _O] *= tanh_cs  # D_o: eq. (6) then sigma' of eq. (5)
    D[:, :, _I] *= A[:, :, _G]  # D_i: i g of eq. (4) then sigma' of eq. (2)
    D[:, :, _F] *= c_prev  # D_f: f c_{t-1} of eq. (4) then sigma' of eq. (3)
    g, D_g = A[:, :, _G], D[:, :, _G]
    xp.multiply(g, g, out=D_g)
    xp.subtract(1.0, D_g, out=D_g)
    D_g *= A[:, :, _I]  # D_g: i g of eq. (4) then tanh' of eq. (1)
    dc_dh = tanh_cs * tanh_cs
    xp.subtract(1.0, dc_dh, out=dc_dh)
    dc_dh *= A[:, :, _O]  # dc_t/dh_t: o_t tanh'(c_t), eq. (6)
    out = dict(D=D_flat, dc_dh=dc_dh)
    if spec is not None and spec.squash:  # WMC: tanh' of the cell reads
        for name in ("u_if", "u_o"):
            u = cache[name][steps]
            du = u * u
            xp.subtract(1.0, du, out=du)
            out["d" + name] = du
    out["start"] = start
    return out


def fused_backward(params, dh, cache, dstate, spec=None):
    """Backward over all T steps; returns (grads, dx (T, B, X), dstate0).

    dh (T, B, H) is dL/dh_t from the loss at each step; dstate the gradient of the final state.
    The cache is read, never modified, so backward may run twice on one forward.
    """
    x, gates, hs, cs = (cache[k] for k in ("x", "gates", "hs", "cs"))
    xp = array_module(x)
    T, B, X = x.shape
    H = hs.shape[2]
    dtype = x.dtype
    W_x, W_h = pack(params, "x"), pack(params, "h")  # the true weights: dL/da, not dL/d(a/2)
    reads = _cell_reads(params, spec, xp, sig_scale=1.0)
    dh_next = xp.empty((B, H), dtype=dtype)  # dL/dh_{t-1} from step t: the recurrent GEMM
    dh_next[...] = dstate["h"]
    dc = dstate["c"].copy()  # dL/dc_t, carried backwards and updated in place
    dh_t = xp.empty((B, H), dtype=dtype)
    scratch = xp.empty((B, 2 * H), dtype=dtype)

    device = device_for(x, units=B * H, cell_read=spec)
    path = device.kernels
    diagonal_grads = None  # (dw_if, dw_o) when the kernels summed them on the way
    small_input = _small_input(path, x, W_x)  # then dx, dW_x, db come from the loop too
    if small_input is not None:
        small_input.start_backward()
    da_all = device.empty(gates.shape, dtype)  # dL/da (the plain path: D first)
    if reads is not None:
        squash, diagonal = reads["squash"], reads["diagonal"]
        W_if, W_o = reads["W_if"], reads["W_o"]
        if squash:  # WMC: dL/dz of the squashed reads, delta-hat of eq. (15)
            dz_if = device.empty((T, B, 2 * H), dtype)
            dz_o = device.empty((T, B, H), dtype)
        else:  # peephole: dz = da, read straight from da_all
            dz_if, dz_o = da_all[:, :, H : 3 * H], da_all[:, :, :H]
    if path == "numba" and reads is None:
        cpu_loops.backward_loop(gates, cs, cache["tanh_cs"], dh, W_h, da_all, dh_next, dc,
                                  small_input)
    elif path == "numba":
        diagonal_grads = cpu_loops.connected_backward_loop(
            gates, cs, cache["tanh_cs"], dh, W_h, da_all, dh_next, dc, reads,
            scratch, cache.get("u_if"), cache.get("u_o"), dz_if, dz_o, small_input)
    elif path == "cupy":
        dc_prev = xp.empty_like(dc)
        step = cuda_kernels.lstm_backward_step  # the gate block below as one CuPy kernel launch
        for t in range(T - 1, -1, -1):
            step(gates[t], cs[t], cache["tanh_cs"][t], dh[t], dh_next, dc, da_all[t], dc_prev)
            dc, dc_prev = dc_prev, dc
            xp.matmul(da_all[t], W_h, out=dh_next)  # dL/dh_{t-1}: the one recurrent GEMM back
    else:
        da4 = da_all.reshape(T, B, 4, H)  # local derivatives, then dL/da in place
        gates4 = gates.reshape(T, B, 4, H)
        local = None
        for t in range(T - 1, -1, -1):
            if local is None or t < local["start"]:  # the next block of CHUNK steps back
                first = max(0, t + 1 - CHUNK)
                block = slice(first, t + 1)
                local = local_derivatives(cache, spec, block, da_all[block])
            k = t - local["start"]  # this step's row in the block's arrays
            da = da_all[t]  # (B, 4H): dL/da_o, da_i, da_f, da_g of step t, in PACKED_ORDER
            da_o, da_ifg = da4[t, :, _O], da4[t, :, _I:]
            f = gates4[t, :, _F]
            xp.add(dh[t], dh_next, out=dh_t)  # dL/dh_t: this step's loss + carried from t+1
            da_o *= dh_t  # dL/da_o: through eq. (6), sigma' of eq. (5)/(9)/(18)
            xp.multiply(dh_t, local["dc_dh"][k], out=scratch[:, :H])
            dc += scratch[:, :H]  # dL/dc_t: carried + through eq. (6)
            if reads is not None:  # the o-gate read c_t: its term joins dL/dc_t before di/df/dg
                if squash:
                    xp.multiply(da_o, local["du_o"][k], out=dz_o[t])  # through tanh of (9)
                cell_read_back_into(dz_o[t], W_o, diagonal, dc, scratch)  # dL/dc_t += W_oc^T dz_o
            da_ifg *= dc[:, None, :]  # dL/da_i, da_f, da_g: through eq. (4)
            dc *= f  # now dc_prev, dL/dc_{t-1}: the constant error carousel f_t of eq. (4) ...
            if reads is not None:  # ... plus the reads of c_{t-1} by i and f (W_ic, W_fc)
                if squash:  # delta-hat i_t, f_t: eq. (15)
                    xp.multiply(da[:, H : 3 * H], local["du_if"][k], out=dz_if[t])
                cell_read_back_into(dz_if[t], W_if, diagonal, dc, scratch)
            xp.matmul(da, W_h, out=dh_next)  # dL/dh_{t-1}: the one recurrent GEMM back

    # Weight gradients: one GEMM over all T*B rows each (eq. (12)-(13) summed over t and b).
    flat = da_all.reshape(T * B, 4 * H)
    dW_h = flat.T @ hs[:-1].reshape(T * B, H)
    if small_input is None:
        dW_x = flat.T @ x.reshape(T * B, X)
        db = flat.sum(axis=0)
        dx = (flat @ W_x).reshape(T, B, X)  # dL/dx_t for every t at once
    else:  # summed by the loop, step by step
        (dW_x, db), dx = small_input.grads(), small_input.dx
    grads = {}
    for n, k in enumerate(PACKED_ORDER):
        rows = slice(n * H, (n + 1) * H)
        grads[f"W_{k}x"], grads[f"W_{k}h"], grads[f"b_{k}"] = dW_x[rows], dW_h[rows], db[rows]
    if reads is not None:
        c_prev = cs[:-1].reshape(T * B, H)
        c_now = cs[1:].reshape(T * B, H)
        dzf = dz_if.reshape(T * B, 2 * H)
        dzo = dz_o.reshape(T * B, H)
        if diagonal_grads is not None:  # eq. (21) / (14) diagonal, summed by the kernels
            dw_if, grads["W_oc"] = diagonal_grads
            grads["W_ic"], grads["W_fc"] = dw_if[:H], dw_if[H:]
        elif diagonal:
            grads["W_ic"] = xp.einsum("nh,nh->h", dzf[:, :H], c_prev)  # sum over t and b
            grads["W_fc"] = xp.einsum("nh,nh->h", dzf[:, H:], c_prev)
            grads["W_oc"] = xp.einsum("nh,nh->h", dzo, c_now)  # pairs with c_t
        else:
            dW_ifc = dzf.T @ c_prev  # eq. (14) / (21), summed over t and the batch
            grads["W_ic"], grads["W_fc"] = dW_ifc[:H], dW_ifc[H:]
            grads["W_oc"] = dzo.T @ c_now  # pairs with c_t
        if reads["b_if"] is not None:
            dbc = dzf.sum(axis=0)
            grads.update(b_ic=dbc[:H], b_fc=dbc[H:], b_oc=dzo.sum(axis=0))
    return _ordered(params, grads), dx, {"h": dh_next, "c": dc}


# ----- small helpers ------------------------------------------------------------------------
def _ordered(params, grads):
    return {name: grads[name] for name in params}
