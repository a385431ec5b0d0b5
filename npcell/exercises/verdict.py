"""The grader's verdict: :class:`Grade` (``str(grade)`` is the feedback a student reads) and
:class:`TensorCheck`, one returned tensor compared with its numerical derivative."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .rubric import owns


@dataclass
class TensorCheck:
    """One returned tensor, worst over the cases."""

    name: str
    ok: bool
    rel_error: float = 0.0
    problem: str = ""  # missing, wrong shape, not finite, not an array
    index: tuple | None = None
    yours: float = math.nan
    expected: float = math.nan
    signature: str = ""  # a pattern hint that fits (constant factor, transpose, shift, ...)


@dataclass
class Grade:
    """The grader's verdict. ``str(grade)`` is the feedback a student reads."""

    exercise: str
    variant: dict | None
    parts: list  # (Part, earned points)
    status: str = "graded"  # graded | error | flagged
    message: str = ""  # the one line for errors and flags
    wrong: list = field(default_factory=list)  # student variables located as wrong
    explanations: dict = field(default_factory=dict)  # variable -> lines of feedback
    tensors: dict = field(default_factory=dict)  # name -> TensorCheck
    notes: list = field(default_factory=list)
    flags: list = field(default_factory=list)
    warnings: list = field(default_factory=list)  # shown first: e.g. a variant mismatch
    output: str = ""  # what the student's code printed (not a grade)
    seconds: float = 0.0
    cases: tuple = ()
    isolation: str = ""  # sandbox.Isolation.line: the mode that graded and what it does not stop

    @property
    def score(self) -> float:
        return round(sum(earned for _, earned in self.parts), 2)

    @property
    def max_score(self) -> float:
        return round(sum(part.points for part, _ in self.parts), 2)

    @property
    def passed(self) -> bool:
        return self.status == "graded" and not self.wrong and self.score == self.max_score

    def failed_tensors(self) -> list[str]:
        return [n for n, t in self.tensors.items() if not t.ok]

    def to_dict(self) -> dict:
        return {
            "exercise": self.exercise, "variant": self.variant, "status": self.status,
            "score": self.score, "max_score": self.max_score, "passed": self.passed,
            "message": self.message, "wrong_variables": list(self.wrong),
            "parts": [{"key": p.key, "title": p.title, "points": p.points, "earned": e,
                       "variables": list(p.variables)} for p, e in self.parts],
            "failed_tensors": self.failed_tensors(),
            "tensors": {n: {"ok": t.ok, "rel_error": _finite(t.rel_error), "problem": t.problem,
                            "index": list(t.index) if t.index is not None else None,
                            "yours": _finite(t.yours), "expected": _finite(t.expected),
                            "hint": t.signature} for n, t in self.tensors.items()},
            "notes": list(self.notes), "flags": list(self.flags),
            "warnings": list(self.warnings), "output": self.output,
            "seconds": round(self.seconds, 3), "isolation": self.isolation,
            "feedback": str(self),
        }

    def part_feedback(self, part) -> str:
        """What to tell the student about one rubric part."""
        all_parts = [p for p, _ in self.parts]
        wrong = [v for v in self.wrong if owns(part, v, all_parts)]
        if self.status != "graded":
            return self.message
        if not wrong:
            return "correct"
        return "\n".join(line for v in wrong for line in self.explanations.get(v, [v]))

    def __str__(self) -> str:
        name = self.exercise
        if self.variant is not None:
            seed = self.variant.get("seed")
            name += " (the paper's cell)" if seed is None else f" (variant {seed})"
        lines = [f"npcell exercise {name}: {self.score:g}/{self.max_score:g}"
                 + ("  PASS" if self.passed else "")]
        for warning in self.warnings:
            lines += ["", "Warning: " + warning]
        if self.status != "graded":
            lines += ["", self.message]
        lines.append("")
        width = max(len(p.title) for p, _ in self.parts)
        all_parts = [p for p, _ in self.parts]
        for part, earned in self.parts:
            where = [v for v in self.wrong if owns(part, v, all_parts)]
            mark = f"   <- {', '.join(where)}" if where and self.status == "graded" else ""
            lines.append(f"  {part.title:<{width}}  {earned:>3g}/{part.points:g}{mark}")
        for variable in self.wrong:
            lines += [""] + self.explanations.get(variable, [variable])
        if self.passed:
            lines += ["", "Every returned tensor matches the numerical derivative of the forward "
                          "to float64 round-off. Well done."]
        for note in self.notes:
            lines += ["", "Note: " + note]
        if self.output.strip():
            shown = "\n".join("  | " + ln for ln in self.output.strip().splitlines()[:12])
            lines += ["", "What your code printed (shown for debugging; it is not a grade):",
                      shown]
        if self.cases:
            shapes = ", ".join(f"({b}, {x}, {h})" for b, x, h in self.cases)
            lines += ["", f"Graded in {self.seconds:.2f} s on {len(self.cases)} random cases "
                          f"(B, X, H) = {shapes} against complex-step derivatives of the forward."]
        if self.isolation:
            lines += ["", self.isolation]
        return "\n".join(lines)


def _finite(value):
    return float(value) if value is not None and math.isfinite(value) else None


