"""npcell's LSTM and GRU against PyTorch's nn.LSTM / nn.GRU autograd, in float64, through the
state-dict converters: outputs, final state and every gradient to 1e-10; exact round trips."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npcell
from npcell.cells.torch_convert import (
    gru_from_torch_state_dict,
    gru_to_torch_state_dict,
    lstm_from_torch_state_dict,
    lstm_to_torch_state_dict,
)
from npcell.errors import ConfigError, ShapeError

torch = pytest.importorskip("torch", reason="PyTorch is the optional 'crosscheck' extra "
                                            "(pip install npcell[crosscheck])")

TOL = dict(rtol=1e-10, atol=1e-10)
SHAPES = dict(T=st.integers(1, 8), B=st.integers(1, 4), X=st.integers(1, 5), H=st.integers(1, 6),
              seed=st.integers(0, 2**20))


def torch_module(kind, X, H, seed):
    """An nn.LSTM / nn.GRU in float64 with PyTorch's own init, including non-zero bias_hh."""
    torch.manual_seed(seed)
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    return cls(X, H).double()


def torch_run(module, x, state, weights_h, weights_s):
    """PyTorch forward + autograd of L = sum(R_h * h) + sum_k sum(R_k * state_T[k])."""
    xt = torch.tensor(x, requires_grad=True)
    initial = {k: torch.tensor(v[None], requires_grad=True) for k, v in state.items()}
    if "c" in state:
        out, (h_T, c_T) = module(xt, (initial["h"], initial["c"]))
        final = {"h": h_T[0], "c": c_T[0]}
    else:
        out, h_T = module(xt, initial["h"])
        final = {"h": h_T[0]}
    loss = (out * torch.tensor(weights_h)).sum()
    for k, w in weights_s.items():
        loss = loss + (final[k] * torch.tensor(w)).sum()
    module.zero_grad()
    loss.backward()
    return (out.detach().numpy(), {k: v.detach().numpy() for k, v in final.items()},
            xt.grad.numpy(), {k: v.grad[0].numpy() for k, v in initial.items()})


def compare(kind, module, cell, X, H, T, B, seed, fused):
    """Assert npcell == PyTorch for one case; return the largest |difference| per quantity."""
    errors = {}

    def record(name, a, b):
        errors[name] = float(np.max(np.abs(np.asarray(a) - np.asarray(b)), initial=0.0))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, X))
    state = {k: rng.standard_normal((B, H)) for k in cell.state_names}
    weights_h = rng.standard_normal((T, B, H))  # a random weighted-sum loss
    weights_s = {k: rng.standard_normal((B, H)) for k in cell.state_names}

    out_t, final_t, dx_t, d0_t = torch_run(module, x, state, weights_h, weights_s)
    h, final, cache = npcell.forward(cell, x, state, fused=fused)
    grads, dx, d0 = npcell.backward(cell, weights_h, cache, weights_s)

    np.testing.assert_allclose(h, out_t, **TOL)  # every h_t
    record("h", h, out_t)
    for k in cell.state_names:  # final h (and c)
        np.testing.assert_allclose(final[k], final_t[k], **TOL)
        np.testing.assert_allclose(d0[k], d0_t[k], **TOL)  # dL/dh_0, dL/dc_0
        record(f"final {k}", final[k], final_t[k])
        record(f"d{k}0", d0[k], d0_t[k])
    np.testing.assert_allclose(dx, dx_t, **TOL)
    record("dx", dx, dx_t)

    # Weight gradients: put npcell's gradients in a cell and export them in PyTorch's layout.
    grad_cell = cell.copy()
    grad_cell.set_params(grads)
    to_sd = lstm_to_torch_state_dict if kind == "lstm" else gru_to_torch_state_dict
    exported = to_sd(grad_cell, as_numpy=True)
    torch_grads = dict(module.named_parameters())
    for name in ("weight_ih_l0", "weight_hh_l0"):
        np.testing.assert_allclose(exported[name], torch_grads[name].grad.numpy(), **TOL,
                                   err_msg=name)
        record(f"d{name}", exported[name], torch_grads[name].grad.numpy())
    g_bih = torch_grads["bias_ih_l0"].grad.numpy()
    g_bhh = torch_grads["bias_hh_l0"].grad.numpy()
    np.testing.assert_allclose(exported["bias_ih_l0"], g_bih, **TOL)  # dL/db = dL/db_ih
    if kind == "lstm":
        np.testing.assert_allclose(g_bhh, g_bih, **TOL)  # the two LSTM biases are one
    else:
        H3 = slice(2 * H, 3 * H)
        np.testing.assert_allclose(g_bhh[: 2 * H], g_bih[: 2 * H], **TOL)  # r, z: one bias
        np.testing.assert_allclose(grads["b_nh"], g_bhh[H3], **TOL)  # b_hn is its own
        record("db_nh", grads["b_nh"], g_bhh[H3])
    record("dbias", exported["bias_ih_l0"], g_bih)
    return errors


@pytest.mark.parametrize("fused", [False, True], ids=["stepwise", "fused"])
@settings(max_examples=10)
@given(**SHAPES)
def test_lstm_matches_nn_lstm_forward_and_all_gradients(fused, T, B, X, H, seed):
    module = torch_module("lstm", X, H, seed)
    cell = lstm_from_torch_state_dict(module.state_dict())
    assert cell.kind == "lstm" and cell.dtype == np.float64
    assert (cell.input_size, cell.hidden_size) == (X, H)
    compare("lstm", module, cell, X, H, T, B, seed, fused)


@pytest.mark.parametrize("fused", [False, True], ids=["stepwise", "fused"])
@settings(max_examples=10)
@given(**SHAPES)
def test_gru_reset_after_matches_nn_gru_forward_and_all_gradients(fused, T, B, X, H, seed):
    module = torch_module("gru", X, H, seed)
    cell = gru_from_torch_state_dict(module.state_dict())
    assert cell.kind == "gru" and cell.options["reset_after"] is True
    compare("gru", module, cell, X, H, T, B, seed, fused)


def test_cho_gru_is_not_nn_gru():
    """Guard: the Cho form with the same weights computes something else (the test above is
    not passing by accident of a form that ignores where the reset sits)."""
    module = torch_module("gru", 3, 4, 0)
    cell = gru_from_torch_state_dict(module.state_dict())
    cho = npcell.make_cell("gru", 3, 4, reset_after=False)
    cho.set_params({k: v for k, v in cell.params.items() if k != "b_nh"})
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    h_torch, _ = module(torch.tensor(x))
    h_cho, _, _ = npcell.forward(cho, x)
    assert np.abs(h_cho - h_torch.detach().numpy()).max() > 1e-3


# ----- round trips --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cell_to_state_dict_to_cell_is_exact(kind, dtype):
    options = {"reset_after": True} if kind == "gru" else {}
    cell = npcell.make_cell(kind, 3, 5, seed=4, dtype=dtype, **options)
    to_sd = lstm_to_torch_state_dict if kind == "lstm" else gru_to_torch_state_dict
    from_sd = lstm_from_torch_state_dict if kind == "lstm" else gru_from_torch_state_dict
    sd = to_sd(cell)
    assert all(isinstance(v, torch.Tensor) for v in sd.values())
    assert all(str(v.dtype) == f"torch.{dtype}" for v in sd.values())
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](3, 5)
    module = module.double() if dtype == "float64" else module
    module.load_state_dict(sd)  # strict: names and shapes are exactly nn.LSTM's / nn.GRU's
    back = from_sd(module.state_dict())
    assert back.dtype == cell.dtype and back.options == cell.options
    assert list(back.params) == list(cell.params)
    for name in cell.params:
        np.testing.assert_array_equal(back.params[name], cell.params[name], err_msg=name)
    # NumPy values work too, without torch.
    back_np = from_sd(to_sd(cell, as_numpy=True))
    for name in cell.params:
        np.testing.assert_array_equal(back_np.params[name], cell.params[name], err_msg=name)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_state_dict_to_cell_to_state_dict_keeps_weights_and_merges_biases(kind):
    module = torch_module(kind, 4, 3, seed=11)
    sd = module.state_dict()
    if kind == "lstm":
        cell = lstm_from_torch_state_dict(sd)
        out = lstm_to_torch_state_dict(cell)
        merged_ih = sd["bias_ih_l0"] + sd["bias_hh_l0"]
        merged_hh = torch.zeros_like(sd["bias_hh_l0"])
    else:
        cell = gru_from_torch_state_dict(sd)
        out = gru_to_torch_state_dict(cell)
        H = 3
        merged_ih = sd["bias_ih_l0"].clone()
        merged_ih[: 2 * H] += sd["bias_hh_l0"][: 2 * H]  # r, z merge
        merged_hh = sd["bias_hh_l0"].clone()
        merged_hh[: 2 * H] = 0  # b_hn stays inside r * (...)
    assert torch.equal(out["weight_ih_l0"], sd["weight_ih_l0"])
    assert torch.equal(out["weight_hh_l0"], sd["weight_hh_l0"])
    assert torch.equal(out["bias_ih_l0"], merged_ih)
    assert torch.equal(out["bias_hh_l0"], merged_hh)
    # Same function after the merge.
    x = torch.randn(6, 2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    merged = type(module)(4, 3).double()
    merged.load_state_dict(out)
    np.testing.assert_allclose(merged(x)[0].detach().numpy(), module(x)[0].detach().numpy(),
                               rtol=1e-13, atol=1e-14)


def test_gate_order_is_pytorchs():
    """nn.LSTM rows are i, f, g, o; nn.GRU rows are r, z, n."""
    lstm = npcell.make_cell("lstm", 2, 3, seed=0)
    sd = lstm_to_torch_state_dict(lstm, as_numpy=True)
    for n, k in enumerate("ifgo"):
        np.testing.assert_array_equal(sd["weight_ih_l0"][3 * n : 3 * n + 3], lstm.params[f"W_{k}x"])
    gru = npcell.make_cell("gru", 2, 3, seed=0, reset_after=True)
    sd = gru_to_torch_state_dict(gru, as_numpy=True)
    for n, k in enumerate("rzn"):
        np.testing.assert_array_equal(sd["weight_hh_l0"][3 * n : 3 * n + 3], gru.params[f"W_{k}h"])


def test_cell_style_keys_layers_and_bias_free_modules():
    cell_module = torch.nn.LSTMCell(2, 3).double()  # keys without the _l0 suffix
    cell = lstm_from_torch_state_dict(cell_module.state_dict())
    assert (cell.input_size, cell.hidden_size) == (2, 3)
    two_layers = torch.nn.GRU(2, 3, num_layers=2).double()
    top = gru_from_torch_state_dict(two_layers.state_dict(), layer=1)
    assert top.input_size == 3  # layer 1 reads layer 0's h
    np.testing.assert_array_equal(top.params["W_rh"],
                                  two_layers.state_dict()["weight_hh_l1"][:3].numpy())
    no_bias = torch.nn.LSTM(2, 3, bias=False).double()
    cell = lstm_from_torch_state_dict(no_bias.state_dict())
    assert all(np.all(cell.params[f"b_{k}"] == 0) for k in "ifgo")


def test_converter_errors_are_specific():
    with pytest.raises(ConfigError, match="reset_after=True"):
        gru_to_torch_state_dict(npcell.make_cell("gru", 2, 3))  # Cho form has no nn.GRU twin
    with pytest.raises(ConfigError, match="reset_after"):
        gru_from_torch_state_dict(torch.nn.GRU(2, 3).state_dict(), reset_after=False)
    with pytest.raises(ConfigError, match="'wmc'"):
        lstm_to_torch_state_dict(npcell.make_cell("wmc", 2, 3))
    with pytest.raises(ConfigError, match="proj_size"):
        lstm_from_torch_state_dict(torch.nn.LSTM(2, 4, proj_size=2).state_dict())
    with pytest.raises(ConfigError, match="weight_ih_l3"):
        lstm_from_torch_state_dict(torch.nn.LSTM(2, 4).state_dict(), layer=3)
    bad = {k: v for k, v in torch.nn.LSTM(2, 4).state_dict().items()}
    bad["weight_hh_l0"] = bad["weight_hh_l0"][:, :3]
    with pytest.raises(ShapeError, match=r"\(16, 3\)"):
        lstm_from_torch_state_dict(bad)


def test_torch_is_not_imported_by_npcell():
    """torch is an optional extra: importing npcell (and its converters) must not load it."""
    import subprocess
    import sys

    code = ("import sys, npcell, npcell.cells.torch_convert as tc; import numpy as np; "
            "c = npcell.make_cell('lstm', 2, 3); "
            "tc.lstm_from_torch_state_dict(tc.lstm_to_torch_state_dict(c, as_numpy=True)); "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False", result.stderr
