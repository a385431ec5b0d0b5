"""npcell.diagnose and the paper's local gradients (WMC paper section 3.3, eq. 10-15, 19-21).

What is checked, and against what:
* per-step weight-gradient contributions sum to npcell.backward's gradient, for every kind;
* the loss value and its gradient agree (central differences through diagnose itself);
* eq. 10-15 / 19-21 functions, weighted by a known dL/d(gate), equal the step's BPTT term;
* the paper's claim: peephole per-step ||dL/dW_ic|| grows with ||c_{t-1}||, WMC's stays bounded;
* saturation maps against hand-built gates; save/load; errors; the CLI.
"""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npcell
from npcell import diagnostics as D
from npcell.errors import ConfigError, ShapeError
from npcell.tasks.adding import make_batch

KINDS = sorted(npcell.CELLS)  # every kind registered when the tests run


def random_loss(T, B, H, seed):
    """L = sum(R * h) with a fixed random R (T, B, H): every step carries error."""
    R = np.random.default_rng(seed + 1000).standard_normal((T, B, H))

    def loss(h):
        return float((R * h).sum()), R

    return loss, R


# ============================================================================================
# Consistency with npcell.backward, every kind
# ============================================================================================
@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=4)
@given(seed=st.integers(0, 2**16), T=st.integers(1, 5), B=st.integers(1, 3))
def test_step_contributions_sum_to_backward(kind, seed, T, B):
    X, H = 3, 4
    cell = npcell.make_cell(kind, X, H, seed=seed)
    x = np.random.default_rng(seed).standard_normal((T, B, X))
    loss, R = random_loss(T, B, H, seed)
    diag = D.diagnose(cell, x, loss=loss, keep_step_grads=True)

    _, _, cache = npcell.forward(cell, x)  # the driver's own path (fused where there is one)
    grads, dx, _ = npcell.backward(cell, R, cache)
    assert set(diag.grads) == set(grads) == set(diag.step_grads) == set(diag.grad_step_norm)
    for name, g in grads.items():
        steps = diag.step_grads[name]
        assert steps.shape == (T, *g.shape)
        np.testing.assert_allclose(steps.sum(axis=0), g, rtol=0, atol=1e-10, err_msg=name)
        np.testing.assert_allclose(diag.grads[name], g, rtol=0, atol=1e-10, err_msg=name)
        norms = np.sqrt((steps.reshape(T, -1) ** 2).sum(axis=1))
        np.testing.assert_allclose(diag.grad_step_norm[name], norms, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(diag.dx_norm, np.linalg.norm(dx.reshape(T, -1), axis=1),
                               rtol=1e-10, atol=1e-14)
    # the state norms are the forward's own states: h after each step
    h, _, _ = npcell.forward(cell, x)
    np.testing.assert_allclose(diag.state_norm("h", "mean"), np.linalg.norm(h, axis=2).mean(1),
                               rtol=1e-12)
    np.testing.assert_allclose(diag.state_norm("h", "max"), np.linalg.norm(h, axis=2).max(1),
                               rtol=1e-12)
    assert diag.T == T and diag.batch_size == B and diag.kind == kind
    assert set(diag.dstate_norm) == set(cell.state_names)


@pytest.mark.parametrize("kind", ["lstm", "peephole", "wmc", "gru"])
@pytest.mark.parametrize("with_target", [False, True])
def test_loss_and_gradient_agree_by_central_differences(kind, with_target):
    """The default loss (random readout at T-1) and the target readout + MSE: d(loss)/d(theta)
    by central differences of diagnose's own loss equals diagnose's gradient."""
    T, B, X, H = 4, 3, 2, 3
    rng = np.random.default_rng(5)
    cell = npcell.make_cell(kind, X, H, seed=2)
    x = rng.standard_normal((T, B, X))
    target = rng.standard_normal((B, 2)) if with_target else None
    diag = D.diagnose(cell, x, target, seed=7)
    eps = 1e-6
    for name in list(cell.params)[:: max(1, len(cell.params) // 4)]:
        flat = cell.params[name].reshape(-1)
        index = int(rng.integers(flat.size))
        saved = flat[index]
        flat[index] = saved + eps
        up = D.diagnose(cell, x, target, seed=7).loss
        flat[index] = saved - eps
        down = D.diagnose(cell, x, target, seed=7).loss
        flat[index] = saved
        numeric = (up - down) / (2 * eps)
        analytic = diag.grads[name].reshape(-1)[index]
        assert abs(numeric - analytic) <= 1e-7 * max(1.0, abs(numeric)), (name, numeric, analytic)


def test_default_loss_reads_the_last_step_only():
    T, B = 6, 2
    cell = npcell.make_cell("lstm", 2, 5, seed=0)
    x = np.random.default_rng(0).standard_normal((T, B, 2))
    diag = D.diagnose(cell, x)
    h, _, _ = npcell.forward(cell, x)
    # the value is linear in h_{T-1}: mean over the batch of r . h_{T-1} with ||r|| = 1,
    # so its gradient wrt h_{T-1} has norm ||r|| / B over each sequence -> sqrt(B) / B overall
    np.testing.assert_allclose(diag.dstate_norm["h"][-1], np.sqrt(B) / B, rtol=1e-12)
    assert abs(diag.loss) <= np.linalg.norm(h[-1], axis=1).mean() + 1e-12
    assert diag.dstate_norm["c"][-1] == 0.0  # nothing carried into the last step's c


def test_target_over_every_step_and_pair_input():
    T, B = 5, 3
    x, y = make_batch(T, B, np.random.default_rng(1))
    cell = npcell.make_cell("wmc", 2, 4, seed=0)
    last = D.diagnose(cell, (x, y))  # the pair form
    assert last.loss == pytest.approx(D.diagnose(cell, x, y).loss, rel=1e-15)
    every = D.diagnose(cell, x, np.ones((T, B, 1)))
    assert every.dstate_norm["h"][0] > 0 and last.dstate_norm["c"][-1] == 0


# ============================================================================================
# eq. (10)-(15) and (19)-(21): the local gradients against the step's BPTT terms
# ============================================================================================
PAPER_CELLS = [
    ("lstm", {}),
    ("peephole", {}),  # diagonal w_kc (H,)
    ("peephole", {"diagonal": False}),
    ("wmc", {}),  # full W_kc (H, H)
    ("wmc", {"cell_bias": True}),
    ("wmc", {"diagonal": True}),
]


def one_cached_step(kind, options, seed, B=3, X=2, H=4, t=2):
    cell = npcell.make_cell(kind, X, H, seed=seed, **options)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((t + 1, B, X))
    _, _, cache = npcell.forward(cell, x, fused=False)
    return cell, cache.steps[t], rng


@pytest.mark.parametrize("kind,options", PAPER_CELLS)
@settings(max_examples=5)
@given(seed=st.integers(0, 2**16))
def test_preactivation_and_gate_derivative(kind, options, seed):
    cell, step, _ = one_cached_step(kind, options, seed)
    for gate in ("i", "f", "o"):
        a = D.gate_preactivation(cell, step, gate)  # eq. (10) / (20), recomputed from params
        s = step[gate]
        np.testing.assert_allclose(1 / (1 + np.exp(-a)), s, rtol=1e-12)
        np.testing.assert_allclose(D.gate_derivative(cell, step, gate), s * (1 - s), rtol=1e-10)
        if kind == "lstm":
            with pytest.raises(ConfigError, match="cell connection"):
                D.delta_hat(cell, step, gate)
            continue
        u = step[f"u_{gate}"]  # the cell term the forward added: tanh(W c) or W c
        expected = s * (1 - s) * ((1 - u**2) if kind == "wmc" else 1.0)  # eq. (15) / (21)
        np.testing.assert_allclose(D.delta_hat(cell, step, gate), expected, rtol=1e-10)


@pytest.mark.parametrize("kind,options", PAPER_CELLS)
@settings(max_examples=5)
@given(seed=st.integers(0, 2**16))
def test_outer_products_weighted_by_dL_dgate_equal_the_step_terms(kind, options, seed):
    """eq. (12)-(14) / (21): sum_b dL/dk_t[b, j] * (dk_t/dW)[b, j, :] = step t's dL/dW.

    dL/d(gate) is made known by choosing what enters the step's backward: with only dL/dc_t = U
    (dL/dh_t = 0) the output gate is idle and, by eq. (4), dL/di_t = U g_t, dL/df_t = U c_{t-1};
    with only dL/dh_t = V, eq. (6) gives dL/do_t = V tanh(c_t)."""
    cell, step, rng = one_cached_step(kind, options, seed)
    B, H = step["h_prev"].shape
    U, V = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    zeros = np.zeros((B, H))
    grads_c, _, _ = cell.step_backward(cell.params, {"h": zeros, "c": U}, step)
    grads_h, _, _ = cell.step_backward(cell.params, {"h": V, "c": zeros}, step)
    upstream = {
        "i": (U * step["g"], grads_c),
        "f": (U * step["c_prev"], grads_c),
        "o": (V * step["tanh_c"], grads_h),
    }
    for gate, (d_gate, grads) in upstream.items():
        local = D.weight_local_gradients(cell, step, gate)
        expected_names = {f"W_{gate}x", f"W_{gate}h", f"b_{gate}"}
        if kind != "lstm":
            expected_names.add(f"W_{gate}c")
            if options.get("cell_bias"):
                expected_names.add(f"b_{gate}c")
        assert set(local) == expected_names
        for name, jac in local.items():
            # weight by dL/dk_t and sum over the batch (per-sequence Jacobians -> gradient)
            step_term = np.einsum("bj,bj...->j...", d_gate, jac)
            np.testing.assert_allclose(step_term, grads[name], rtol=1e-9, atol=1e-13,
                                       err_msg=f"{kind} {options} gate {gate} {name}")
        assert local[f"W_{gate}x"].shape == (B, H, cell.input_size)
        assert local[f"W_{gate}h"].shape == (B, H, H)


def test_local_gradients_refuse_other_kinds_and_gates():
    cell = npcell.make_cell("gru", 2, 3)
    _, _, cache = npcell.forward(cell, np.zeros((1, 1, 2)), fused=False)
    with pytest.raises(ConfigError, match="lstm, peephole and wmc"):
        D.gate_preactivation(cell, cache.steps[0], "z")
    wmc = npcell.make_cell("wmc", 2, 3)
    _, _, cache = npcell.forward(wmc, np.zeros((1, 1, 2)), fused=False)
    with pytest.raises(ConfigError, match="gate must be one of"):
        D.weight_local_gradients(wmc, cache.steps[0], "g")


# ============================================================================================
# The paper's claim (section 3.3): eq. (21) grows with ||c||, eq. (14) stays bounded
# ============================================================================================
CLAIM_T, CLAIM_B, CLAIM_X, CLAIM_H = 200, 8, 2, 16


def growing_cell(kind, seed, connection=None):
    """A cell whose ||c_t|| grows about linearly: the candidate is a constant tanh(1) = 0.76
    (W_gx = W_gh = 0, b_g = 1), the input gate is open (b_i = 2, i ~ 0.88) and the forget
    gate is shut on forgetting (b_f = 8, f ~ 0.9997), so c_t ~ 0.67 t per unit."""
    cell = npcell.make_cell(kind, CLAIM_X, CLAIM_H, seed=seed)
    p = cell.params
    for k in "gifo":
        p[f"W_{k}h"] *= 0.1
    p["W_gx"][...], p["W_gh"][...], p["b_g"][...] = 0.0, 0.0, 1.0
    p["b_i"][...], p["b_f"][...] = 2.0, 8.0
    if connection is not None:
        for k in "ifo":
            p[f"W_{k}c"][...] = connection(k)
    return cell


def diagnose_with_error_on_c(cell, x, seed):
    """Error enters on the final cell state only (dL/dc_{T-1} = r, dL/dh = 0): with c_t of
    order 100, tanh(c_t) == 1 in float64, so a loss on h would reach no cell at all."""
    r = np.random.default_rng(seed).standard_normal((x.shape[1], CLAIM_H))
    return D.diagnose(cell, x, loss=lambda h: (0.0, np.zeros_like(h)), dstate={"c": r})


def claim_numbers(diag):
    """(R^2 of per-step ||dL/dW_ic|| against ||c_{t-1}||, max over t / max over t < T/10)."""
    c_prev = diag.state_norm("c", prev=True)
    g = diag.grad_step_norm["W_ic"]
    r2 = np.corrcoef(c_prev, g)[0, 1] ** 2
    return r2, g.max() / g[: CLAIM_T // 10].max()


@settings(max_examples=6)
@given(seed=st.integers(0, 2**16))
def test_peephole_weight_gradient_grows_with_c_while_wmc_stays_bounded(seed):
    """The peephole connection weights are its default init times 1e-3: the regime the paper
    calls 'the other summands compensate', where the gate keeps its slope (the cell term stays
    below ~0.2 while ||c|| reaches ~500). Then eq. (21) makes each step's dL/dW_ic proportional to
    c_{t-1}. In the WMC every gate unit reads the mean of the cell with weight +-kappa_j,
    kappa_j in [0.5, 2] (each row of W_kc is (+-kappa_j / H) 1^T): tanh(W_kc c) saturates as c
    grows and eq. (15)'s factor 1 - tanh^2 bounds eq. (14)."""
    x = np.random.default_rng(seed).uniform(-1, 1, (CLAIM_T, CLAIM_B, CLAIM_X))
    peephole = growing_cell("peephole", seed)
    for k in "ifo":
        peephole.params[f"W_{k}c"] *= 1e-3
    rng = np.random.default_rng(seed)

    def rows(k):
        kappa = rng.uniform(0.5, 2.0, CLAIM_H) * rng.choice([-1.0, 1.0], CLAIM_H)
        return np.repeat(kappa[:, None] / CLAIM_H, CLAIM_H, axis=1)

    wmc = growing_cell("wmc", seed, rows)
    d_peep = diagnose_with_error_on_c(peephole, x, seed)
    d_wmc = diagnose_with_error_on_c(wmc, x, seed)
    for d in (d_peep, d_wmc):  # the premise: ||c_t|| grows about linearly in t
        c = d.cell_norm_mean
        assert np.corrcoef(np.arange(CLAIM_T), c)[0, 1] ** 2 > 0.99
        assert c[-1] > 100 * c[0]
    r2_peep, factor_peep = claim_numbers(d_peep)
    r2_wmc, factor_wmc = claim_numbers(d_wmc)
    assert r2_peep > 0.9, r2_peep  # eq. (21): proportional to ||c_{t-1}||
    assert factor_peep > 5.0, factor_peep  # ... so it keeps growing (about 10x here)
    assert factor_wmc < 1.5, factor_wmc  # eq. (14)-(15): bounded by its early values
    g_wmc = d_wmc.grad_step_norm["W_ic"]
    assert g_wmc.max() > 0 and d_wmc.dstate_norm["c"].min() > 0  # the error did reach the cell
    assert g_wmc[-1] < 1e-3 * d_peep.grad_step_norm["W_ic"][-1]


def test_wmc_protection_needs_the_tanh_to_saturate():
    """The bound comes from tanh's saturation: with connection weights as tiny as the peephole's
    above, tanh(W c) is still linear and the WMC's dL/dW_ic grows with ||c|| as well."""
    x = np.random.default_rng(0).uniform(-1, 1, (CLAIM_T, CLAIM_B, CLAIM_X))
    wmc = growing_cell("wmc", 0)
    for k in "ifo":
        wmc.params[f"W_{k}c"] *= 1e-3
    r2, factor = claim_numbers(diagnose_with_error_on_c(wmc, x, 0))
    assert r2 > 0.9 and factor > 5.0


# ============================================================================================
# Saturation maps against hand-built gates
# ============================================================================================
def test_saturation_map_of_hand_built_gates():
    """All weights 0, so every gate is set by its bias (and by x through W_ix for gate i):
    i is driven to 0 / 0.5 / 0.5 / 1 across the batch, f to ~0, o sits at 0.5, and the candidate g
    is tanh([0, 10, -10, 1.5]) per unit."""
    T, B, X, H = 3, 4, 1, 4
    cell = npcell.make_cell("lstm", X, H, seed=0)
    for p in cell.params.values():
        p[...] = 0.0
    cell.params["W_ix"][...] = 1.0
    cell.params["b_f"][...] = -40.0
    cell.params["b_g"][...] = [0.0, 10.0, -10.0, 1.5]
    x = np.zeros((T, B, X))
    x[:, 0, 0], x[:, 3, 0] = -40.0, 40.0  # i = sigma(-40) ~ 0, 0.5, 0.5, sigma(40) ~ 1
    diag = D.diagnose(cell, x, threshold=0.05)
    assert diag.gate_activation == {"i": "sigmoid", "f": "sigmoid", "g": "tanh", "o": "sigmoid"}
    np.testing.assert_array_equal(diag.saturation["i"], np.full((T, H), 0.5))  # 2 of 4 samples
    np.testing.assert_array_equal(diag.saturation["f"], np.ones((T, H)))  # forced to 0
    np.testing.assert_array_equal(diag.saturation["o"], np.zeros((T, H)))  # at 0.5: not
    np.testing.assert_array_equal(diag.saturation["g"], np.tile([0.0, 1.0, 1.0, 0.0], (T, 1)))
    # tanh(1.5) = 0.905: saturated once tau > 1 - 0.905 (the threshold is a real parameter)
    wide = D.diagnose(cell, x, threshold=0.1)
    np.testing.assert_array_equal(wide.saturation["g"], np.tile([0.0, 1.0, 1.0, 1.0], (T, 1)))
    np.testing.assert_array_equal(wide.saturation["o"], np.zeros((T, H)))


@settings(max_examples=5)
@given(seed=st.integers(0, 2**16), tau=st.floats(0.01, 0.3))
def test_saturation_map_equals_direct_count(seed, tau):
    T, B, X, H = 4, 5, 2, 3
    cell = npcell.make_cell("gru", X, H, seed=seed)
    x = 3.0 * np.random.default_rng(seed).standard_normal((T, B, X))
    diag = D.diagnose(cell, x, threshold=tau)
    _, _, cache = npcell.forward(cell, x, fused=False)
    z = np.stack([s["z"] for s in cache.steps])  # (T, B, H)
    n = np.stack([s["n"] for s in cache.steps])
    np.testing.assert_array_equal(diag.saturation["z"], ((z < tau) | (z > 1 - tau)).mean(1))
    np.testing.assert_array_equal(diag.saturation["n"], (np.abs(n) > 1 - tau).mean(1))
    assert diag.gate_activation["n"] == "tanh"


# ============================================================================================
# Save / load, to_dict, compare, errors, CLI
# ============================================================================================
def test_save_load_round_trip(tmp_path):
    cell = npcell.make_cell("wmc", 2, 3, seed=1)
    x = np.random.default_rng(0).standard_normal((5, 2, 2))
    diag = D.diagnose(cell, x, task="unit test", keep_step_grads=True)
    path = diag.save(tmp_path / "diag")
    assert path.endswith(".npz")
    back = D.Diagnosis.load(path)
    a, b = diag.to_dict(), back.to_dict()
    assert set(a) == set(b)
    for key in a:
        if isinstance(a[key], dict) and a[key] and isinstance(next(iter(a[key].values())),
                                                              np.ndarray):
            assert set(a[key]) == set(b[key])
            for sub in a[key]:
                np.testing.assert_array_equal(a[key][sub], b[key][sub])
        elif isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key])
        else:
            assert a[key] == b[key], key
    json.dumps(diag.to_dict(lists=True))  # JSON-ready
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert "__meta__" in data.files
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(ConfigError, match="not a Diagnosis"):
        D.Diagnosis.load(tmp_path / "other.npz")


def test_compare_returns_one_diagnosis_per_cell():
    x, y = make_batch(12, 3, np.random.default_rng(0))
    cells = [npcell.make_cell(k, 2, 4, seed=0) for k in ("lstm", "peephole", "wmc")]
    result = D.compare(cells, x, y, task="adding T=12")
    assert [d.kind for d in result] == ["lstm", "peephole", "wmc"] and len(result) == 3
    assert result[1].task == "adding T=12" and result.regime is None
    assert "peephole" in result.summary()
    with pytest.raises(ConfigError, match="labels"):
        D.compare(cells, x, labels=["a"])


# ----- log-log slopes against ||c|| -------------------------------------------------------------
@given(slope=st.floats(-3, 3), scale=st.floats(1e-3, 1e3), n=st.integers(3, 40))
@settings(max_examples=30, deadline=None)
def test_fit_loglog_recovers_a_power_law(slope, scale, n):
    x = np.logspace(-1, 2, n)
    fit = D.fit_loglog(x, scale * x**slope)
    assert abs(fit.slope - slope) < 1e-8 and fit.r2 > 1 - 1e-9
    assert fit.n == n and abs(fit.span - 3.0) < 1e-12


def test_fit_loglog_skips_non_positive_points_and_refuses_too_few():
    fit = D.fit_loglog([1.0, 10.0, 100.0, 0.0, -1.0], [2.0, 20.0, 200.0, 5.0, 5.0])
    assert fit.n == 3 and abs(fit.slope - 1.0) < 1e-12
    with pytest.raises(ConfigError, match="at least 3"):
        D.fit_loglog([1.0, 2.0, 0.0], [1.0, 2.0, 3.0])
    with pytest.raises(ShapeError):
        D.fit_loglog([1.0, 2.0], [1.0])


@pytest.mark.parametrize("kind,options", [("peephole", {}), ("peephole", {"diagonal": False}),
                                          ("wmc", {}), ("wmc", {"diagonal": True})])
def test_term_norm_is_the_norm_of_the_weight_local_gradients(kind, options):
    """term_norm[W_kc][t] = rms over the batch of ||eq. 14 / 21 outer product|| per sequence."""
    cell = npcell.make_cell(kind, 2, 5, seed=3, **options)
    x = np.random.default_rng(1).standard_normal((6, 4, 2))
    d = D.diagnose(cell, x)
    _, _, cache = npcell.forward(cell, x, fused=False)
    for gate in D.PAPER_GATES:
        expected = []
        for step in cache.steps:
            local = D.weight_local_gradients(cell, step, gate)[f"W_{gate}c"]
            per_seq = (local.reshape(local.shape[0], -1) ** 2).sum(axis=1)
            expected.append(np.sqrt(per_seq.mean()))
        np.testing.assert_allclose(d.term_norm[f"W_{gate}c"], expected, rtol=1e-12)
    assert set(d.loglog_slopes()) == {"W_ic", "W_fc", "W_oc"}
    assert D.diagnose(npcell.make_cell("lstm", 2, 5), x).term_norm == {}


def test_eq21_vs_eq14_regime_slopes():
    """The documented regime (docs/diagnostics.md): eq. (21)'s term grows as ||c_{t-1}||
    (slope 0.8..1.2, R^2 > 0.9); eq. (14)'s falls away once tanh saturates (slope < 0.5)."""
    result = D.run_regime("eq21-vs-eq14")
    by_kind = {d.kind: d.loglog_slopes()["W_ic"] for d in result}
    peephole, wmc = by_kind["peephole"]["term"], by_kind["wmc"]["term"]
    assert 0.8 <= peephole.slope <= 1.2 and peephole.r2 > 0.9, peephole
    assert peephole.span > 2.0  # the fit covers more than two decades of ||c||
    assert wmc.slope < 0.5, wmc
    assert "‖c‖^0.9" in result.takeaway()


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 6))
def test_eq21_vs_eq14_regime_slopes_over_seeds(seed):
    result = D.run_regime("eq21-vs-eq14", seed=seed)
    fits = {d.kind: d.loglog_slopes()["W_ic"]["term"] for d in result}
    assert 0.8 <= fits["peephole"].slope <= 1.2 and fits["peephole"].r2 > 0.9
    assert fits["wmc"].slope < 0.5


def test_flooding_regime_grows_the_peephole_cell_only():
    """Same weights, gates half open: the peephole's ||c_T|| ends far above WMC's and lstm's."""
    result = D.run_regime("flooding")
    c_T = {d.kind: d.cell_norm_mean[-1] for d in result}
    assert c_T["peephole"] > 5 * c_T["wmc"] and c_T["wmc"] < 3 * c_T["lstm"]


def test_pytorch_init_regime_cells_agree():
    result = D.run_regime("pytorch-init")
    c_T = [d.cell_norm_mean[-1] for d in result]
    assert max(c_T) / min(c_T) < 1.05
    with pytest.raises(ConfigError, match="unknown regime"):
        D.run_regime("nope")


def test_bad_inputs_raise_specific_errors():
    cell = npcell.make_cell("lstm", 2, 3)
    x = np.zeros((4, 2, 2))
    with pytest.raises(ConfigError, match="threshold"):
        D.diagnose(cell, x, threshold=0.7)
    with pytest.raises(ShapeError, match="target must be"):
        D.diagnose(cell, x, np.zeros((3, 1)))
    with pytest.raises(ShapeError, match="dh with the shape of h"):
        D.diagnose(cell, x, loss=lambda h: (0.0, np.zeros((4, 2, 2))))
    with pytest.raises(ShapeError):
        D.diagnose(cell, np.zeros((4, 2, 5)))
    with pytest.raises(ConfigError, match="not in the lstm step cache"):
        D.diagnose(cell, x, gates={"zz": "sigmoid"})
    with pytest.raises(ConfigError, match="no state"):
        D.diagnose(npcell.make_cell("gru", 2, 3), x).state_norm("c")


def test_cli_diagnose_writes_figure_and_npz(tmp_path, capsys):
    from npcell.cli import main

    out = tmp_path / "fig.png"
    rc = main(["diagnose", "--cell", "lstm,wmc", "--T", "20", "--batch", "4", "--hidden", "6",
               "--out", str(out), "--save", str(tmp_path)])
    assert rc == 0 and out.stat().st_size > 10_000
    text = capsys.readouterr().out
    assert "wmc on adding T=20" in text and "wrote" in text and "takeaway:" in text
    back = D.Diagnosis.load(tmp_path / "diagnosis_wmc.npz")
    assert back.kind == "wmc" and back.T == 20 and set(back.term_norm) == {"W_ic", "W_fc",
                                                                           "W_oc"}
    assert main(["diagnose", "--cell", "nope", "--T", "5"]) == 2


def test_cli_diagnose_regime_reports_the_slopes(tmp_path, capsys):
    from npcell.cli import main

    out = tmp_path / "regime.png"
    assert main(["diagnose", "--regime", "eq21-vs-eq14", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "peephole" in text and "W_ic: term slope 0.9" in text and out.stat().st_size > 10_000
    assert main(["diagnose", "--list-regimes"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in D.REGIMES)
    assert main(["diagnose", "--regime", "flooding", "--T", "5"]) == 2


@pytest.mark.parametrize("kind", sorted(npcell.CELLS))
def test_declared_gate_activations_match_the_step_cache(kind):
    """A cell's gate_activations() names real cache entries whose values fit the activation."""
    cell = npcell.make_cell(kind, 2, 3, seed=1)
    declared = cell.gate_activations()
    if declared is None:
        return  # the cell leaves it to diagnose's inference (fw_rnn, fw_lstm)
    x = np.random.default_rng(0).standard_normal((4, 2, 2)) * 3
    _, _, cache = npcell.forward(cell, x, fused=False)
    ranges = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu": (0.0, np.inf)}
    for gate, activation in declared.items():
        lo, hi = ranges[activation]
        values = np.stack([step[gate] for step in cache.steps])
        assert values.shape == (4, 2, 3)
        assert lo <= values.min() and values.max() <= hi, (gate, activation)
    assert set(npcell.diagnose(cell, x).saturation) == set(declared)


def test_teaching_sigmoid_candidate_is_read_as_a_sigmoid():
    cell = npcell.make_cell("teaching", 2, 3, candidate_act="sigmoid")
    assert cell.gate_activations()["ltm_cand"] == "sigmoid"
    x = np.random.default_rng(0).standard_normal((3, 2, 2))
    assert npcell.diagnose(cell, x).gate_activation["ltm_cand"] == "sigmoid"
