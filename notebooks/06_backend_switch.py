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
# # 06 · The backend switch: the same code on CuPy
#
# npcell's cells never import NumPy for their math: each function asks for the array module of
# the arrays it was given (`npcell.backend.array_module`). So the same cell runs on a GPU when
# its parameters and inputs are CuPy arrays, and `npcell.use_backend("cupy")` makes new cells
# there by default. This notebook runs one LSTM/WMC forward and backward on both backends,
# compares the numbers and the time.
#
# On a machine without CuPy or without a CUDA GPU every GPU cell below prints a message and
# skips: the notebook still runs top to bottom.

# %%
import os
import time

import numpy as np

import npcell
from npcell.backend import array_module, to_numpy

QUICK = os.environ.get("NPCELL_QUICK") == "1"
GPU = npcell.cupy_available()
print("current backend:", npcell.get_backend())
print("CuPy with a GPU:", GPU)
if not GPU:
    print("No CuPy/CUDA GPU here: the GPU cells below will skip. Install npcell[gpu] on a "
          "machine with an NVIDIA GPU to run them.")

# %% [markdown]
# ## One piece of code, two array modules

# %%
def run_once(cell, x, dh):
    """Forward + backward; works for any backend because nothing here names numpy or cupy."""
    h, state, cache = npcell.forward(cell, x)
    grads, dx, dstate0 = npcell.backward(cell, dh, cache)
    return h, grads, dx


# A GPU pays off on large batches; on a CPU-only machine keep the example small.
T, B, X, H = (200, 128, 8, 256) if GPU and not QUICK else (50, 16, 8, 64)
rng = np.random.default_rng(0)
x_host = rng.standard_normal((T, B, X))
dh_host = rng.standard_normal((T, B, H))
cpu_cell = npcell.make_cell("wmc", X, H, seed=0)
t0 = time.perf_counter()
h_cpu, grads_cpu, dx_cpu = run_once(cpu_cell, x_host, dh_host)
cpu_seconds = time.perf_counter() - t0
print(f"numpy: {cpu_seconds * 1e3:.1f} ms; array module of h: {array_module(h_cpu).__name__}")

# %% [markdown]
# ## The same on the GPU
# `cell.to("cupy")` copies the parameters; inputs are moved with `cupy.asarray`. Mixing a NumPy
# array into a CuPy cell raises a `BackendError` instead of copying silently.

# %%
if GPU:
    import cupy

    gpu_cell = cpu_cell.to("cupy")
    x_gpu, dh_gpu = cupy.asarray(x_host), cupy.asarray(dh_host)
    run_once(gpu_cell, x_gpu, dh_gpu)  # warm-up: kernel compilation, memory pool
    cupy.cuda.Device().synchronize()
    t0 = time.perf_counter()
    h_gpu, grads_gpu, dx_gpu = run_once(gpu_cell, x_gpu, dh_gpu)
    cupy.cuda.Device().synchronize()
    gpu_seconds = time.perf_counter() - t0
    print(f"cupy: {gpu_seconds * 1e3:.1f} ms ({cpu_seconds / gpu_seconds:.1f}x numpy)")
    print("max |h_gpu - h_cpu|:", float(np.abs(to_numpy(h_gpu) - h_cpu).max()))
    print("max |dW_gpu - dW_cpu|:",
          max(float(np.abs(to_numpy(grads_gpu[k]) - grads_cpu[k]).max()) for k in grads_cpu))
else:
    print("skipped: no GPU (the numbers above are the NumPy run only)")

# %% [markdown]
# ## Switching the default backend
# Inside `with npcell.use_backend("cupy"):` new cells live on the GPU; the previous backend is
# restored afterwards. A gradient check works there too (in float64).

# %%
if GPU:
    with npcell.use_backend("cupy"):
        cell = npcell.make_cell("lstm", 3, 4, seed=0)
        print(cell)
        x_small = cupy.asarray(rng.standard_normal((5, 2, 3)))
        print(npcell.gradcheck(cell, x_small, mode="fast").max_rel_error)
    print("backend after the block:", npcell.get_backend())
else:
    try:
        npcell.use_backend("cupy")
    except npcell.BackendError as err:
        print("as expected without a GPU, use_backend('cupy') raises BackendError:")
        print("   ", err)
    print("backend is still:", npcell.get_backend())

# %% [markdown]
# ## Take-away
# Computed from this notebook's run, and asserted:

# %%
assert npcell.get_backend() == "numpy"  # the default is restored after the block
if GPU:
    gap = max(float(np.abs(to_numpy(grads_gpu[k]) - grads_cpu[k]).max()) for k in grads_cpu)
    assert gap < 1e-8
    print(f"Take-away: the same WMC code ran on NumPy ({cpu_seconds * 1e3:.0f} ms) and CuPy "
          f"({gpu_seconds * 1e3:.0f} ms); the gradients agree to {gap:.0e}; the default "
          "backend came back to numpy after the block.")
else:
    print(f"Take-away: no GPU here, so only the NumPy run counted ({cpu_seconds * 1e3:.0f} ms "
          "for the WMC forward + backward); use_backend('cupy') refused with BackendError "
          "and the default backend stayed numpy.")
