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
# # 02 · Working Memory Connections vs peephole: the gradient argument
#
# Both variants let the gates read the cell state. The **peephole** LSTM (eq. 16-18) adds the
# raw cell state; **Working Memory Connections** (WMC, eq. 7-9) squash it first:
#
# $$
# \begin{aligned}
# \text{peephole:}\quad i_t &= \sigma(W_{ix}x_t + W_{ih}h_{t-1} + W_{ic}c_{t-1} + b_i) && (16)\\
# \text{WMC:}\quad i_t &= \sigma(W_{ix}x_t + W_{ih}h_{t-1} + \tanh(W_{ic}c_{t-1}) + b_i) && (7)
# \end{aligned}
# $$
#
# (likewise f with $c_{t-1}$, and o with the **new** $c_t$). The paper's argument is about the
# local gradient of the cell connection weights. For WMC (eq. 14-15)
#
# $$\frac{\partial i_t}{\partial W_{ic}} = \hat\delta i_t \otimes c_{t-1},\qquad
# \hat\delta i_t = \sigma'(\bar\imath_t)\odot\bigl(1-\tanh^2(W_{ic}c_{t-1})\bigr)$$
#
# while for the peephole (eq. 19-21) the second factor is missing:
# $\partial i_t/\partial W_{ic} = \sigma'(\bar\imath_t)\otimes c_{t-1}$. Since $c_t$ is unbounded,
# the peephole's weight gradient can grow with $\|c\|$; in WMC the $\tanh'$ factor shrinks exactly
# when $W_{ic}c_{t-1}$ is large. This notebook measures both claims with `npcell.diagnose`.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import npcell
from npcell import diagnostics, plots
from npcell.tasks.adding import make_batch

QUICK = os.environ.get("NPCELL_QUICK") == "1"
rng = np.random.default_rng(0)
H = 16

# %% [markdown]
# ## The local gradients, one step, as ‖c‖ grows
# Take one step of each cell from initial cell states of growing norm and measure the
# per-sequence local gradient $\|\partial i_t/\partial W_{ic}\|$ with
# `diagnostics.weight_local_gradients` (the outer products of eq. 14 / 21). The peephole is
# taken in its full-matrix form here, like WMC, so only the tanh differs.

# %%
peephole = npcell.make_cell("peephole", 2, H, seed=0, diagonal=False)
wmc = npcell.make_cell("wmc", 2, H, seed=0)
wmc.set_params({k: v for k, v in peephole.params.items()})  # same weights; WMC adds the tanh
x1 = rng.standard_normal((1, 8, 2))
direction = rng.standard_normal((8, H))
direction /= np.linalg.norm(direction, axis=1, keepdims=True)
scales = np.geomspace(0.1, 100, 13 if not QUICK else 7)
pre_grad = {"peephole": [], "wmc": []}  # ||d i-bar / d W_ic||: the read alone
local = {"peephole": [], "wmc": []}  # ||d i / d W_ic||: with sigma' (eq. 14 / 21)
for scale in scales:
    state = {"h": np.zeros((8, H)), "c": scale * direction}
    for name, cell in (("peephole", peephole), ("wmc", wmc)):
        _, _, cache = npcell.forward(cell, x1, state, fused=False)
        step = cache.steps[0]
        grads = diagnostics.weight_local_gradients(cell, step, gate="i")
        local[name].append(np.linalg.norm(grads["W_ic"], axis=(1, 2)).mean())
        # the tanh' factor of eq. (15): 1 - tanh^2(W_ic c_{t-1}) for WMC, 1 for the peephole
        z = state["c"] @ cell.params["W_ic"].T
        read_factor = 1.0 - np.tanh(z) ** 2 if cell.kind == "wmc" else np.ones_like(z)
        pre_grad[name].append(
            (np.linalg.norm(read_factor, axis=1) * np.linalg.norm(state["c"], axis=1)).mean())

fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for name in local:
    axes[0].loglog(scales, pre_grad[name], "o-", label=name)
    axes[1].loglog(scales, local[name], "o-", label=name)
axes[0].set_ylabel(r"$\|\partial \bar\imath_t / \partial W_{ic}\|$ (the cell read)")
axes[1].set_ylabel(r"$\|\partial i_t / \partial W_{ic}\|$ (eq. 14 / 21)")
for ax in axes:
    ax.set_xlabel(r"$\|c_{t-1}\|$")
    ax.legend()
plt.tight_layout()
plt.show()
for k, scale in enumerate(scales):
    if k % 2 == 0:
        print(f"||c|| = {scale:7.2f}: read gradient peephole {pre_grad['peephole'][k]:9.3g}, "
              f"wmc {pre_grad['wmc'][k]:9.3g}; with sigma' peephole {local['peephole'][k]:9.3g}, "
              f"wmc {local['wmc'][k]:9.3g}")

# %% [markdown]
# Measured above: the gradient of the cell read grows linearly with $\|c\|$ for the peephole
# (400 at $\|c\|=100$) and far more slowly for WMC (about 80), because
# $1-\tanh^2(W_{ic}c)$ switches off every unit whose read has saturated; only units with a small
# read still pass gradient. With $\sigma'$ included (right) the gap narrows to about 1.3-1.5x:
# the peephole's gate itself saturates (its pre-activation holds the raw, large $W_{ic}c$, so
# $\sigma'\to 0$), while WMC's bounded read keeps its gate in range. The peephole's weight
# gradient is large exactly while its gate is being pushed into saturation. The two factors of
# $\hat\delta i_t$ (eq. 15) are also available on their own:

# %%
state = {"h": np.zeros((8, H)), "c": 5.0 * direction}
_, _, cache = npcell.forward(wmc, x1, state, fused=False)
step = cache.steps[0]
print("mean sigma'(i-bar), eq. (11):", diagnostics.gate_derivative(wmc, step, "i").mean())
print("mean delta-hat i, eq. (15):  ", diagnostics.delta_hat(wmc, step, "i").mean())

# %% [markdown]
# ## Over a whole sequence: `diagnose` and `compare`
# On an adding-problem batch, `npcell.diagnose` (here through `diagnostics.compare`, which
# diagnoses several cells on the same batch) runs one forward and backward and keeps, per step,
# $\|c_t\|$, the gate saturation maps, the per-step contribution of each weight block to its
# gradient, and $\|\partial L/\partial h_t\|$, $\|\partial L/\partial c_t\|$.

# %%
T = 60 if QUICK else 150
x, y = make_batch(T, 16, np.random.default_rng(1))
cells = [npcell.make_cell(kind, 2, H, seed=0, forget_bias=1.0) for kind in ("lstm", "peephole", "wmc")]
result = diagnostics.compare(cells, x, y, task=f"adding T={T}")
print(result.summary())
plt.show()

# %% [markdown]
# Per-step weight-gradient contributions of the cell connections against the $\|c\|$ they
# read (eq. 14 vs eq. 21), and the gradient flow back in time:

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
plots.weight_grad_vs_cell_norm(list(result)[1:], ax=axes[0])
plots.grad_flow(list(result), ax=axes[1])
plt.show()

# %% [markdown]
# ## Take-away
# * The peephole feeds $c$ straight into the gate pre-activations, so its connection weights'
#   gradients scale with $\|c\|$ (eq. 21);
# * WMC's tanh bounds the read and multiplies the gradient by $\tanh'$ (eq. 15), which keeps the
#   eq. 14 gradients bounded when the cell state grows.
#
# Notebook 04 trains the cells and watches $\|c\|$ and saturation evolve.
