"""Optimisers (SGD with momentum / Nesterov, Adam) and global gradient-norm clipping.

An optimiser holds references to the arrays in a ``params`` dict and updates them in place
from a ``grads`` dict with the same keys. Its state (momentum buffers, Adam moments, step count)
is a flat ``{name: array}`` dict so a checkpoint can store it without pickle and a resumed run
continues bit for bit::

    opt = SGD(params, lr=1e-2, momentum=0.9, nesterov=True)
    norm = clip_grad_norm(grads, max_norm=1.0)   # rescales grads in place, returns the old norm
    opt.step(grads)
    arrays = opt.state_dict(); opt.load_state_dict(arrays)

The update rules follow PyTorch's ``torch.optim.SGD`` and ``torch.optim.Adam`` (tests compare
them), so the paper's "SGD with Nesterov, lr 1e-2, momentum 0.9" means the same thing here.
"""

from __future__ import annotations

import math

from ..backend import array_module, to_numpy
from ..errors import CheckpointError, ConfigError, ShapeError, key_difference, shape_str


def global_grad_norm(grads):
    """sqrt(sum over every tensor of sum(g^2)): the norm of all gradients as one vector.

    A 0-d array on the gradients' device (a NumPy scalar on NumPy): summing on the device and
    never reading the value back keeps a GPU training step free of synchronisation.
    """
    xp = array_module(*grads.values())
    return xp.sqrt(sum((g * g).sum() for g in grads.values()))


def clip_grad_norm(grads, max_norm):
    """Rescale every gradient in place so the global norm is at most ``max_norm``.

    Returns the norm *before* clipping (what a log wants to show), as a 0-d array like
    :func:`global_grad_norm`. Like PyTorch, the factor is max_norm / (norm + 1e-6), applied only
    when it is below 1; a NaN/Inf norm leaves the gradients as they are (the training loop
    decides what to do). The factor is computed and applied on the device: no ``if`` reads it.
    """
    if not max_norm > 0:
        raise ConfigError(f"max_norm must be > 0; got {max_norm!r}")
    xp = array_module(*grads.values())
    norm = global_grad_norm(grads)
    scale = max_norm / (norm + 1e-6)
    scale = xp.where(xp.isfinite(norm) & (scale < 1.0), scale, 1.0)  # 1: leave as they are
    for g in grads.values():
        g *= scale.astype(g.dtype)  # a float64 factor must not upcast a float32 gradient
    return norm


class Optimizer:
    """Base class: keeps the params dict, validates grads, saves and loads its state."""

    def __init__(self, params, lr):
        if not isinstance(params, dict) or not params:
            raise ConfigError("an optimiser needs a non-empty dict {name: array} of parameters")
        if not lr > 0:
            raise ConfigError(f"learning rate must be > 0; got {lr!r}")
        self.params = params
        self.lr = float(lr)
        self.state: dict = {}
        self.t = 0  # number of steps taken

    def _check(self, grads):
        difference = key_difference(self.params, grads)
        if difference:
            raise ShapeError(f"grads must have the parameters' keys; {difference}")
        for name, g in grads.items():
            if g.shape != self.params[name].shape:
                raise ShapeError(
                    f"gradient {name} has shape {shape_str(g.shape)}; its parameter has "
                    f"{shape_str(self.params[name].shape)}"
                )

    def step(self, grads):
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Host (NumPy) arrays: ``'<buffer>/<param name>'`` plus ``'t'`` (step count)."""
        import numpy

        out = {"t": numpy.asarray(self.t, dtype=numpy.int64)}
        for buffer_name, per_param in self.state.items():
            for name, value in per_param.items():
                out[f"{buffer_name}/{name}"] = to_numpy(value).copy()
        return out

    def load_state_dict(self, arrays: dict):
        """Restore what :meth:`state_dict` returned (same parameter names and shapes)."""
        if "t" not in arrays:
            raise CheckpointError("optimiser state has no step count 't'")
        xp = array_module(*self.params.values())
        state: dict = {}
        for key, value in arrays.items():
            if key == "t":
                continue
            buffer_name, _, name = key.partition("/")
            if name not in self.params:
                raise CheckpointError(f"optimiser state names unknown parameter {name!r}")
            if tuple(value.shape) != tuple(self.params[name].shape):
                raise CheckpointError(
                    f"optimiser buffer {key} has shape {shape_str(value.shape)}; the parameter "
                    f"has {shape_str(self.params[name].shape)}"
                )
            state.setdefault(buffer_name, {})[name] = xp.asarray(value).astype(
                self.params[name].dtype, copy=True)
        self.state = state
        self.t = int(arrays["t"])


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, PyTorch's form.

    buf <- momentum * buf + g               (buf = g at the first step)
    p   <- p - lr * (g + momentum * buf)    with nesterov
    p   <- p - lr * buf                     without
    """

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr)
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"momentum must be in [0, 1); got {momentum!r}")
        if nesterov and momentum == 0.0:
            raise ConfigError("nesterov=True needs momentum > 0")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)

    def step(self, grads):
        self._check(grads)
        self.t += 1
        buffers = self.state.setdefault("momentum", {})
        for name, p in self.params.items():
            g = grads[name]
            if self.weight_decay:
                g = g + self.weight_decay * p
            if self.momentum:
                if name not in buffers:
                    buffers[name] = g.copy()
                else:
                    buffers[name] *= self.momentum
                    buffers[name] += g
                direction = g + self.momentum * buffers[name] if self.nesterov else buffers[name]
            else:
                direction = g
            p -= self.lr * direction

    def __repr__(self):
        return f"SGD(lr={self.lr}, momentum={self.momentum}, nesterov={self.nesterov})"


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, PyTorch's form.

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
    p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ConfigError(f"Adam betas must be in [0, 1); got {betas!r}")
        self.beta1, self.beta2 = float(b1), float(b2)
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)

    def step(self, grads):
        self._check(grads)
        self.t += 1
        xp = array_module(*self.params.values())
        m_all = self.state.setdefault("m", {})
        v_all = self.state.setdefault("v", {})
        correction1 = 1.0 - self.beta1 ** self.t
        correction2 = 1.0 - self.beta2 ** self.t
        for name, p in self.params.items():
            g = grads[name]
            if self.weight_decay:
                g = g + self.weight_decay * p
            m = m_all.setdefault(name, xp.zeros_like(p))
            v = v_all.setdefault(name, xp.zeros_like(p))
            m *= self.beta1
            m += (1.0 - self.beta1) * g  # first moment
            v *= self.beta2
            v += (1.0 - self.beta2) * (g * g)  # second moment
            denom = xp.sqrt(v) / math.sqrt(correction2) + self.eps
            p -= (self.lr / correction1) * (m / denom)

    def __repr__(self):
        return f"Adam(lr={self.lr}, betas=({self.beta1}, {self.beta2}), eps={self.eps})"


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def make_optimizer(name, params, *, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    """Build an optimiser by name ('sgd' or 'adam')."""
    if name == "sgd":
        return SGD(params, lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if name == "adam":
        return Adam(params, lr, weight_decay=weight_decay)
    raise ConfigError(f"unknown optimiser {name!r}; expected one of {sorted(OPTIMIZERS)}")
