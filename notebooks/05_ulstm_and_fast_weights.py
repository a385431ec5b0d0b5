# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · ULSTM and fast weights: what the extra state does to BPTT
#
# Two families change the LSTM's recurrence in ways the backward pass must follow:
#
# * **ULSTM** (Untied LSTM, Gao & Oates 2018) adds a gate $z_t$ that decides what the candidate
#   reads from the cell, $m_t = z_t \odot \tanh(c_{t-1})$, and drops $h_{t-1}$ from the
#   candidate. Now $\tanh(c_{t-1})$ feeds *two* places (through $o_{t-1}$ into $h_{t-1}$, and
#   through $z_t$ into $m_t$), so $\partial L/\partial c_{t-1}$ gains a term.
# * **Fast weights** (Ba et al. 2016; Keller et al. 2018) carry a per-sequence matrix
#   $A_t = \lambda A_{t-1} + \eta\, w w^\top$ in the state. $A$ has no gradient of its own, but
#   BPTT must carry its adjoint: $\partial L/\partial A_{t-1} = \lambda\,\partial L/\partial A_t$
#   plus what step $t$'s read adds.

# %%
import inspect
import os

import matplotlib.pyplot as plt
import numpy as np

import npcell
from npcell import diagnostics, plots
from npcell.cells import ulstm

QUICK = os.environ.get("NPCELL_QUICK") == "1"
rng = np.random.default_rng(0)
T = 40 if QUICK else 100

# %% [markdown]
# ## ULSTM

# %%
cell = npcell.make_cell("ulstm", 3, 8, seed=0)
print(cell.describe())

# %% [markdown]
# The lines of `ulstm_step_backward` that build $\partial L/\partial c_{t-1}$: the carousel
# through $f_t$ and the new path through $m_t = z_t \odot \tanh(c_{t-1})$.

# %%
source = inspect.getsource(ulstm.ulstm_step_backward)
print("\n".join(line for line in source.splitlines() if "dc_prev" in line or "dm" in line))

# %% [markdown]
# Gradient check, including the initial state $c_0$ (whose row would fail if the $m_t$ path
# were missing):

# %%
x = rng.standard_normal((6, 2, 3))
report = ulstm_report = npcell.gradcheck(cell, x, mode="fast")
print(f"ulstm: {'PASS' if report.ok else 'FAIL'}, max relative error {report.max_rel_error:.1e}; "
      f"dL/dc_0 row {report.row('dstate0[c]').max_rel_error:.1e}")

# %% [markdown]
# How far back does the error reach? `diagnose` puts the loss on the last step and records
# $\|\partial L/\partial c_t\|$ over $t$, for the LSTM and the ULSTM with the same sizes.

# %%
x_long = rng.standard_normal((T, 16, 3))
diags = [diagnostics.diagnose(npcell.make_cell(kind, 3, 8, seed=0, forget_bias=1.0), x_long)
         for kind in ("lstm", "ulstm")]
fig, ax = plt.subplots(figsize=(5.5, 3.2))
plots.grad_flow(diags, ax=ax, states=("c",))  # log axis; dL/dc_{T-1} = 0 is left as a gap
plt.show()
for d in diags:
    print(f"{d.label}: ||dL/dc_t|| at t=T-2 {d.dstate_norm['c'][-2]:.2e}, at t=0 "
          f"{d.dstate_norm['c'][0]:.2e}")

# %% [markdown]
# ## Fast weights
# `fw_lstm` (variant A, the co-author's code): the candidate writes into $A$ and reads it back,
# with LayerNorm on the gates and on $c$. The state now has three entries:

# %%
fw = npcell.make_cell("fw_lstm", 3, 8, seed=0)
print(fw.state_names, {k: v for k, v in fw.state_shapes(2).items()})
h, state, cache = npcell.forward(fw, x)
print("A_T is symmetric (a decayed sum of outer products):",
      np.allclose(state["A"], np.swapaxes(state["A"], 1, 2)))

# %% [markdown]
# The gradient check perturbs $A_0$ like any other state, so the adjoint carried through
# $\lambda$ is checked too (row `dstate0[A]`):

# %%
report = fw_report = npcell.gradcheck(fw, x, mode="fast")
print(f"fw_lstm: {'PASS' if report.ok else 'FAIL'}, max relative error {report.max_rel_error:.1e}")
print(f"dL/dA_0 row: {report.row('dstate0[A]').max_rel_error:.1e}")

# %% [markdown]
# The memory $\|A_t\|$ and its adjoint over time. Without reads the adjoint would shrink by
# exactly $\lambda$ per step (dashed guide); each step's read adds to it, so it decays more
# slowly than $\lambda^{T-1-t}$ while reads keep using the memory.

# %%
d_fw = diagnostics.diagnose(fw, x_long)
lam = fw.options["lam"]
steps = np.arange(T)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
axes[0].plot(d_fw.state_norm("A"), label=r"$\|A_t\|$")
axes[0].plot(d_fw.state_norm("c"), label=r"$\|c_t\|$")
axes[0].set(xlabel="t", title="state norms (mean over the batch)")
axes[0].legend()
dA = d_fw.dstate_norm["A"]
axes[1].semilogy(plots.log_safe(dA), label=r"$\|\partial L/\partial A_t\|$")  # 0 at T-1
axes[1].semilogy(steps, dA[-2] * lam ** (T - 2 - steps), "k--", lw=0.8,
                 label=r"$\lambda^{T-2-t}$ guide")
axes[1].set(xlabel="t", title="the adjoint of A")
axes[1].legend()
plt.tight_layout()
plt.show()
print(f"lambda = {lam}; ||dL/dA|| at t=T-2: {dA[-2]:.2e}, at t=0: {dA[0]:.2e}")

# %% [markdown]
# ## Take-away
# Extra state means extra adjoints. ULSTM's second read of $\tanh(c_{t-1})$ adds a term to
# $\partial L/\partial c_{t-1}$; fast weights add a whole matrix adjoint that decays by
# $\lambda$ and is refilled by every read. In both cases the gradient check on the *initial
# state* is what catches a forgotten path. The numbers, computed and asserted:

# %%
decay = (dA[0] / dA[-2]) ** (1.0 / (T - 2))  # mean factor per step from t = T-2 back to 0
reach = {d.label: d.dstate_norm["c"][0] / d.dstate_norm["c"][-2] for d in diags}
assert ulstm_report.ok and fw_report.ok
assert decay > lam  # the reads refill the adjoint: it decays more slowly than lambda
print(f"Take-away: both gradient checks pass, initial states included (ulstm dL/dc_0 "
      f"{ulstm_report.row('dstate0[c]').max_rel_error:.0e}, fw_lstm dL/dA_0 "
      f"{fw_report.row('dstate0[A]').max_rel_error:.0e}); dL/dA shrinks by {decay:.3f} a step "
      f"against lambda = {lam}; dL/dc_0 / dL/dc_(T-2): "
      + ", ".join(f"{k} {v:.1e}" for k, v in reach.items()) + ".")
