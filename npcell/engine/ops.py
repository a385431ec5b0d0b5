"""In-place operations on the engine's preallocated buffers: the twins of npcell.cells.ops
(``cell_read``, ``cell_read_back``) that write into ``out`` / add into ``dc`` instead of
allocating. The in-place activations are the device's (npcell.engine.device.GateMath)."""

from __future__ import annotations

from ..backend import array_module


def cell_read_into(c, W, bias, diagonal, out):
    """out <- W c [+ bias]: diagonal W (k, H) multiplies c (B, H) into out (B, k, H) viewed as
    (B, k*H); a full W (k*H, H) is a GEMM into out (B, k*H)."""
    if diagonal:
        B, H = c.shape
        array_module(c).multiply(c[:, None, :], W, out=out.reshape(B, -1, H))
    else:
        array_module(c).matmul(c, W.T, out=out)
    if bias is not None:
        out += bias


def cell_read_back_into(dz, W, diagonal, dc, scratch):
    """dc += dL/dc through a cell read z = W c: dz (B, k*H) -> W^T dz (full W (k*H, H)) or
    sum_k w_k * dz_k (diagonal W (k, H)); ``scratch`` (B, >= k*H) avoids allocation."""
    xp = array_module(dz)
    B, H = dc.shape
    if diagonal:
        k = W.shape[0] if W.ndim == 2 else 1
        prod = scratch[:, : k * H]
        xp.multiply(dz.reshape(B, k, H), W.reshape(k, H), out=prod.reshape(B, k, H))
        for n in range(k):
            dc += prod[:, n * H : (n + 1) * H]
    else:
        prod = scratch[:, :H]
        xp.matmul(dz, W, out=prod)
        dc += prod
