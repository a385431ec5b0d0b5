"""Clear errors at every boundary, non-finite detection, the memory guard, and activations that
stay finite and warning-free for inputs of any magnitude."""

import math
import tracemalloc

import numpy as np
import pytest

import npcell
from npcell.cells import ops
from npcell.errors import (
    ArgumentTypeError,
    BackendError,
    ConfigError,
    DTypeError,
    MemoryLimitError,
    NonFiniteError,
    NpcellError,
    ShapeError,
    key_difference,
)
from npcell.sequence import estimate_cache_bytes

FUSED_KINDS = ("lstm", "peephole", "wmc")


@pytest.fixture
def cell():
    return npcell.make_cell("wmc", 3, 4, seed=1)


@pytest.fixture
def x(rng):
    return rng.standard_normal((5, 2, 3))


# ----- validation: what was expected, what arrived, where -------------------------------------
@pytest.mark.parametrize("bad, error, words", [
    (np.zeros((5, 3)), ShapeError, ["(T, B, X)", "rank 2", "(5, 3)", "x[:, None, :]"]),
    (np.zeros((5, 2, 4)), ShapeError, ["X=3", "(5, 2, 4)", "wmc"]),
    (np.zeros((0, 2, 3)), ShapeError, ["at least one step", "(0, 2, 3)"]),
    (np.zeros((5, 2, 3), dtype="float32"), DTypeError, ["float32", "float64", "astype"]),
    (np.zeros((5, 2, 3), dtype="float16"), DTypeError, ["float16"]),
    (np.zeros((5, 2, 3), dtype="int64"), DTypeError, ["int64"]),
    (np.zeros((5, 2, 3), dtype=object), DTypeError, ["object"]),
    (None, ArgumentTypeError, ["x must be a NumPy or CuPy array", "NoneType"]),
    ("abc", ArgumentTypeError, ["str"]),
    ([[[1.0, 2.0, 3.0]], [[1.0, 2.0]]], ShapeError, ["not rectangular"]),
    ([[[1.0, None, 3.0]]], DTypeError, ["not all numbers"]),
])
def test_forward_rejects_bad_x(cell, bad, error, words):
    with pytest.raises(error) as info:
        npcell.forward(cell, bad)
    assert isinstance(info.value, NpcellError)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_torch_tensor_gets_a_conversion_hint(cell):
    torch = pytest.importorskip("torch")
    with pytest.raises(ArgumentTypeError, match=r"\.detach\(\)\.cpu\(\)\.numpy\(\)"):
        npcell.forward(cell, torch.zeros(5, 2, 3, dtype=torch.float64))


def test_nested_lists_follow_the_cells_dtype(x):
    """Lists carry no dtype: they are converted to the cell's dtype (documented rule)."""
    for dtype in ("float64", "float32"):
        cell = npcell.make_cell("lstm", 3, 4, dtype=dtype)
        xd = x.astype(dtype)
        h_list, s_list, _ = npcell.forward(cell, xd.tolist(),
                                           {"h": np.zeros((2, 4)).tolist(), "c": [[0.0] * 4] * 2})
        h_arr, s_arr, cache = npcell.forward(cell, xd)
        assert h_list.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(h_list, h_arr)
        grads_list = npcell.backward(cell, np.ones_like(h_arr).tolist(), cache)[0]
        grads_arr = npcell.backward(cell, np.ones_like(h_arr), cache)[0]
        for name in grads_arr:
            np.testing.assert_array_equal(grads_list[name], grads_arr[name])
    ints = [[[1, 0, 2]]]  # ints in a list are numbers: accepted, as the cell's float dtype
    assert npcell.forward(npcell.make_cell("lstm", 3, 2), ints)[0].dtype == np.float64


def test_state_errors_name_the_entry(cell, x):
    H, B = 4, 2
    good = {"h": np.zeros((B, H)), "c": np.zeros((B, H))}
    with pytest.raises(ShapeError, match=r"missing \['c'\]"):
        npcell.forward(cell, x, {"h": good["h"]})
    with pytest.raises(ShapeError, match=r"unexpected \['A'\]"):
        npcell.forward(cell, x, {**good, "A": good["h"]})
    with pytest.raises(ShapeError, match=r"state\['c'\] must have shape \(2, 4\); got \(2, 5\)"):
        npcell.forward(cell, x, {**good, "c": np.zeros((B, 5))})
    with pytest.raises(DTypeError, match=r"state\['h'\] has dtype float32"):
        npcell.forward(cell, x, {**good, "h": good["h"].astype("float32")})
    with pytest.raises(ArgumentTypeError, match="state must be a dict"):
        npcell.forward(cell, x, (good["h"], good["c"]))


def test_backward_errors(cell, x, rng):
    h, _, cache = npcell.forward(cell, x)
    with pytest.raises(ShapeError, match=r"dh must have shape \(5, 2, 4\); got \(5, 2, 3\)"):
        npcell.backward(cell, np.zeros((5, 2, 3)), cache)
    with pytest.raises(DTypeError, match="dh has dtype float32"):
        npcell.backward(cell, np.zeros((5, 2, 4), dtype="float32"), cache)
    with pytest.raises(ArgumentTypeError, match="SequenceCache returned by npcell.forward"):
        npcell.backward(cell, h, {"h": h})
    other = npcell.make_cell("wmc", 3, 6)
    with pytest.raises(ShapeError, match="other sizes or options"):
        npcell.backward(other, np.zeros((5, 2, 6)), cache)
    with pytest.raises(ShapeError, match="cache came from a 'wmc' cell, not this 'lstm'"):
        npcell.backward(npcell.make_cell("lstm", 3, 4), h, cache)
    with pytest.raises(DTypeError, match="the cache has dtype float64"):
        npcell.backward(cell.astype("float32"), h.astype("float32"), cache)
    with pytest.raises(ShapeError, match=r"unexpected \['z'\]"):
        npcell.backward(cell, h, cache, dstate={"z": h[0]})
    with pytest.raises(ArgumentTypeError, match="dstate must be a dict"):
        npcell.backward(cell, h, cache, dstate=[h[0]])
    with pytest.raises(ArgumentTypeError, match="cell must be a cell made by npcell.make_cell"):
        npcell.backward("wmc", h, cache)


def test_flags_and_options(cell, x):
    with pytest.raises(ConfigError, match="check_finite must be True or False; got 'yes'"):
        npcell.forward(cell, x, check_finite="yes")
    with pytest.raises(ConfigError, match="fused must be True or False"):
        npcell.forward(cell, x, fused=1)
    with pytest.raises(ConfigError, match="unknown cell kind 'LSTM'; expected one of"):
        npcell.make_cell("LSTM", 3, 4)
    with pytest.raises(ConfigError, match=r"option diagonal of cell kind 'wmc' must be True or "
                                          r"False; got 1 \(int\)"):
        npcell.make_cell("wmc", 3, 4, diagonal=1)
    with pytest.raises(ConfigError, match="forget_bias .* must be a finite number"):
        npcell.make_cell("lstm", 3, 4, forget_bias=float("nan"))
    with pytest.raises(ConfigError, match="seed must be a non-negative int"):
        npcell.make_cell("lstm", 3, 4, seed=-3)
    with pytest.raises(ConfigError, match="hidden_size must be a positive int; got 2.5"):
        npcell.make_cell("lstm", 3, 2.5)
    with pytest.raises(DTypeError, match="float16"):
        npcell.make_cell("lstm", 3, 4, dtype="float16")
    with pytest.raises(BackendError, match="unknown backend 'gpu'"):
        npcell.make_cell("lstm", 3, 4, backend="gpu")


def test_gradcheck_settings(cell, x):
    with pytest.raises(ConfigError, match="mode must be 'fast' or 'full'; got 'slow'"):
        npcell.gradcheck(cell, x, mode="slow")
    with pytest.raises(ConfigError, match="gradcheck eps must be > 0; got -1"):
        npcell.gradcheck(cell, x, eps=-1)
    with pytest.raises(ConfigError, match="gradcheck samples must be a positive int; got 0"):
        npcell.gradcheck(cell, x, mode="full", samples=0)
    with pytest.raises(ConfigError, match=r"seed must be a non-negative int; got True \(bool\)"):
        npcell.gradcheck(cell, x, seed=True)
    with pytest.raises(ConfigError, match="gradcheck tol must be > 0; got 'tiny' \\(str\\)"):
        npcell.gradcheck(cell, x, tol="tiny")
    with pytest.raises(ConfigError, match="gradcheck check_state0 must be True or False; got 1"):
        npcell.gradcheck(cell, x, check_state0=1)
    bad = x.copy()
    bad[2, 1, 0] = np.inf
    with pytest.raises(NonFiniteError, match=r"x contains Inf at t=2 \(batch row 1, feature 0\)"):
        npcell.gradcheck(cell, bad)
    assert npcell.gradcheck(cell, x.tolist()).ok  # lists work here too


@pytest.mark.gpu
def test_mixed_backends_raise():
    import cupy

    cell = npcell.make_cell("lstm", 3, 4)
    with pytest.raises(BackendError, match="cupy array but the lstm cell's parameters live on"):
        npcell.forward(cell, cupy.zeros((2, 1, 3)))


# ----- non-finite values: the first step and tensor --------------------------------------------
def _exploding_setup(kind, t_bad, T=8):
    """A cell and input whose forget-gate pre-activation at step ``t_bad`` is +inf + (-inf).

    Biases make i = o = g = 1, so c_t >= 1 and h_t = tanh(c_t) > 0.76 in all 8 units; then
    W_fh = -1e308 sends the recurrent part of f's pre-activation to -inf at every step (even if an
    implementation folds sigmoid's 1/2 into the weights: 0.5 * 8 * 0.76e308 overflows), while
    W_fx = 1e308 times the input feature 0 (zero except at t_bad) sends its input part to +inf
    at t_bad only. Inputs and parameters are finite; the NaN is born at t_bad in f_t."""
    cell = npcell.make_cell(kind, 2, 8, seed=0)
    for gate in ("i", "o", "g"):
        cell.params[f"b_{gate}"][...] = 30.0
    cell.params["W_fh"][...] = -1e308
    cell.params["W_fx"][...] = 0.0
    cell.params["W_fx"][1, 0] = 1e308
    x = np.zeros((T, 2, 2))
    x[:, :, 1] = 0.3
    x[t_bad, 1, 0] = 10.0
    return cell, x


@pytest.mark.filterwarnings("error")  # check_finite also keeps NumPy's overflow warnings quiet
@pytest.mark.parametrize("kind", FUSED_KINDS)
@pytest.mark.parametrize("fused", [True, False])
def test_forward_names_first_step_and_tensor(kind, fused):
    cell, x = _exploding_setup(kind, t_bad=5)
    with pytest.raises(NonFiniteError) as info:
        npcell.forward(cell, x, fused=fused, check_finite=True)
    message = str(info.value)
    assert message.startswith("f_t became NaN at t=5 (batch row 1, unit 1)"), message
    assert f"the {kind} cell" in message and "gradient clipping or a smaller lr" in message
    # Without check_finite the same forward runs (NaN propagates, as in NumPy).
    with np.errstate(all="ignore"):
        h = npcell.forward(cell, x, fused=fused)[0]
    assert np.isfinite(h[:5]).all() and np.isnan(h[5, 1]).any()


def test_forward_nonfinite_any_kind():
    """Every kind reports the right step, whatever tensor its cache calls it."""
    for kind in sorted(npcell.CELLS):
        cell = npcell.make_cell(kind, 2, 3, seed=0)
        x = np.zeros((6, 1, 2))
        for p in cell.params.values():
            if p.ndim == 2 and p.shape[1] == 2:  # every input weight: x-part overflows at t=4
                p[...] = 1e308
        x[4, 0] = [10.0, -10.0]
        with np.errstate(all="ignore"):
            h = npcell.forward(cell, x)[0]
        if np.isfinite(h).all():
            continue  # this kind saturates instead of producing NaN: nothing to report
        with pytest.raises(NonFiniteError, match=r" at t=4 ") as info:
            npcell.forward(cell, x, check_finite=True)
        assert kind in str(info.value)


def test_nonfinite_inputs_and_parameters(cell, x):
    bad = x.copy()
    bad[3, 0, 2] = np.nan
    with pytest.raises(NonFiniteError, match=r"x contains NaN at t=3 \(batch row 0, feature 2\)"):
        npcell.forward(cell, bad, check_finite=True)
    state = {"h": np.zeros((2, 4)), "c": np.full((2, 4), -np.inf)}
    with pytest.raises(NonFiniteError, match=r"state\['c'\] contains Inf"):
        npcell.forward(cell, x, state, check_finite=True)
    broken = cell.copy()
    broken.params["W_oc"][2, 1] = np.nan
    with pytest.raises(NonFiniteError, match=r"parameter W_oc .* contains NaN \(row 2, column 1\)"
                                             r".*last good checkpoint"):
        npcell.forward(broken, x, check_finite=True)


@pytest.mark.parametrize("fused", [True, False])
def test_backward_names_first_bptt_step(fused):
    """Tiny inputs through huge input weights: forward is fine, but dL/dx_t = da_t W_x overflows
    from the step where the loss enters (t=4) back to t=0. BPTT meets t=4 first."""
    cell = npcell.make_cell("lstm", 2, 3, seed=0)
    for name in ("W_ix", "W_fx", "W_gx", "W_ox"):
        cell.params[name][...] *= 1e300
    x = np.full((6, 2, 2), 1e-300)
    h, _, cache = npcell.forward(cell, x, fused=fused, check_finite=True)
    dh = np.zeros_like(h)
    dh[4] = 1e10
    with pytest.raises(NonFiniteError, match=r"(dx|dL/dx_t) overflowed to Inf at t=4") as info:
        npcell.backward(cell, dh, cache, check_finite=True)
    assert "backward pass of the lstm cell" in str(info.value)
    dh_bad = dh.copy()
    dh_bad[2, 0, 1] = np.nan
    with pytest.raises(NonFiniteError, match=r"dh became NaN at t=2 \(batch row 0, unit 1\)"):
        npcell.backward(cell, dh_bad, cache, check_finite=True)


@pytest.mark.parametrize("kind", sorted(npcell.CELLS))
def test_check_finite_changes_no_number(kind, rng):
    cell = npcell.make_cell(kind, 3, 4, seed=2)
    x = rng.standard_normal((6, 2, 3))
    h1, s1, c1 = npcell.forward(cell, x)
    h2, s2, c2 = npcell.forward(cell, x, check_finite=True)
    np.testing.assert_array_equal(h1, h2)
    dh = rng.standard_normal(h1.shape)
    g1 = npcell.backward(cell, dh, c1)[0]
    g2 = npcell.backward(cell, dh, c2, check_finite=True)[0]
    for name in g1:
        np.testing.assert_array_equal(g1[name], g2[name])


# ----- memory guard ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(npcell.CELLS))
@pytest.mark.parametrize("fused", [None, False])
def test_cache_estimate_matches_what_forward_allocates(kind, fused, rng, no_workspace):
    """tracemalloc sees NumPy's allocations: the estimate is within 10% of what the forward
    still holds when it returns (its cache and outputs, beyond x), on either path."""
    cell = npcell.make_cell(kind, 3, 16, seed=0)
    T, B = 60, 8
    x = rng.standard_normal((T, B, 3))
    npcell.forward(cell, x[:1], fused=fused)  # warm up imports and memo tables first
    tracemalloc.start()
    try:
        result = npcell.forward(cell, x, fused=fused)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    estimate = estimate_cache_bytes(cell, T, B, fused)
    assert 0.9 * held <= estimate <= 1.1 * held, (kind, estimate, held)


def test_memory_guard_refuses_up_front_and_its_advice_works(rng):
    cell = npcell.make_cell("wmc", 2, 32)
    T, B = 20_000, 64
    x = np.broadcast_to(np.zeros(2), (T, B, 2))  # a huge x that costs no memory itself
    need = estimate_cache_bytes(cell, T, B)
    limit = 64 * 2**20
    assert need > limit
    tracemalloc.start()
    try:
        with pytest.raises(MemoryLimitError) as info:
            npcell.forward(cell, x, max_cache_bytes=limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20  # refused before allocating anything sequence-sized
    message = str(info.value)
    assert f"{need:,} bytes" in message and "64.0 MiB" in message and "truncated BPTT" in message
    chunk = int(message.split("chunks of at most T=")[1].split(" ")[0])
    assert 0 < chunk < T
    # The advice works: chunks of that length fit, carrying the state across.
    state = None
    for start in (0, chunk):
        h, state, cache = npcell.forward(cell, x[start:start + chunk], state, max_cache_bytes=limit)
    with pytest.raises(MemoryLimitError):
        npcell.forward(cell, x[: chunk + 1], max_cache_bytes=limit)


def test_memory_limit_settings(monkeypatch, x):
    cell = npcell.make_cell("lstm", 3, 4)
    assert npcell.get_memory_limit() == 8 * 2**30
    monkeypatch.setenv("NPCELL_MEMORY_LIMIT", "1K")
    assert npcell.get_memory_limit() == 1024
    with pytest.raises(MemoryLimitError, match="limit of 1.0 KiB"):
        npcell.forward(cell, x)
    npcell.forward(cell, x, max_cache_bytes="1G")  # the argument wins over the environment
    monkeypatch.setenv("NPCELL_MEMORY_LIMIT", "off")
    npcell.forward(cell, x, max_cache_bytes=None)
    monkeypatch.setenv("NPCELL_MEMORY_LIMIT", "lots")
    with pytest.raises(ConfigError, match="NPCELL_MEMORY_LIMIT='lots'"):
        npcell.forward(cell, x)
    monkeypatch.delenv("NPCELL_MEMORY_LIMIT")
    old = npcell.set_memory_limit("2KiB")
    try:
        assert old == 8 * 2**30 and npcell.get_memory_limit() == 2048
        with pytest.raises(MemoryLimitError):
            npcell.forward(cell, x)
        with pytest.raises(ConfigError, match="positive number of bytes"):
            npcell.set_memory_limit(-5)
    finally:
        npcell.set_memory_limit(None)
    assert npcell.get_memory_limit() == 8 * 2**30


def test_make_cell_refuses_huge_parameters():
    # 4 gates x (W_kx (H, 1) + W_kh (H, H) + b_k (H,)) with H = 10**6, 8 bytes each
    with pytest.raises(MemoryLimitError,
                       match=r"has 4,000,008,000,000 parameters = 32,000,064,000,000 bytes"):
        npcell.make_cell("lstm", 1, 10**6)


# ----- activations at any magnitude ------------------------------------------------------------
MAGNITUDES = [0.0, 1.0, 30.0, 1e4, 1e30, 1e300, np.finfo(np.float64).max, np.inf]


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sigmoid_tanh_any_magnitude(dtype):
    with np.errstate(over="ignore"):  # building float32 inputs from 1e300 is the test's business
        a = np.array([s * m for m in MAGNITUDES for s in (1, -1)]).astype(dtype)
    s, t = ops.sigmoid(a), ops.tanh(a)
    assert s.dtype == t.dtype == np.dtype(dtype)
    assert np.isfinite(s).all() and np.isfinite(t).all()
    for value, sv, tv in zip(a.tolist(), s.tolist(), t.tolist()):
        ref = 1 / (1 + math.exp(-value)) if abs(value) < 700 else float(value > 0)
        assert sv == pytest.approx(ref, abs=1e-6) and 0.0 <= sv <= 1.0
        assert tv == pytest.approx(math.tanh(value) if math.isfinite(value) else
                                   math.copysign(1, value), abs=1e-6)
    assert np.isfinite(ops.dsigmoid(s)).all() and np.isfinite(ops.dtanh(t)).all()


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("scale", [1e4, 1e30, 1e300])
def test_log_softmax_and_cross_entropy_any_magnitude(scale):
    from npcell.training.layers import log_softmax, softmax_cross_entropy

    logits = np.array([[1.0, -1.0, 0.0], [-1.0, 0.5, 1.0]]) * scale
    labels = np.array([1, 2])
    logp = log_softmax(logits)
    assert np.isfinite(logp).all()
    # Reference in plain Python: log p_k = z_k - max(z) - log(sum_j exp(z_j - max z)); for these
    # spans every non-max exp underflows to 0, so log p = z - max(z) up to log(1 + tiny).
    for row, z in zip(logp, logits.tolist()):
        top = max(z)
        ref = [zk - top - math.log(sum(math.exp(max(zj - top, -745)) for zj in z)) for zk in z]
        np.testing.assert_allclose(row, ref, rtol=1e-12)
    loss, dlogits, count = softmax_cross_entropy(logits, labels)
    assert count == 2 and math.isfinite(loss) and np.isfinite(dlogits).all()
    assert loss == pytest.approx((2 * scale + 0.0) / 2, rel=1e-12)  # -logp[0,1]=2s, -logp[1,2]=0
    np.testing.assert_allclose(dlogits, np.array([[1, -1, 0], [0, 0, 0]]) / 2, atol=1e-12)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("kind", sorted(npcell.CELLS))
@pytest.mark.parametrize("scale", [1e4, -1e4, 1e30])
def test_cells_stay_finite_and_quiet_for_huge_inputs(kind, scale, rng):
    cell = npcell.make_cell(kind, 3, 4, seed=0)
    x = scale * np.sign(rng.standard_normal((5, 2, 3)))
    h, _, cache = npcell.forward(cell, x, check_finite=True)
    grads, dx, _ = npcell.backward(cell, rng.standard_normal(h.shape), cache, check_finite=True)
    assert np.isfinite(h).all() and np.isfinite(dx).all()
    assert all(np.isfinite(g).all() for g in grads.values())


def test_cell_options_are_stored_as_the_type_of_their_default():
    """One validator per kind: NumPy flags and int biases arrive as Python bool and float, so
    checkpoint metadata and describe() see plain values."""
    cell = npcell.make_cell("wmc", 3, 4, diagonal=np.bool_(True), forget_bias=1,
                            seed=np.int64(2))
    assert type(cell.options["diagonal"]) is bool and cell.options["diagonal"] is True
    assert type(cell.options["forget_bias"]) is float and cell.options["forget_bias"] == 1.0
    assert cell.params["W_ic"].shape == (4,)  # the diagonal form was built
    with pytest.raises(ConfigError, match=r"option S \(inner loop steps\) of cell kind 'fw_rnn' "
                                          r"must be a positive int; got 0"):
        npcell.make_cell("fw_rnn", 3, 4, S=0)


def test_key_difference_names_what_is_missing_and_what_is_extra():
    assert key_difference(("h", "c"), {"c": 1, "z": 2}) == "missing ['h'], unexpected ['z']"
    assert key_difference(("h", "c"), {"c": 1, "h": 2}) == ""
