"""The rubric: the parts of each exercise, their points, and the rule that awards them.

**The rule.** A part earns its points only when (a) none of its variables is located as wrong
and (b) at least one returned tensor its variables feed is right. (b) is the evidence: a right
tensor that a variable feeds shows the variable and everything upstream of it right, for
generic inputs. So a blank or random submission, whose every tensor is wrong, earns nothing,
while a real one-variable bug costs the part of that variable and the parts whose tensors all
depend on it, and nothing else (worked example in docs/exercises.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from . import finite_difference, variants


@dataclass(frozen=True)
class Part:
    """One rubric line: what it is, its points, and the student variables it covers."""

    key: str
    title: str
    points: float
    variables: tuple


def default_rubric(exercise, variant=None) -> list[Part]:
    """The parts of an exercise's backward and their points (sum 100)."""
    if exercise.name == "finite_difference":
        names = [c.name for c in finite_difference.known_gradient_cases(0)]
        parts = [Part(f"test{n}", name, 16.0, (name,)) for n, name in enumerate(names)]
        return parts + [Part("restores_x", "x unchanged after the call", 20.0,
                             ("x unchanged after the call",))]
    if exercise.name == "gru":
        return [Part("update_gate", "update gate: da_z", 20, ("da_z",)),
                Part("reset_gate", "reset gate: da_r", 20, ("da_r",)),
                Part("candidate", "candidate: da_n", 20, ("da_n",)),
                Part("dh_prev", "dL/dh_{t-1}: dh_prev", 15, ("dh_prev",)),
                Part("weights", "parameter gradients", 15, ("*",)),
                Part("dx", "dL/dx_t: dx", 10, ("dx",))]
    v = variant or variants.base(exercise.name)
    reads = bool(v.reads)
    parts = [Part("output_gate", "output gate: da_o", 15, ("da_o",)),
             Part("dc", "dL/dc_t: dc", 15, ("dc",)),
             Part("input_gate", "input gate: da_i", 20 if v.coupled else 10, ("da_i",))]
    if not v.coupled:
        parts.append(Part("forget_gate", "forget gate: da_f", 10, ("da_f",)))
    parts += [Part("candidate", "candidate: da_g", 10, ("da_g",)),
              Part("carry", "carry: dc_prev", 10, ("dc_prev",))]
    if reads:
        cell_lines = tuple(f"d{n}" for n in v.param_shapes(1, 1) if n[-1] == "c")
        parts.append(Part("cell_reads", "cell reads: dz_i, dz_f, dz_o and their weights", 10,
                          ("dz_i", "dz_f", "dz_o", *cell_lines)))
    parts += [Part("weights", "parameter gradients: dW_kx, dW_kh, db_k", 15 if reads else 20,
                   ("*",)),
              Part("dx_dh_prev", "dx and dh_prev", 5 if reads else 10, ("dx", "dh_prev"))]
    return parts


def apply_rubric(parts, overrides) -> list[Part]:
    """Instructor points per part key: ``{"dc": 30, ...}``; unknown keys are a ConfigError."""
    if not overrides:
        return parts
    keys = [p.key for p in parts]
    unknown = [k for k in overrides if k not in keys]
    if unknown:
        raise ConfigError(f"rubric names unknown parts {unknown}; this exercise's parts: {keys}")
    for key, points in overrides.items():
        if isinstance(points, bool) or not isinstance(points, (int, float)) or points < 0:
            raise ConfigError(f"rubric points of {key!r} must be a number >= 0; got {points!r}")
    return [Part(p.key, p.title, float(overrides.get(p.key, p.points)), p.variables)
            for p in parts]


def owns(part, variable, parts) -> bool:
    """Whether ``variable`` belongs to ``part``: named by it, or the part is the catch-all
    ('*': every line no other part names, e.g. the single parameter-gradient lines)."""
    if variable in part.variables:
        return True
    explicit = {v for p in parts if "*" not in p.variables for v in p.variables}
    return "*" in part.variables and variable not in explicit


def award(parts, wrong, right, footprints) -> list[tuple]:
    """(part, earned) by the rule above: ``wrong`` the located variables, ``right`` the set of
    right tensors, ``footprints`` variable -> the tensors it feeds."""
    earned = []
    for part in parts:
        mine = [v for v in footprints if owns(part, v, parts)]
        fed = set().union(*(footprints[v] for v in mine)) if mine else set()
        ok = not any(owns(part, v, parts) for v in wrong) and bool(fed & right)
        earned.append((part, part.points if ok else 0.0))
    return earned
