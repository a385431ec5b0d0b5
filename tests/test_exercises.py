"""The exercise generator, the variants and the grader (npcell.exercises).

Every solution (paper cell and drawn variants) scores full marks; every planted bug is caught
and located in the student variable it lives in; correct solutions written differently (loops
over the batch, in-place edits of the inputs) pass.
"""

import ast
import importlib.util
import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npcell import exercises
from npcell.cells import lstm, make_cell, peephole, wmc
from npcell.cli import main
from npcell.errors import ConfigError
from npcell.exercises import BUGS, EXERCISES, grader, rubric, variants
from npcell.exercises.generator import BEGIN, END


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", list(EXERCISES))
def test_solution_file_scores_full_marks(name, tmp_path):
    path = exercises.write_exercise(EXERCISES[name], tmp_path, solution=True)
    grade = exercises.grade(name, path)
    assert grade.passed, str(grade)
    assert grade.score == grade.max_score == 100
    assert grade.wrong == [] and grade.failed_tensors() == []


@pytest.mark.parametrize("name", ["lstm", "peephole", "wmc"])
@pytest.mark.parametrize("seed", [1, 2, 5, 11])
def test_every_drawn_variant_grades_its_own_solution_full_marks(name, seed, tmp_path):
    variant = variants.draw(name, seed)
    path = exercises.write_exercise(EXERCISES[name], tmp_path, solution=True, variant=variant)
    grade = exercises.grade(name, path, variant=seed)
    assert grade.passed, str(grade)
    assert grade.max_score == 100


def test_variants_differ_from_the_library_and_between_students():
    drawn = {variants.draw("wmc", s) for s in range(12)}
    assert len(drawn) >= 6
    assert any(v.coupled for v in drawn) and any(v.candidate != "tanh" for v in drawn)
    assert len({v.reads for v in drawn}) >= 3
    assert variants.draw("lstm", 3) == variants.draw("lstm", 3)  # the seed fixes the cell


def test_a_paper_solution_fails_a_coupled_variant(tmp_path):
    # the library's own code is not the answer to a variant
    seed = next(s for s in range(50) if variants.draw("lstm", s).coupled)
    text = exercises.solution_source(EXERCISES["lstm"]).replace(
        "NPCELL_VARIANT = None", f"NPCELL_VARIANT = {seed}")
    grade = exercises.grade("lstm", _write(tmp_path, "lstm.py", text), variant=seed)
    assert not grade.passed


@pytest.mark.parametrize("kind", ["lstm", "peephole", "wmc"])
def test_paper_variant_forward_is_npcells_reference_forward(kind):
    # the grader's forward of the paper's cell is npcell's step_forward, number for number
    v = variants.base(kind)
    ns = {"np": np, "numpy": np}
    exec(variants.helpers_source(v) + variants.forward_source(v) + variants.backward_source(v),
         ns)
    cell = make_cell(kind, 3, 4, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3))
    state = {"h": rng.standard_normal((2, 4)), "c": rng.standard_normal((2, 4))}
    ours, cache = ns["step_forward"](cell.params, x, state)
    ref, ref_cache = cell.step_forward(cell.params, x, state)
    for k in ("h", "c"):
        np.testing.assert_array_equal(ours[k], ref[k])
    dstate = {"h": rng.standard_normal((2, 4)), "c": rng.standard_normal((2, 4))}
    grads, dx, dprev = ns["step_backward"](cell.params, dstate, cache)
    rgrads, rdx, rdprev = cell.step_backward(cell.params, dstate, ref_cache)
    for k in rgrads:
        np.testing.assert_allclose(grads[k], rgrads[k], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(dprev["c"], rdprev["c"], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", list(EXERCISES))
def test_student_file_has_the_solution_removed(name, tmp_path):
    ex = EXERCISES[name]
    path = exercises.write_exercise(ex, tmp_path)
    text = path.read_text()
    assert BEGIN not in text and END not in text
    assert "YOUR CODE HERE" in text and "raise NotImplementedError" in text
    # the guide a student can open from any install, not a path into the project docs
    assert "reference/cells.md" not in text and "npcell exercises guide" in text
    assert re.search(r"^import numpy$", text, re.M)
    imports = [n for n in ast.walk(ast.parse(text)) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert all(getattr(n, "module", None) is None for n in imports)  # numpy only: no npcell
    grade = exercises.grade(name, path)
    assert grade.score == 0 and grade.status == "error"
    assert "not implemented yet" in grade.message


@pytest.mark.parametrize("solution", [False, True])
def test_finite_difference_file_holds_only_what_that_exercise_needs(solution):
    ex = EXERCISES["finite_difference"]
    text = (exercises.solution_source if solution else exercises.student_source)(ex)
    tree = ast.parse(text)
    kinds = [type(node).__name__ for node in tree.body]
    # the header docstring, `import numpy`, NPCELL_EXERCISE, the one function to write
    assert kinds == ["Expr", "Import", "Assign", "FunctionDef"], kinds
    assert [a.name for a in tree.body[1].names] == ["numpy"]
    assert tree.body[3].name == "numerical_gradient"
    assert "given (do not edit)" not in text
    for word in ("cache", "BPTT", "step_forward", "sigmoid", "dstate", "W_", "dc_prev",
                 "grads", "NPCELL_VARIANT"):
        assert word not in text, word


# Each catalogue bug and the student variable the grader must name for it (written out here so
# the test, not only the catalogue, says what is expected).
MUST_NAME = {
    "wmc_o_gate_reads_c_prev": "dW_oc", "peephole_o_gate_reads_c_prev": "dW_oc",
    "peephole_o_term_into_dc_prev": "dc", "wmc_missing_dc_through_W_fc": "dc_prev",
    "wmc_missing_tanh_prime": "dz_i", "lstm_db_not_summed": "db_k",
    "lstm_transposed_W_h": "dW_kh", "lstm_sigma_prime_of_preactivation": "da_f",
    "lstm_W_h_paired_with_h_t": "dW_kh", "lstm_forget_paired_with_c_t": "da_f",
    "lstm_dh_prev_not_accumulated": "dh_prev", "lstm_sigmoid_candidate": "da_g",
    "lstm_dc_without_dh_term": "dc", "lstm_dc_prev_without_f": "dc_prev",
    "lstm_input_gate_sign": "da_i", "lstm_output_gate_uses_c": "da_o",
    "gru_update_gate_sign": "da_z", "gru_W_nh_paired_with_h_prev": "dW_nh",
    "fd_one_sided": "central-difference identity on sum(x^3) with eps=1e-3",
    "fd_x_not_restored": "x unchanged after the call",
}


def test_the_expected_variables_are_the_catalogues():
    assert MUST_NAME == {name: bug.variable for name, bug in BUGS.items()}


@pytest.mark.parametrize("bug_name", list(BUGS))
def test_every_planted_bug_is_located_in_the_students_variable(bug_name, tmp_path):
    bug = BUGS[bug_name]
    assert bug.variable == MUST_NAME[bug_name]
    grade = exercises.grade(bug.exercise, _write(tmp_path, f"{bug.exercise}.py", bug.source()))
    assert grade.status == "graded" and not grade.passed
    if bug.exercise == "finite_difference":
        assert bug.variable in grade.wrong, grade.wrong
    else:
        assert grade.wrong == [bug.variable], f"{bug_name}: {grade.wrong}\n{grade}"
        assert set(bug.where) <= set(grade.failed_tensors())
        assert f"Your {bug.variable} is wrong" in str(grade)
    assert grade.score < grade.max_score


def test_bugs_live_only_in_code_the_student_writes():
    for bug in BUGS.values():
        solution = exercises.solution_source(EXERCISES[bug.exercise])
        given = solution.split(BEGIN)[0]
        for old, _ in bug.edits:
            assert old not in given, f"{bug.name} edits given code"
    bad = exercises.PlantedBug("x", "lstm", "d", "dx", ("dx",),
                               (("h_prev, c_prev = state", "h_prev, c_prev = state"),))
    with pytest.raises(ValueError, match="gives the student"):
        bad.source()


def test_pattern_hints_appear_only_when_they_fit(tmp_path):
    hints = {}
    for name in ("lstm_input_gate_sign", "lstm_transposed_W_h", "lstm_W_h_paired_with_h_t",
                 "lstm_forget_paired_with_c_t", "lstm_dc_prev_without_f"):
        bug = BUGS[name]
        text = str(exercises.grade("lstm", _write(tmp_path, f"{name}.py", bug.source())))
        hints[name] = [ln for ln in text.splitlines() if "Pattern:" in ln]
    assert "wrong sign" in hints["lstm_input_gate_sign"][0]
    assert "transpose" in hints["lstm_transposed_W_h"][0]
    assert "h_t where h_{t-1}" in hints["lstm_W_h_paired_with_h_t"][0]
    assert "c_t where c_{t-1}" in hints["lstm_forget_paired_with_c_t"][0]
    assert hints["lstm_dc_prev_without_f"] == []  # no pattern fits a missing factor f


def test_nan_gradient_is_reported_as_nan(tmp_path):
    text = exercises.solution_source(EXERCISES["lstm"]).replace(
        'da_g = dc * k["i"] * dtanh(k["g"])',
        'da_g = dc * k["i"] * dtanh(k["g"]) / (k["g"] - k["g"])')
    grade = exercises.grade("lstm", _write(tmp_path, "lstm.py", text))
    assert grade.wrong == ["da_g"]
    assert "is NaN at" in str(grade)


def test_score_is_a_rubric_not_a_share_of_rows(tmp_path):
    # a part earns its points when none of its variables is wrong and a tensor it feeds is
    # right: a dc bug keeps only what does not depend on dc (the output gate and, shown right
    # by W_o*, the weight lines); a one-tensor slip costs its own part only
    carry = exercises.grade("lstm", _write(tmp_path, "a.py", BUGS["lstm_dc_without_dh_term"]
                                           .source()))
    slip = exercises.grade("wmc", _write(tmp_path, "b.py", BUGS["wmc_o_gate_reads_c_prev"]
                                         .source()))
    assert carry.wrong == ["dc"] and carry.score == 35
    assert {p.key for p, e in carry.parts if e} == {"output_gate", "weights"}
    assert slip.wrong == ["dW_oc"] and slip.score == 90
    rubric = {"dc": 40}
    heavy = exercises.grade("lstm", _write(tmp_path, "c.py", BUGS["lstm_dc_without_dh_term"]
                                           .source()), rubric=rubric)
    assert heavy.max_score == 125 and heavy.score == 35
    with pytest.raises(ConfigError, match="unknown parts"):
        exercises.grade("lstm", tmp_path / "c.py", rubric={"nope": 1})


def test_location_of_two_bugs_is_both_variables(tmp_path):
    text = BUGS["lstm_input_gate_sign"].source().replace('dc_prev = dc * k["f"]',
                                                         'dc_prev = dc')
    grade = exercises.grade("lstm", _write(tmp_path, "lstm.py", text))
    assert sorted(grade.wrong) == ["da_i", "dc_prev"]
    assert grade.score == 70  # input gate, carry, and dx/dh_prev (which da_i feeds)


LOOP_SOLUTION = '''
def step_backward(params, dstate, cache):
    p, k = params, cache
    B = k["x"].shape[0]
    grads = {name: numpy.zeros_like(value) for name, value in p.items()}
    dx = numpy.zeros_like(k["x"])
    dh_prev = numpy.zeros_like(k["h_prev"])
    dc_prev = numpy.zeros_like(k["c_prev"])
    for b in range(B):  # one sample at a time
        dh, dc = dstate["h"][b], dstate["c"][b]
        o, i, f, g, tc = (k[n][b] for n in ("o", "i", "f", "g", "tanh_c"))
        da = {"o": dh * tc * o * (1 - o)}
        dcb = dc + dh * o * (1 - tc ** 2)
        da["i"] = dcb * g * i * (1 - i)
        da["f"] = dcb * k["c_prev"][b] * f * (1 - f)
        da["g"] = dcb * i * (1 - g ** 2)
        dc_prev[b] = dcb * f
        for gate, d in da.items():
            grads[f"W_{gate}x"] += numpy.outer(d, k["x"][b])
            grads[f"W_{gate}h"] += numpy.outer(d, k["h_prev"][b])
            grads[f"b_{gate}"] += d
            dx[b] += d @ p[f"W_{gate}x"]
            dh_prev[b] += d @ p[f"W_{gate}h"]
    return grads, dx, {"h": dh_prev, "c": dc_prev}
'''


def _with_function(source_text, function_text):
    head = source_text.split("# ---- your task")[0]
    return head + "# ---- your task\n" + function_text


def test_correct_solution_with_loops_over_the_batch_passes(tmp_path):
    text = _with_function(exercises.student_source(EXERCISES["lstm"]), LOOP_SOLUTION)
    grade = exercises.grade("lstm", _write(tmp_path, "lstm.py", text))
    assert grade.passed, str(grade)


def test_correct_solution_that_edits_its_inputs_passes_with_a_note(tmp_path):
    text = exercises.solution_source(EXERCISES["lstm"]).replace(
        'dc = dstate["c"] + dh * k["o"] * dtanh(k["tanh_c"])',
        'dc = dstate["c"]\n    dc += dh * k["o"] * dtanh(k["tanh_c"])\n    k["c"] *= 1.0')
    grade = exercises.grade("lstm", _write(tmp_path, "lstm.py", text))
    assert grade.passed and grade.score == 100, str(grade)
    assert "modifies its arguments in place" in grade.notes[0]
    assert len(grade.notes) == 1
    assert "dstate['c']" in grade.notes[0]


def test_new_refuses_to_overwrite_and_plant_refuses_too(tmp_path, capsys):
    assert main(["exercises", "new", "lstm", str(tmp_path)]) == 0
    work = tmp_path / "lstm.py"
    work.write_text(work.read_text() + "\n# my work\n")
    assert main(["exercises", "new", "lstm", str(tmp_path)]) == 2
    assert "exists" in capsys.readouterr().err
    assert "# my work" in work.read_text()
    assert main(["exercises", "new", "lstm", str(tmp_path), "--force"]) == 0
    assert "# my work" not in work.read_text()
    assert main(["exercises", "plant", "lstm_input_gate_sign", str(tmp_path)]) == 2


def test_cli_new_variant_check_formats_and_exit_codes(tmp_path, capsys):
    assert main(["exercises", "list"]) == 0
    out = capsys.readouterr().out
    for name in EXERCISES:
        assert re.search(rf"^{name}\s", out, re.M)
    assert main(["exercises", "new", "wmc", str(tmp_path / "s"), "--variant", "7",
                 "--solution"]) == 0
    path = tmp_path / "s" / "wmc.py"
    assert "NPCELL_VARIANT = 7" in path.read_text()
    capsys.readouterr()
    assert main(["exercises", "check", str(path)]) == 0  # the variant comes from the file
    assert "variant 7" in capsys.readouterr().out
    assert main(["exercises", "check", str(path), "--variant", "8"]) in (0, 1)
    capsys.readouterr()
    assert main(["exercises", "check", str(path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] and data["score"] == data["max_score"] == 100
    assert data["variant"]["seed"] == 7 and data["status"] == "graded"
    assert main(["exercises", "new", "gru", str(tmp_path), "--variant", "3"]) == 2
    assert main(["exercises", "check", str(tmp_path / "nope.py")]) == 2
    assert main(["exercises", "check", str(path), "--rubric", '{"zz": 1}']) == 2


def test_grading_a_function_object_uses_its_source_in_the_sandbox(tmp_path):
    # what a notebook does: the function is defined in the kernel, graded from its source
    path = exercises.write_exercise(EXERCISES["gru"], tmp_path, solution=True)
    spec = importlib.util.spec_from_file_location("gru_solution_for_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # our own solution file: trusted
    grade = exercises.grade("gru", module.gru_step_backward)
    assert grade.passed, str(grade)


def test_nbgrader_notebook_has_solution_and_hidden_test_cells(tmp_path):
    path = exercises.package.write_notebook(EXERCISES["wmc"], tmp_path, variant=3)
    nb = json.loads(path.read_text())
    meta = [c["metadata"]["nbgrader"] for c in nb["cells"]]
    assert sum(m["solution"] for m in meta) == 1
    tests = [c for c, m in zip(nb["cells"], meta) if m["grade"]]
    assert sum(m.get("points", 0) for m in meta) == 100
    assert all("### BEGIN HIDDEN TESTS" in c["source"] for c in tests)
    assert len({m["grade_id"] for m in meta}) == len(meta)
    with pytest.raises(FileExistsError):
        exercises.package.write_notebook(EXERCISES["wmc"], tmp_path)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["lstm", "peephole", "wmc"]), st.integers(0, 10_000))
def test_every_variable_of_every_variant_is_told_apart_by_its_footprint(name, seed):
    # what makes location possible: each variable feeds its own set of returned tensors, so
    # the set of wrong tensors names it
    variant = variants.draw(name, seed)
    fp = variants.footprints(variant)
    outputs = set(variant.param_shapes(2, 3)) | {"dx", "dh_prev", "dc_prev"}
    assert all(f and f <= outputs for f in fp.values())
    assert len({frozenset(f) for f in fp.values()}) == len(fp)
    for variable, footprint in fp.items():
        assert grader.locate(set(footprint), fp) == [variable]
    assert grader.locate(set(), fp) == []
    parts = exercises.default_rubric(EXERCISES[name], variant)
    assert sum(p.points for p in parts) == 100
    for variable in fp:  # every variable belongs to exactly one rubric part
        assert sum(rubric.owns(p, variable, parts) for p in parts) == 1, variable


def test_extra_gradients_are_ignored_with_a_note(tmp_path):
    text = exercises.solution_source(EXERCISES["lstm"]).replace(
        '    return grads, dx, {"h": dh_prev, "c": dc_prev}',
        '    grads["W_fc"] = 0.0 * k["c"]\n    return grads, dx, {"h": dh_prev, "c": dc_prev}')
    grade = exercises.grade("lstm", _write(tmp_path, "lstm.py", text))
    assert grade.passed and "unexpected keys ['W_fc']" in grade.notes[0]


def _seed(name, **want):
    return next(s for s in range(500) if all(getattr(variants.draw(name, s), k) == v
                                             for k, v in want.items()))


@pytest.mark.parametrize("name, want, old, new, variable", [
    # the paper's da_i in a coupled cell: misses the -c_{t-1} of f = 1 - i
    ("lstm", {"coupled": True}, 'da_i = dc * (k["g"] - k["c_prev"]) * dsigmoid(k["i"])',
     'da_i = dc * k["g"] * dsigmoid(k["i"])', "da_i"),
    # tanh' for LeCun's scaled tanh candidate
    ("lstm", {"candidate": "lecun_tanh"},
     'da_g = dc * k["i"] * (2.0 / 3.0) * (1.7159 - k["g"] ** 2 / 1.7159)',
     'da_g = dc * k["i"] * dtanh(k["g"])', "da_g"),
    # a WMC cell bias gradient not summed over the batch (B = 1 hides it as a shape: not here)
    ("wmc", {"cell_bias": True, "reads": ("i", "f", "o")}, 'grads["b_ic"] = dz_i.sum(axis=0)',
     'grads["b_ic"] = dz_i.mean(axis=0)', "db_ic"),
])
def test_mistakes_in_drawn_variants_are_located(name, want, old, new, variable, tmp_path):
    seed = _seed(name, **want)
    variant = variants.draw(name, seed)
    text = exercises.solution_source(EXERCISES[name], variant)
    assert text.count(old) == 1
    path = _write(tmp_path, f"{name}.py", text.replace(old, new))
    grade = exercises.grade(name, path)  # the variant comes from the file's NPCELL_VARIANT
    assert grade.variant["seed"] == seed
    assert grade.wrong == [variable], str(grade)


NPCELL_FORWARD = {"lstm": lstm.lstm_step_forward, "peephole": peephole.peephole_step_forward,
                  "wmc": wmc.wmc_step_forward}


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(variants.CELL_EXERCISES), st.integers(0, 2**32 - 1))
def test_no_drawn_variant_is_a_cell_npcell_implements(name, seed):
    # if npcell's reference forward computed the same step on the variant's parameters, its
    # reference backward would be the answer: a drawn variant must differ from it
    v = variants.draw(name, seed)
    rng = np.random.default_rng(0)
    params = variants.init_params(v, 3, 4, rng)
    x = rng.standard_normal((2, 3))
    state = {"h": rng.standard_normal((2, 4)), "c": rng.standard_normal((2, 4))}
    ns = {"numpy": np}
    exec(variants.helpers_source(v) + variants.forward_source(v), ns)  # noqa: S102 - ours
    theirs, _ = ns["step_forward"](params, x, state)
    try:
        ours, _ = NPCELL_FORWARD[name](params, x, state)
    except (KeyError, ValueError):
        return  # npcell's cell does not even take these parameters
    assert not np.allclose(ours["h"], theirs["h"]), v


def _styled(name):
    """The solution of ``name`` rewritten in another style: ``import numpy as np``, a helper for
    the batch sums and the outer products, float64 inside and a cast on the way out."""
    text = exercises.solution_source(EXERCISES[name]).replace("import numpy\n", (
        "import numpy\nimport numpy as np\n\nEXTRA = 0.0\n\n\n"
        "def _batch_sum(a):\n    return np.einsum('b...->...', a) + EXTRA\n\n\n"
        "def _outer(da, a):\n    return np.einsum('bi,bj->ij', da, a.astype(np.float64))\n"), 1)
    return (text.replace('da.sum(axis=0)', '_batch_sum(da)')
            .replace('da.T @ k["x"]', '_outer(da, k["x"])')
            .replace('return grads, dx, {"h": dh_prev, "c": dc_prev}',
                     'return ({n: np.asarray(g, dtype=np.float64) for n, g in grads.items()}, '
                     'dx, {"h": dh_prev, "c": dc_prev})'))


@pytest.mark.parametrize("name", ["lstm", "peephole", "wmc"])
def test_correct_work_in_another_style_scores_full_marks_as_file_and_as_function(name, tmp_path):
    # a function is graded with its module: the alias, the helpers and the constant it uses go
    # with it (before, only its own source went, and NameError gave 0)
    path = _write(tmp_path, f"{name}.py", _styled(name))
    assert exercises.grade(name, path).passed
    spec = importlib.util.spec_from_file_location(f"styled_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    grade = exercises.grade(name, module.step_backward)
    assert grade.passed, str(grade)
    source = exercises.function_source(module.step_backward)
    assert "import numpy as np" in source and "def _batch_sum" in source
    assert "EXTRA = 0.0" in source and "def step_forward" not in source  # only what it uses


def test_a_function_that_uses_npcell_takes_npcell_with_it_and_is_flagged(tmp_path):
    path = _write(tmp_path, "m.py", "import numpy as np\nimport npcell.cells.lstm as ref\n\n\n"
                  "def step_backward(params, dstate, cache):\n"
                  "    return ref.lstm_step_backward(params, dstate, cache)\n")
    spec = importlib.util.spec_from_file_location("uses_npcell", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "import npcell.cells.lstm as ref" in exercises.function_source(module.step_backward)
    grade = exercises.grade("lstm", module.step_backward)
    assert grade.status == "flagged" and grade.score == 0


@pytest.mark.parametrize("name", list(EXERCISES))
def test_blank_and_noise_score_zero_on_every_exercise(name, tmp_path):
    # a part needs a right tensor of its own: work that returns zeros or noise of the right
    # shapes earns nothing (it used to earn 60-85 for the parts downstream of "da_o")
    ex = EXERCISES[name]
    given = exercises.solution_source(ex)
    if name == "finite_difference":
        body = ("\n\ndef numerical_gradient(f, x, eps=1e-5):\n"
                "    return FILL(x.shape)\n")
    else:
        body = (f"\n\n_real = {ex.function}\n\n\ndef {ex.function}(params, dstate, cache, **kw):\n"
                "    grads, dx, dprev = _real(params, dstate, cache, **kw)\n"
                "    return ({k: FILL(v.shape) for k, v in grads.items()}, FILL(dx.shape),\n"
                "            {k: FILL(v.shape) for k, v in dprev.items()})\n")
    for fill in ("numpy.zeros", "numpy.random.default_rng(0).standard_normal"):
        grade = exercises.grade(name, _write(tmp_path, f"{name}.py",
                                             given + body.replace("FILL", fill)))
        assert grade.status == "graded" and grade.score == 0, (fill, str(grade))


def test_a_reset_after_only_gru_bug_is_named_dhn_and_its_form_is_said(tmp_path):
    """Issue 26: the template's own variable, not three tensors, and which GRU form is wrong."""
    from npcell.exercises import generator

    path = generator.write_exercise(EXERCISES["gru"], tmp_path, solution=True)
    source = path.read_text()
    assert "dhn = da_n * r" in source
    path.write_text(source.replace("dhn = da_n * r", "dhn = da_n", 1))
    result = exercises.grade("gru", path)
    assert result.wrong == ["dhn"]
    text = str(result)
    assert "Your dhn is wrong (dL/d(W_nh h_{t-1} + b_nh)" in text
    assert "only from the reset_after=True" in text and "Cho et al." in text
    # a bug shared by both forms names no single form
    both = source.replace("da_z = dh * (h_prev - n) * dsigmoid(z)", "da_z = dh * (h_prev - n)", 1)
    assert both != source
    path.write_text(both)
    assert "only from the" not in str(exercises.grade("gru", path))
