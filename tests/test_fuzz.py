"""Fuzzing the public API: whatever a student passes, npcell either works or raises an
NpcellError with a message. Never an IndexError/ValueError/KeyError/AttributeError from deep
inside NumPy.

Each example draws one scenario: a make_cell call (usually valid, sometimes with a wrong kind,
size, dtype, seed or option), then forward, backward and sometimes gradcheck / diagnose, each
argument valid most of the time and otherwise broken in one of many ways: wrong rank or size,
integer / float16 / complex / bool / object dtypes, NaN, Inf and huge values, nested lists,
non-array objects, wrong or foreign state dicts and caches, wrong flag types. Successful calls are
checked too (shapes, dtypes, and finiteness whenever ``check_finite=True`` let them through).

``test_fuzz_quick`` runs in ``make test`` (150 examples); ``test_fuzz_thorough`` is marked slow
(2000 examples, ``make slow``). Both also assert that the scenarios really exercise both sides:
a good share of calls succeed and errors of several classes occur.
"""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npcell
from npcell.errors import NpcellError

try:  # the diagnostics module is fuzzed too when this checkout has it
    from npcell.diagnostics import diagnose as DIAGNOSE
except ImportError:  # pragma: no cover - depends on which layers are installed
    DIAGNOSE = None

KINDS = sorted(npcell.CELLS)
BAD_KINDS = ["LSTM", "", "no_such_cell", None, 3, ("lstm",)]
BAD_SIZES = [0, -1, 2.5, "2", None, True, np.float64(2.0), 10**7]
BAD_CELL_DTYPES = ["float16", "int32", "bool", "complex128", None, int, "garbage", np.float16, 3,
                   "float64,float32"]
BAD_SEEDS = [-1, 1.5, "0", [0], np.float64(1.0), True]
BAD_OPTION_VALUES = [None, "x", [1], np.array([1.0, 2.0]), float("nan"), float("inf"), -1, 0, 2,
                     1.5, True, False, 10**6, "relu", "tanh", "A", "B"]
ARRAY_DTYPES = ["float32", "float16", "int64", "int8", "bool", "complex128", "uint8"]
SPECIAL_VALUES = [np.nan, np.inf, -np.inf, 1e300, -1e308, 1e4, -1e4, 1e30]
NON_ARRAYS = [None, 3.0, "abc", {"a": 1}, {1, 2}, object(), b"bytes"]


def _chance(data, percent, label):
    return data.draw(st.integers(0, 99), label=label) < percent


def _draw_cell(data, log):
    """make_cell, usually valid. Returns the cell or None when make_cell (correctly) refused."""
    kind = data.draw(st.sampled_from(KINDS), label="kind")
    kwargs = {}
    args = [kind, data.draw(st.integers(1, 3), label="X"), data.draw(st.integers(1, 3), label="H")]
    if _chance(data, 5, "bad kind"):
        args[0] = data.draw(st.sampled_from(BAD_KINDS))
    if _chance(data, 5, "bad X"):
        args[1] = data.draw(st.sampled_from(BAD_SIZES))
    if _chance(data, 5, "bad H"):
        args[2] = data.draw(st.sampled_from(BAD_SIZES))
    kwargs["dtype"] = data.draw(st.sampled_from(["float64", "float32"]), label="dtype")
    if _chance(data, 5, "bad dtype"):
        kwargs["dtype"] = data.draw(st.sampled_from(BAD_CELL_DTYPES))
    kwargs["seed"] = data.draw(st.integers(0, 2**31), label="seed")
    if _chance(data, 4, "bad seed"):
        kwargs["seed"] = data.draw(st.sampled_from(BAD_SEEDS))
    defaults = npcell.CELLS[kind].default_options
    for name in sorted(defaults):
        if _chance(data, 6, f"set {name}"):  # the default value, or a wrong one
            bad = _chance(data, 50, f"bad {name}")
            kwargs[name] = data.draw(st.sampled_from(BAD_OPTION_VALUES)) if bad else defaults[name]
    if _chance(data, 3, "unknown option"):
        kwargs["no_such_option"] = 1
    cell = _call(log, "make_cell", npcell.make_cell, *args, **kwargs)
    if cell is not None:
        assert cell.kind == args[0] and tuple(cell.params) == tuple(cell.param_shapes())
    return cell


def _call(log, stage, fn, *args, **kwargs):
    """Run fn; return its result, or None after checking the error is a proper NpcellError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NaN inputs warn in NumPy; that is not the question
            result = fn(*args, **kwargs)
    except NpcellError as err:
        message = str(err)
        assert message.strip(), f"{stage}: {type(err).__name__} with an empty message"
        assert "Traceback" not in message
        log[f"{stage}: {type(err).__name__}"] += 1
        return None
    except Exception as err:  # noqa: BLE001 - exactly what this test hunts for
        pytest.fail(f"{stage} raised {type(err).__name__} (not an NpcellError): {err!r}")
    log[f"{stage}: ok"] += 1
    return result


def _array(data, rng, shape, dtype, label):
    """A random array of ``shape`` and ``dtype``, sometimes spoiled in one way."""
    a = rng.standard_normal(shape).astype(dtype)
    if _chance(data, 6, f"{label} special values") and a.size:
        flat = a.reshape(-1)
        with np.errstate(over="ignore"):  # 1e300 in float32 is inf: fine, that is the point
            flat[data.draw(st.integers(0, a.size - 1))] = data.draw(st.sampled_from(SPECIAL_VALUES))
    if _chance(data, 4, f"{label} wrong dtype"):
        with np.errstate(all="ignore"):
            a = a.astype(data.draw(st.sampled_from(ARRAY_DTYPES)))
    if _chance(data, 4, f"{label} wrong shape"):
        change = data.draw(st.sampled_from(["drop", "add", "grow", "zero"]))
        if change == "drop" and a.ndim:
            a = a[0]
        elif change == "add":
            a = a[None]
        elif change == "grow" and a.ndim:
            a = np.concatenate([a, a], axis=-1)
        elif change == "zero" and a.ndim:
            a = a[:0]
    if _chance(data, 3, f"{label} object dtype"):
        a = a.astype(object)
    if _chance(data, 4, f"{label} layout") and a.ndim:
        a = np.asfortranarray(a) if _chance(data, 50, "fortran") else a[::-1]
    if _chance(data, 3, f"{label} read-only"):
        a.flags.writeable = False
    if _chance(data, 4, f"{label} as list"):
        return a.tolist() if hasattr(a, "tolist") else a
    if _chance(data, 3, f"{label} not an array"):
        return data.draw(st.sampled_from(NON_ARRAYS))
    return a


def _draw_state(data, rng, cell, B, label):
    if not _chance(data, 30, f"{label} given"):
        return None
    state = {k: _array(data, rng, s, cell.dtype, f"{label}[{k}]")
             for k, s in cell.state_shapes(B).items()}
    if _chance(data, 5, f"{label} missing key") and state:
        state.pop(sorted(state)[0])
    if _chance(data, 5, f"{label} extra key"):
        state["z"] = np.zeros((B, cell.hidden_size), dtype=cell.dtype)
    if _chance(data, 3, f"{label} not a dict"):
        return data.draw(st.sampled_from([[1, 2], "h", 0.0, (np.zeros(3),)]))
    return state


def _flag(data, label):
    if _chance(data, 4, f"bad {label}"):
        return data.draw(st.sampled_from(["yes", 1, None, np.array([True, False])]))
    return data.draw(st.booleans())


def _scenario(data, log):
    """One fuzzed run through make_cell -> forward -> backward (-> gradcheck / diagnose)."""
    cell = _draw_cell(data, log)
    if cell is None:
        return
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="data seed"))
    T, B = data.draw(st.integers(1, 4), label="T"), data.draw(st.integers(1, 3), label="B")
    x = _array(data, rng, (T, B, cell.input_size), cell.dtype, "x")
    state = _draw_state(data, rng, cell, B, "state")
    check_finite = _flag(data, "check_finite")
    forward_kwargs = {"check_finite": check_finite}
    if _chance(data, 20, "fused given"):
        forward_kwargs["fused"] = _flag(data, "fused")
    if _chance(data, 3, "cache limit"):
        forward_kwargs["max_cache_bytes"] = data.draw(st.sampled_from([1, 100, -5, "1K", "x"]))
    if _chance(data, 3, "not a cell"):
        _call(log, "forward", npcell.forward, data.draw(st.sampled_from(["lstm", None, x])), x)
        return
    out = _call(log, "forward", npcell.forward, cell, x, state, **forward_kwargs)
    if out is None:
        return
    h, state_T, cache = out
    H = cell.hidden_size
    assert h.shape == (T, B, H) and h.dtype == cell.dtype
    assert sorted(state_T) == sorted(cell.state_names)
    if check_finite is True:
        assert np.isfinite(h).all() and all(np.isfinite(v).all() for v in state_T.values())

    dh = None if _chance(data, 15, "dh None") else _array(data, rng, (T, B, H), cell.dtype, "dh")
    dstate = _draw_state(data, rng, cell, B, "dstate")
    if isinstance(dstate, dict) and dstate and _chance(data, 20, "partial dstate"):
        dstate.pop(sorted(dstate)[-1])
    if _chance(data, 4, "foreign cache"):
        other = npcell.make_cell(data.draw(st.sampled_from(KINDS)), cell.input_size,
                                 data.draw(st.integers(1, 3)), dtype=cell.dtype)
        cache = npcell.forward(other, np.zeros((T, B, cell.input_size), dtype=cell.dtype))[2]
    if _chance(data, 3, "junk cache"):
        cache = data.draw(st.sampled_from([None, {}, (h,), "cache"]))
    backward_finite = _flag(data, "backward check_finite")
    res = _call(log, "backward", npcell.backward, cell, dh, cache, dstate,
                check_finite=backward_finite)
    if res is not None:
        grads, dx, dstate0 = res
        assert list(grads) == list(cell.params)
        for name, g in grads.items():
            assert g.shape == cell.params[name].shape and g.dtype == cell.dtype, name
        assert dx.shape == (T, B, cell.input_size) and sorted(dstate0) == sorted(cell.state_names)
        if backward_finite is True:
            assert np.isfinite(dx).all() and all(np.isfinite(g).all() for g in grads.values())

    if _chance(data, 25, "gradcheck"):
        mode = data.draw(st.sampled_from(["fast"] * 4 + ["full", "bogus", None]))
        samples = data.draw(st.sampled_from([None] * 4 + [1, 2, 0, -1, "3"]))
        if mode == "full" and samples is None:
            samples = 2  # every entry of every tensor would be slow, not more interesting
        eps = data.draw(st.sampled_from([None] * 6 + [1e-5, 0.0, -1.0, float("nan"), "x"]))
        seed = data.draw(st.sampled_from([0, 0, 0, 1, -1]))
        report = _call(log, "gradcheck", npcell.gradcheck, cell, x, state, mode=mode,
                       samples=samples, eps=eps, seed=seed)
        if report is not None:
            assert isinstance(report.ok, bool) and report.rows and str(report)

    if _chance(data, 15, "diagnose") and DIAGNOSE is not None:
        threshold = data.draw(st.sampled_from([0.05, 0.05, 0.05, 0.0, 0.7, "x"]))
        diag = _call(log, "diagnose", DIAGNOSE, cell, x, state=state, threshold=threshold)
        if diag is not None:
            assert type(diag).__name__ == "Diagnosis"


def _check_coverage(log, n_examples):
    ok = sum(v for k, v in log.items() if k.endswith(": ok"))
    errors = {k.split(": ")[1] for k in log if not k.endswith(": ok")}
    print(f"\nfuzz over {n_examples} examples: {sum(log.values())} calls")
    for key, count in sorted(log.items()):
        print(f"  {key:<40}{count:>6}")
    assert ok >= n_examples // 4, "too few successful calls: the scenarios are all broken"
    assert len(errors) >= 4, f"too few error kinds exercised: {errors}"


def _run_fuzz(n_examples, derandomize):
    log = Counter()

    @settings(max_examples=n_examples, deadline=None, database=None, derandomize=derandomize,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.data())
    def fuzz(data):
        _scenario(data, log)

    fuzz()
    _check_coverage(log, n_examples)
    return log


def test_fuzz_quick():
    _run_fuzz(150, derandomize=True)  # the same examples every run: make test stays stable


@pytest.mark.slow
def test_fuzz_thorough():
    _run_fuzz(2000, derandomize=False)  # new examples every run: keeps finding things


# ----- training configurations -----------------------------------------------------------------
BAD_NUMBERS = [0, -1, "x", None, float("nan"), float("inf"), True, 2.5, [1]]


def _train_scenario(data, log, out_dir):
    from npcell.training import TrainConfig, train

    fields = {
        "task": data.draw(st.sampled_from(["adding", "copy", "art"]), label="task"),
        "task_options": {"T": data.draw(st.integers(2, 5)), "n_train": 8, "n_test": 4},
        "cell": data.draw(st.sampled_from(KINDS), label="cell"),
        "hidden": data.draw(st.integers(1, 4)), "batch": 4, "epochs": 1, "steps_per_epoch": 1,
        "eval_batch": 4, "dtype": data.draw(st.sampled_from(["float64", "float32"])),
        "optimizer": data.draw(st.sampled_from(["sgd", "adam"])),
        "lr": data.draw(st.sampled_from([1e-2, 1e-3])), "clip": 1.0, "log_every": 1,
        "seed": data.draw(st.integers(0, 100)),
    }
    if fields["task"] == "art":
        fields["task_options"] = {"K": 2, "n_train": 8, "n_valid": 4, "n_test": 4}
    for name in ("task", "cell", "hidden", "batch", "lr", "clip", "epochs", "dtype", "seed",
                 "optimizer", "log_every", "steps_per_epoch"):
        if _chance(data, 4, f"bad {name}"):
            fields[name] = data.draw(st.sampled_from(BAD_NUMBERS + ["nope"]))
    if _chance(data, 5, "bad task option"):
        fields["task_options"] = {**fields["task_options"],
                                  data.draw(st.sampled_from(["T", "n_train", "zzz"])):
                                  data.draw(st.sampled_from(BAD_NUMBERS))}
    if _chance(data, 5, "cell option"):
        fields["cell_options"] = {data.draw(st.sampled_from(["forget_bias", "diagonal", "zzz"])):
                                  data.draw(st.sampled_from(BAD_OPTION_VALUES))}
    config = _call(log, "TrainConfig", TrainConfig, **fields)
    if config is None:
        return
    result = _call(log, "train", train, config, out_dir, progress=False, resume=False)
    if result is not None:
        assert result.steps == 1 and result.final


def _run_train_fuzz(n_examples, derandomize, tmp_path):
    pytest.importorskip("npcell.training")
    log = Counter()
    counter = {"n": 0}

    @settings(max_examples=n_examples, deadline=None, database=None, derandomize=derandomize,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.data())
    def fuzz(data):
        counter["n"] += 1
        _train_scenario(data, log, tmp_path / f"run{counter['n']}")

    fuzz()
    print(f"\ntrain fuzz over {n_examples} examples:", dict(sorted(log.items())))
    assert log["train: ok"] >= n_examples // 4
    return log


def test_fuzz_train_quick(tmp_path):
    _run_train_fuzz(40, True, tmp_path)


@pytest.mark.slow
def test_fuzz_train_thorough(tmp_path):
    _run_train_fuzz(400, False, tmp_path)
