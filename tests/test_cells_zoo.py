"""Every cell kind and option: full float64 gradchecks, fused == stepwise, long-T sampled checks,
parameter counts (reference/cells.md section 6), describe(), and clear errors for bad options."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npcell
from npcell.errors import ConfigError, ShapeError

# Every kind with every combination of its structural options.
COMBOS = [
    ("lstm", {}),
    ("lstm", {"forget_bias": 1.0}),
    ("peephole", {"diagonal": True}),
    ("peephole", {"diagonal": False}),
    ("wmc", {"diagonal": False, "cell_bias": False}),
    ("wmc", {"diagonal": False, "cell_bias": True}),
    ("wmc", {"diagonal": True, "cell_bias": False}),
    ("wmc", {"diagonal": True, "cell_bias": True}),
    ("ulstm", {"use_o": True}),
    ("ulstm", {"use_o": False}),
    ("gru", {"reset_after": False}),
    ("gru", {"reset_after": True}),
    ("teaching", {"candidate_act": "tanh"}),
    ("teaching", {"candidate_act": "sigmoid"}),
]
FUSED = [(k, o) for k, o in COMBOS if k in ("lstm", "peephole", "wmc", "gru", "ulstm")]


def combo_id(combo):
    kind, options = combo
    return kind + "".join(f"-{k}={v}" for k, v in options.items())


def random_case(kind, options, T, B, X, H, seed):
    """A cell, an input and a *non-zero* initial state (so every c_{t-1} path is exercised)."""
    cell = npcell.make_cell(kind, X, H, seed=seed, **options)
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((T, B, X))
    state = {name: rng.standard_normal(shape) * 0.7 for name, shape in cell.state_shapes(B).items()}
    return cell, x, state


# ----- full gradchecks ----------------------------------------------------------------------
@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
@settings(max_examples=4)
@given(T=st.integers(1, 6), B=st.integers(1, 3), X=st.integers(1, 4), H=st.integers(1, 5),
       seed=st.integers(0, 2**20))
def test_full_gradcheck_every_kind_and_option(combo, T, B, X, H, seed):
    kind, options = combo
    cell, x, state = random_case(kind, options, T, B, X, H, seed)
    report = npcell.gradcheck(cell, x, state, mode="full", seed=seed, fused=False)
    names = {r.name for r in report.rows}
    assert set(cell.params) <= names  # every parameter was checked ...
    assert {f"dx[t={t}]" for t in range(T)} <= names  # ... every step of dx ...
    assert {f"dstate0[{k}]" for k in cell.state_names} <= names  # ... and the initial state
    assert all(r.n_checked > 0 for r in report.rows)
    assert report.ok, str(report)
    assert report.max_rel_error < 1e-6, str(report)


@pytest.mark.parametrize("combo", FUSED, ids=combo_id)
@settings(max_examples=3)
@given(T=st.integers(1, 6), B=st.integers(1, 3), X=st.integers(1, 4), H=st.integers(1, 5),
       seed=st.integers(0, 2**20))
def test_full_gradcheck_through_the_fused_path(combo, T, B, X, H, seed):
    kind, options = combo
    cell, x, state = random_case(kind, options, T, B, X, H, seed)
    report = npcell.gradcheck(cell, x, state, mode="full", seed=seed, fused=True)
    assert report.ok, str(report)
    assert report.max_rel_error < 1e-6


def test_gradcheck_catches_a_wrong_gru_backward(monkeypatch):
    """The checks above can fail: a GRU whose dL/dz has the wrong sign is caught."""
    from npcell.cells import gru

    cell, x, state = random_case("gru", {}, 4, 2, 3, 4, 0)
    original = gru.gru_step_backward

    def flipped(params, dstate, cache, *, reset_after=False):
        wrong = dict(cache, z=1.0 - cache["z"])  # the Chung et al. convention: z and 1-z swapped
        return original(params, dstate, wrong, reset_after=reset_after)

    monkeypatch.setattr(gru, "gru_step_backward", flipped)
    report = npcell.gradcheck(cell, x, state, mode="full", fused=False)
    assert not report.ok
    assert report.max_rel_error > 1e-2


# ----- long sequences ------------------------------------------------------------------------
@pytest.mark.parametrize("combo", [("lstm", {}), ("peephole", {"diagonal": True}),
                                   ("wmc", {"diagonal": False, "cell_bias": False}),
                                   ("gru", {"reset_after": True}),
                                   ("gru", {"reset_after": False}),
                                   ("ulstm", {"use_o": True})], ids=combo_id)
def test_long_sequence_sampled_gradcheck(combo):
    """T=200: sampled entries of every parameter, dx[t] for every t and the initial state."""
    kind, options = combo
    cell, x, state = random_case(kind, options, 200, 2, 2, 3, 7)
    for name in ("b_f", "b_fx"):  # keep the memory alive long enough for early steps to matter
        if name in cell.params:
            cell.params[name] += 2.0
    report = npcell.gradcheck(cell, x, state, mode="full", samples=1, seed=3)
    assert len([r for r in report.rows if r.group == "dx"]) == 200
    assert report.ok, str(report)
    assert report.max_rel_error < 1e-6


# ----- parameter counts, describe() ---------------------------------------------------------
def expected_count(kind, options, X, H):
    """Reference/cells.md section 6, written out."""
    lstm = 4 * H * (X + H) + 4 * H
    if kind in ("lstm", "teaching"):
        return lstm
    if kind == "peephole":
        return lstm + (3 * H if options.get("diagonal", True) else 3 * H * H)
    if kind == "wmc":
        connections = 3 * H if options.get("diagonal", False) else 3 * H * H
        return lstm + connections + (3 * H if options.get("cell_bias", False) else 0)
    if kind == "ulstm":
        if options.get("use_o", True):
            return 5 * H * (X + H) + 10 * H  # the authors' code, doubled biases
        return 4 * H * (X + H) + 8 * H  # without the (unused) o rows
    if kind == "gru":
        return 3 * H * (X + H) + 3 * H + (H if options.get("reset_after", False) else 0)
    raise AssertionError(kind)


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
@pytest.mark.parametrize("X,H", [(1, 1), (3, 7), (10, 4)])
def test_parameter_count_matches_reference_table(combo, X, H):
    kind, options = combo
    cell = npcell.make_cell(kind, X, H, **options)
    expected = expected_count(kind, options, X, H)
    assert cell.num_params == expected
    assert sum(p.size for p in cell.params.values()) == expected
    for name, shape in cell.param_shapes().items():
        assert cell.params[name].shape == shape


def test_pytorch_gru_count_is_the_reference_6h_minus_redundant_biases():
    """Reference: 3H(X+H) + 6H in PyTorch; npcell merges b_hr, b_hz into b_r, b_z: 4H left."""
    X, H = 5, 7
    cell = npcell.make_cell("gru", X, H, reset_after=True)
    assert cell.num_params == (3 * H * (X + H) + 6 * H) - 2 * H


@pytest.mark.parametrize("combo", COMBOS, ids=combo_id)
def test_describe_shows_equations_options_and_count(combo):
    kind, options = combo
    cell = npcell.make_cell(kind, 3, 5, **options)
    text = cell.describe()
    assert cell.equations.strip().splitlines()[0] in text
    assert f"total parameters: {expected_count(kind, options, 3, 5):,}" in text
    for name in cell.params:
        assert name in text
    for key, value in options.items():
        assert f"{key}={value!r}" in text


def test_equation_text_names_the_new_cells_pieces():
    assert "m_t = z_t * tanh(c_{t-1})" in npcell.make_cell("ulstm", 2, 3).describe()
    assert "i, o, z, f" in npcell.make_cell("ulstm", 2, 3).describe()
    gru_text = npcell.make_cell("gru", 2, 3).describe()
    assert "r_t * h_{t-1}" in gru_text and "b_nh" in gru_text
    teaching_text = npcell.make_cell("teaching", 2, 3).describe()
    for word in ("rem_t", "save_t", "focus_t", "ltm_t", "wm_t", "typo"):
        assert word in teaching_text


# ----- bad options and shapes ---------------------------------------------------------------
@pytest.mark.parametrize("kind", ["lstm", "peephole", "wmc", "ulstm", "gru", "teaching"])
def test_unknown_option_is_a_config_error_naming_the_accepted_ones(kind):
    with pytest.raises(ConfigError, match=r"unknown option.*'colour'") as err:
        npcell.make_cell(kind, 2, 3, colour="red")
    for accepted in npcell.CELLS[kind].default_options:
        assert accepted in str(err.value)


@pytest.mark.parametrize("kind,option,value,expected", [
    ("peephole", "diagonal", 1, "True or False"),
    ("peephole", "diagonal", "yes", "True or False"),
    ("wmc", "diagonal", None, "True or False"),
    ("wmc", "cell_bias", 0, "True or False"),
    ("ulstm", "use_o", "no", "True or False"),
    ("ulstm", "forget_bias", "big", "number"),
    ("gru", "reset_after", 1, "True"),
    ("teaching", "candidate_act", "relu", "'tanh'"),
    ("teaching", "candidate_act", "Tanh", "'tanh'"),
    ("lstm", "forget_bias", True, "number"),
])
def test_bad_option_value_says_expected_and_got(kind, option, value, expected):
    with pytest.raises(ConfigError) as err:
        npcell.make_cell(kind, 2, 3, **{option: value})
    message = str(err.value)
    assert option in message and expected in message and repr(value) in message


@pytest.mark.parametrize("kind", ["lstm", "peephole", "wmc", "ulstm", "gru", "teaching"])
@pytest.mark.parametrize("X,H", [(0, 3), (2, 0), (-1, 3), (2, -4), (2.0, 3), (2, True)])
def test_non_positive_or_non_int_sizes_are_config_errors(kind, X, H):
    with pytest.raises(ConfigError, match="positive int"):
        npcell.make_cell(kind, X, H)


def test_unknown_kind_lists_the_new_kinds():
    with pytest.raises(ConfigError) as err:
        npcell.make_cell("lstn", 2, 3)
    for kind in ("gru", "ulstm", "teaching"):
        assert kind in str(err.value)


def test_diagonal_connection_into_a_full_wmc_cell_is_a_shape_error():
    cell = npcell.make_cell("wmc", 2, 4, diagonal=False)
    with pytest.raises(ShapeError, match=r"W_ic.*\(4, 4\).*\(4,\)"):
        cell.set_params({"W_ic": np.ones(4)})
    np.testing.assert_array_equal(cell.params["W_oc"].shape, (4, 4))


def test_gru_state_has_only_h():
    cell = npcell.make_cell("gru", 2, 3)
    assert cell.state_names == ("h",)
    h, state, _ = npcell.forward(cell, np.zeros((2, 1, 2)))
    assert set(state) == {"h"}
    with pytest.raises(ShapeError, match="unexpected.*'c'"):
        npcell.forward(cell, np.zeros((2, 1, 2)), {"h": np.zeros((1, 3)), "c": np.zeros((1, 3))})


def test_forget_bias_option_moves_only_the_forget_bias():
    plain = npcell.make_cell("ulstm", 2, 3, seed=5)
    biased = npcell.make_cell("ulstm", 2, 3, seed=5, forget_bias=1.5)
    for name in plain.params:
        delta = biased.params[name] - plain.params[name]
        assert np.allclose(delta, 1.5 if name == "b_fx" else 0.0), name
    assert math.isclose(float(np.sum(biased.params["b_fx"] - plain.params["b_fx"])), 4.5)
