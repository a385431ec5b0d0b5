# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Gradient checking as a skill
#
# A hand-derived backward pass is only as good as its check. This notebook builds the check
# from scratch (finite differences and relative error), shows why float64 and the step size
# matter, and then shows what the classic BPTT bugs look like in npcell's report, so that a
# failing row points you at the line to fix.

# %%
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np

import npcell
from npcell import exercises

QUICK = os.environ.get("NPCELL_QUICK") == "1"
rng = np.random.default_rng(0)

# %% [markdown]
# ## Finite differences
# For a scalar $f$, the **central** difference is accurate to $O(\epsilon^2)$, the one-sided one
# only to $O(\epsilon)$:
#
# $$\frac{f(x+\epsilon)-f(x-\epsilon)}{2\epsilon} = f'(x) + \frac{\epsilon^2}{6}f'''(x) + \dots
# \qquad \frac{f(x+\epsilon)-f(x)}{\epsilon} = f'(x) + \frac{\epsilon}{2}f''(x) + \dots$$
#
# Compare numbers with the **relative error** $|a-n| / \max(|a|, |n|, \text{floor})$: the floor
# stops round-off on gradients that are zero from reading as an error.

# %%
def numerical_gradient(f, x, eps=1e-5):
    """Central differences, one entry at a time; x is restored."""
    grad = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        old = x[idx]
        x[idx] = old + eps
        f_plus = f(x)
        x[idx] = old - eps
        f_minus = f(x)
        x[idx] = old
        grad[idx] = (f_plus - f_minus) / (2 * eps)
    return grad


def relative_error(a, n, floor=1e-8):
    return np.max(np.abs(a - n) / np.maximum(np.maximum(np.abs(a), np.abs(n)), floor))


x = rng.standard_normal(5)
f = lambda v: float(np.sum(np.sin(v) * v**2))  # noqa: E731
analytic = np.cos(x) * x**2 + 2 * x * np.sin(x)
print("central, eps=1e-5: rel. error", relative_error(analytic, numerical_gradient(f, x)))

# %% [markdown]
# This is the exercise `npcell exercises new finite_difference DIR`; the autograder checks it on
# functions with known gradients, including the exact identity
# $\text{central}(x^3) = 3x^2 + \epsilon^2$ that tells a central difference from a one-sided one.
#
#
# `exercises.grade` takes the function itself: it is graded with what it uses from this
# notebook (here `import numpy as np`), in the same isolated child as a file would be.

# %%
grade = exercises.grade("finite_difference", numerical_gradient)
print(grade)
assert grade.passed and grade.score == grade.max_score == 100, grade

# %% [markdown]
# ## eps and dtype
# Too large an $\epsilon$ and the truncation error $\epsilon^2 f'''$ dominates; too small and
# round-off $\approx \text{machine eps}\cdot|f|/\epsilon$ does, so the error is smallest in
# between: near $(\text{machine eps})^{1/3}$ in theory, wherever the curve below has its
# minimum in practice. In float32 (machine eps $10^{-7}$) the two errors meet far above the pass
# mark: there is no good $\epsilon$ at all. Here is the worst relative error over three LSTM
# parameters against the float64 analytic gradient, for both dtypes of the *forward* pass.

# %%
cell64 = npcell.make_cell("lstm", 3, 4, seed=0)
x_seq = rng.standard_normal((6, 2, 3))
weights = rng.standard_normal((6, 2, 4))
_, _, cache = npcell.forward(cell64, x_seq)
grads, _, _ = npcell.backward(cell64, weights, cache)
names = ["W_fx", "W_ih", "b_o"]


def loss(cell, x_in):
    h, _, _ = npcell.forward(cell, x_in.astype(cell.dtype))
    return float(np.sum(weights * h.astype(np.float64)))


def worst_error(dtype, eps):
    cell = cell64.astype(dtype)
    worst = 0.0
    for name in names:
        param = cell.params[name]
        numeric = np.zeros(param.shape)
        for idx in np.ndindex(*param.shape):
            old = param[idx]
            param[idx] = old + eps
            f_plus = loss(cell, x_seq)
            param[idx] = old - eps
            f_minus = loss(cell, x_seq)
            param[idx] = old
            numeric[idx] = (f_plus - f_minus) / (2 * eps)
        worst = max(worst, relative_error(grads[name], numeric, floor=1e-4))
    return worst


eps_values = [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8] if not QUICK else [1e-2, 1e-4, 1e-6]
curves = {dtype: [worst_error(dtype, e) for e in eps_values] for dtype in ("float64", "float32")}
fig, ax = plt.subplots(figsize=(5, 3.2))
for dtype, errors in curves.items():
    ax.loglog(eps_values, errors, "o-", label=dtype)
ax.axhline(1e-6, color="gray", ls="--", lw=0.8, label="npcell float64 pass mark")
ax.set_xlabel("eps")
ax.set_ylabel("worst relative error")
ax.legend()
plt.show()
for dtype, errors in curves.items():
    print(dtype, " ".join(f"{e:.1e}" for e in errors))
best = {dtype: eps_values[int(np.argmin(errors))] for dtype, errors in curves.items()}
print(f"smallest error: float64 at eps = {best['float64']:.0e} ({min(curves['float64']):.1e}), "
      f"float32 at eps = {best['float32']:.0e} ({min(curves['float32']):.1e})")

# %% [markdown]
# The float64 minimum is printed above; a wide range of $\epsilon$ around it stays below the
# pass mark. That is why `npcell.gradcheck` defaults to float64 with eps = 1e-5 and warns on
# float32 (and loosens its tolerance there).

# %% [markdown]
# ## Reading a report
# `npcell.gradcheck` gives one row per parameter, per gate block (all parameters of one gate
# moved together), per time step of $\partial L/\partial x_t$ and per initial state. On a
# correct cell everything passes:

# %%
wmc = npcell.make_cell("wmc", 3, 4, seed=0)
wmc_report = npcell.gradcheck(wmc, x_seq, mode="fast")
print(wmc_report)

# %% [markdown]
# ## What each bug looks like
# npcell ships a catalogue of realistic planted bugs (`npcell exercises bugs`). Each one is the
# reference code with one line changed; the grader runs it like a student's file (in a sandboxed
# child process) and names the student's variable the error lives in, from the set of returned
# tensors that are wrong. Compare the signatures:
#
# * a **local derivative** bug (wrong $\sigma'$, sigmoid candidate, wrong sign) fails its gate's
#   weights, dx and dh_prev: `da_g`, `da_i`, ...;
# * a **carry** bug ($\partial L/\partial c_{t-1}$ wrong) fails dc_prev alone: `dc_prev`;
# * a **pairing** bug (W_oc with $c_{t-1}$, W_h with $h_t$) fails exactly that weight;
# * a **shape** bug (no sum over the batch) is reported by name before any numbers.

# %%
shown = ["lstm_sigmoid_candidate", "lstm_dc_prev_without_f", "wmc_o_gate_reads_c_prev",
         "lstm_db_not_summed"]
if QUICK:
    shown = shown[:2]
work = tempfile.mkdtemp()
scores = {}
for name in shown:
    bug = exercises.BUGS[name]
    result = exercises.grade(bug.exercise, bug.write(f"{work}/{name}"))
    scores[name] = (result.score, result.max_score)
    print(f"{name}: {bug.description}")
    print(f"   score {result.score:g}/{result.max_score:g}; wrong variable {result.wrong}, "
          f"wrong tensors {result.failed_tensors()}")

# %% [markdown]
# The full feedback a student sees, for one of them:

# %%
bug = exercises.BUGS["lstm_sigmoid_candidate"]
print(exercises.grade(bug.exercise, bug.write(f"{work}/feedback")))

# %% [markdown]
# ## The whole catalogue
# One row per planted bug, with the variable the grader must name and the tensors it shows in
# (the test suite holds the grader to these).

# %%
for bug in exercises.BUGS.values():
    print(f"{bug.name:<36} [{bug.exercise:<17}] {bug.variable:<8} in {', '.join(bug.where[:3])}")

# %% [markdown]
# ## Take-away
# Computed from this notebook's data, and asserted:

# %%
passing = [e for e, err in zip(eps_values, curves["float64"]) if err <= 1e-6]
assert min(curves["float64"]) <= 1e-6 < min(curves["float32"])
assert wmc_report.ok and all(score < top for score, top in scores.values())
span = (f"at eps = {passing[0]:.0e}" if len(passing) == 1
        else f"for eps in {min(passing):.0e}..{max(passing):.0e}")
print(f"Take-away: in float64 central differences pass the 1e-6 mark {span} of the eps "
      f"tried (best {best['float64']:.0e}); in float32 the best "
      f"eps ({best['float32']:.0e}) still leaves {min(curves['float32']):.0e}. A correct cell "
      f"passes every row; each planted bug loses points ("
      + ", ".join(f"{n} {score:g}/{top:g}" for n, (score, top) in scores.items()) + ").")
