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
# # 01 · The LSTM step by step (eq. 1-6), forward and backward
#
# This notebook builds one LSTM step by hand with NumPy, checks it against npcell's cell, then
# does the same for the backward pass, and ends with a gradient check. Equation numbers are
# those of the Working Memory Connections paper (Landi et al. 2021):
#
# $$
# \begin{aligned}
# g_t &= \tanh(W_{gx} x_t + W_{gh} h_{t-1} + b_g) && (1)\\
# i_t &= \sigma(W_{ix} x_t + W_{ih} h_{t-1} + b_i) && (2)\\
# f_t &= \sigma(W_{fx} x_t + W_{fh} h_{t-1} + b_f) && (3)\\
# c_t &= f_t \odot c_{t-1} + i_t \odot g_t && (4)\\
# o_t &= \sigma(W_{ox} x_t + W_{oh} h_{t-1} + b_o) && (5)\\
# h_t &= o_t \odot \tanh(c_t) && (6)
# \end{aligned}
# $$
#
# The same cell in the *teaching notation* (remember / save / focus, long-term memory `ltm`,
# working memory `wm`) is npcell's `teaching` cell:
#
# | teaching | paper | role |
# |---|---|---|
# | remember `rem` | forget gate $f$ | what to keep of the old memory |
# | save | input gate $i$ | how much of the candidate to store |
# | ltm′ | candidate $g$ | the new memory proposal (tanh!) |
# | focus | output gate $o$ | what part of the memory to show |
# | ltm | cell $c$ | long-term memory |
# | wm | hidden $h$ | working memory, the output |

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

import npcell
from npcell.cells.ops import dsigmoid, dtanh, sigmoid

QUICK = os.environ.get("NPCELL_QUICK") == "1"
rng = np.random.default_rng(0)

cell = npcell.make_cell("lstm", input_size=3, hidden_size=4, seed=0)
print(cell.describe())

# %% [markdown]
# ## One forward step by hand
# Weights are stored as the papers write them, `W` is (out, in), so a batch of row vectors
# $x_t$ of shape (B, X) meets `W.T`. Arrays are time-major: a sequence is (T, B, X).

# %%
p = cell.params
B = 2
x_t = rng.standard_normal((B, 3))
h_prev = 0.5 * rng.standard_normal((B, 4))
c_prev = rng.standard_normal((B, 4))

g = np.tanh(x_t @ p["W_gx"].T + h_prev @ p["W_gh"].T + p["b_g"])  # eq. (1)
i = sigmoid(x_t @ p["W_ix"].T + h_prev @ p["W_ih"].T + p["b_i"])  # eq. (2)
f = sigmoid(x_t @ p["W_fx"].T + h_prev @ p["W_fh"].T + p["b_f"])  # eq. (3)
c = f * c_prev + i * g  # eq. (4)
o = sigmoid(x_t @ p["W_ox"].T + h_prev @ p["W_oh"].T + p["b_o"])  # eq. (5)
h = o * np.tanh(c)  # eq. (6)

state, cache_t = cell.step_forward(p, x_t, {"h": h_prev, "c": c_prev})
print("h by hand == cell.step_forward:", np.allclose(h, state["h"]), np.allclose(c, state["c"]))
print("the step cache holds:", sorted(cache_t))

# %% [markdown]
# The teaching cell is the same function with other names: copy the weights across with
# `teaching_to_lstm_params` / `lstm_to_teaching_params` and the outputs agree.

# %%
from npcell.cells.teaching import lstm_to_teaching_params

teacher = npcell.make_cell("teaching", 3, 4)
teacher.set_params(lstm_to_teaching_params(cell.params))
t_state, _ = teacher.step_forward(teacher.params, x_t, {"h": h_prev, "c": c_prev})
print("teaching wm == lstm h:", np.allclose(t_state["h"], state["h"]))
print("teaching parameter names:", list(teacher.params))

# %% [markdown]
# ## One backward step by hand
# Given $\partial L/\partial h_t$ (loss at $t$ plus what flows back from $t+1$) and
# $\partial L/\partial c_t$ carried from $t+1$, the chain rule through eq. (6), (4) and the
# gate nonlinearities gives, with $\sigma' = s(1-s)$ and $\tanh' = 1-t^2$ written in terms of the
# *outputs*:
#
# $$
# \begin{aligned}
# \delta a_o &= \delta h \odot \tanh(c_t) \odot o(1-o)\\
# \delta c_t &= \delta c_t^{\text{carried}} + \delta h \odot o \odot (1-\tanh^2 c_t)\\
# \delta a_i &= \delta c_t \odot g \odot i(1-i), \quad
# \delta a_f = \delta c_t \odot c_{t-1} \odot f(1-f), \quad
# \delta a_g = \delta c_t \odot i \odot (1-g^2)\\
# \delta c_{t-1} &= \delta c_t \odot f_t \quad\text{(the constant error carousel)}\\
# \delta W_{kx} &= \delta a_k^\top x_t, \quad \delta W_{kh} = \delta a_k^\top h_{t-1},\quad
# \delta b_k = \textstyle\sum_{\text{batch}} \delta a_k\\
# \delta h_{t-1} &= \textstyle\sum_k \delta a_k W_{kh}, \quad \delta x_t = \sum_k \delta a_k W_{kx}
# \end{aligned}
# $$

# %%
dh = rng.standard_normal((B, 4))
dc_next = rng.standard_normal((B, 4))
tanh_c = np.tanh(c)

da_o = dh * tanh_c * dsigmoid(o)  # dL/da_o: through eq. (6), sigma' of eq. (5)
dc = dc_next + dh * o * dtanh(tanh_c)  # dL/dc_t: carried + through eq. (6)
da_i = dc * g * dsigmoid(i)  # dL/da_i: through i*g of eq. (4)
da_f = dc * c_prev * dsigmoid(f)  # dL/da_f: through f*c_{t-1} of eq. (4)
da_g = dc * i * dtanh(g)  # dL/da_g: tanh' of eq. (1)
dc_prev = dc * f  # dL/dc_{t-1}
pre = {"i": da_i, "f": da_f, "g": da_g, "o": da_o}
dW_ih = da_i.T @ h_prev  # (H, H): out x in, like W_ih
db_f = da_f.sum(axis=0)  # the bias is shared by the batch: sum
dh_prev = sum(pre[k] @ p[f"W_{k}h"] for k in pre)

grads_t, dx_t, dstate_prev = cell.step_backward(p, {"h": dh, "c": dc_next}, cache_t)
print("dW_ih:", np.allclose(dW_ih, grads_t["W_ih"]), " db_f:", np.allclose(db_f, grads_t["b_f"]))
print("dh_prev:", np.allclose(dh_prev, dstate_prev["h"]),
      " dc_prev:", np.allclose(dc_prev, dstate_prev["c"]))

# %% [markdown]
# ## A whole sequence: BPTT
# `npcell.forward` / `npcell.backward` run T steps. The same weights act at every step, so each
# weight gradient is the **sum** over t of the per-step gradients. The driver has a fused path
# (one input GEMM for all T, weight gradients as one GEMM after the loop) and a stepwise path
# that loops the two functions above; they give the same numbers.

# %%
T = 20
x = rng.standard_normal((T, B, 3))
dh_seq = rng.standard_normal((T, B, 4))
h_fused, _, cache_fused = npcell.forward(cell, x)
h_step, _, cache_step = npcell.forward(cell, x, fused=False)
g_fused, dx_fused, d0_fused = npcell.backward(cell, dh_seq, cache_fused)
g_step, dx_step, d0_step = npcell.backward(cell, dh_seq, cache_step)
print("paths:", cache_fused.path, "vs", cache_step.path)
print("max |h difference|:", np.abs(h_fused - h_step).max())
print("max |dW difference|:", max(np.abs(g_fused[k] - g_step[k]).max() for k in g_fused))

# %% [markdown]
# ## Walk the backward pass step by step
# `npcell.stepper` shows the same BPTT one step at a time: at step t, what arrives
# ($\partial L/\partial h_t$ = the loss's part + the part carried from t+1, and the carried
# $\partial L/\partial c_t$), each local gradient beside the line of `lstm_step_backward` that
# computes it with its `# eq. (N)` tag, the weight gradients summed so far, and the carries'
# norms over t. Click ◀ / ▶ (or use the arrow keys); switch to *forward* to see the gates. It
# starts at t = T-1, where BPTT starts. `view.save_html("page.html")` writes it as one page.

# %%
T_walk = 10
view = npcell.stepper(cell, x[:T_walk], dh=dh_seq[:T_walk])
view.step_back().step_back()  # from t = 9 down to t = 7, as the ◀ button does
display(view)  # the widget (an anywidget); without the extra, the same page in an iframe

# %% [markdown]
# What the view shows at a step is `npcell.backward`'s own number there (its `on_step` hook
# sees every step of the one BPTT loop):

# %%
seen = {}
_, _, cache_walk = npcell.forward(cell, x[:T_walk], fused=False)
npcell.backward(cell, dh_seq[:T_walk], cache_walk,
                on_step=lambda t, dstate_t, grads_t, dx_t, prev: seen.setdefault(t, (dstate_t, prev)))
shown = view.shown()
dstate_7, prev_7 = seen[view.step]
stepper_gap = max(np.abs(shown["dh"] - dstate_7["h"]).max(),
                  np.abs(shown["dc_carried"] - dstate_7["c"]).max(),
                  np.abs(shown["dc_prev"] - prev_7["c"]).max(),
                  np.abs(shown["dh_prev"] - prev_7["h"]).max())
print(f"step {view.step}: stepper vs npcell.backward, max difference {stepper_gap:.1e}")
print("dc_prev is computed by:", view.data["walks"]["lstm"]["source"]["dc_prev"]["code"])

# %% [markdown]
# ## Gradient check
# Central differences in float64 against the analytic gradients. `fast` mode checks one random
# direction per tensor, per gate block and per time step (2 forwards each); `full` checks every
# entry. Expect relative errors of 1e-11 to 1e-7 per element (the pass mark is 1e-6); a real
# bug gives 1e-3 to 2.

# %%
report = npcell.gradcheck(cell, x[:6], mode="full")
print(report)

# %% [markdown]
# ## What the gates do over a sequence
# Gate activations of one sequence, unit by unit: a quick look at how often the gates sit near
# 0 or 1 (saturation, the subject of notebooks 02 and 04).

# %%
T_plot = 60 if QUICK else 200
x_long = rng.standard_normal((T_plot, 1, 3))
_, _, cache_long = npcell.forward(cell, x_long, fused=False)
fig, axes = plt.subplots(1, 4, figsize=(12, 2.6), sharey=True, layout="constrained")
images = {}
for ax, gate in zip(axes, ["i", "f", "o", "g"]):
    values = np.stack([step[gate][0] for step in cache_long.steps])  # (T, H)
    # sigmoid gates live in (0, 1), the candidate g in (-1, 1): each gets its own colour scale
    if gate == "g":
        images[gate] = ax.imshow(values.T, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1)
    else:
        images["sigmoid"] = ax.imshow(values.T, aspect="auto", cmap="viridis", vmin=0, vmax=1)
    ax.set_title(f"gate {gate}")
    ax.set_xlabel("t")
    ax.grid(False)
axes[0].set_ylabel("unit")
fig.colorbar(images["sigmoid"], ax=axes[:3], shrink=0.8, label="i, f, o in (0, 1)")
fig.colorbar(images["g"], ax=axes[3], shrink=0.8, label="g in (-1, 1)")
plt.show()

# %% [markdown]
# ## Take-away
# Computed from the numbers above (and asserted, so a wrong claim fails the notebook run):

# %%
near_edge = {gate: float(np.mean([(np.abs(step[gate][0] - 0.5) > 0.45) for step in cache_long.steps]))
             for gate in ["i", "f", "o"]}
path_gap = max(np.abs(h_fused - h_step).max(), max(np.abs(g_fused[k] - g_step[k]).max() for k in g_fused))
assert report.ok and path_gap < 1e-10
assert view.step == 7 and stepper_gap == 0.0
assert np.allclose(dW_ih, grads_t["W_ih"]) and np.allclose(dc_prev, dstate_prev["c"])
print(f"Take-away: the hand-written step backward matches cell.step_backward; the fused and "
      f"stepwise drivers agree to {path_gap:.1e}; gradcheck passes (worst relative error "
      f"{report.max_rel_error:.1e}); the stepper shows npcell.backward's own values at step "
      f"{view.step}; at PyTorch's init the gates rarely sit near 0 or 1 "
      f"({', '.join(f'{g} {100 * v:.0f}%' for g, v in near_edge.items())} of (t, unit)).")
