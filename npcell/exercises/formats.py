"""The documents a grade is written as: text, JSON, and what course platforms read.

* ``gradescope``: Gradescope's autograder ``results.json`` (top-level ``score``, ``tests[]``
  with ``score``/``max_score``/``status``/``visibility``/``output`` in markdown, ``output``,
  ``output_format``, ``execution_time``, ``stdout_visibility``).
* ``prairielearn``: PrairieLearn's external-grader ``results.json`` (``gradable``, ``score`` as a
  fraction 0-1, ``message``, ``output``, ``tests[]`` with ``points``/``max_points``).
* ``junit``: JUnit XML, one ``<testcase>`` per rubric part, ``<failure>`` when it lost points.

Each rubric part is one test, so a platform shows the student where the points went.
"""

from __future__ import annotations

import json
import math
from xml.etree import ElementTree

from ..errors import ConfigError

FORMATS = ("text", "json", "gradescope", "prairielearn", "junit")
PLATFORM_FORMATS = ("gradescope", "prairielearn", "junit")


def render(grade, fmt: str) -> str:
    """The document ``fmt`` of ``grade`` as text."""
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {FORMATS}; got {fmt!r}")
    if fmt == "text":
        return str(grade)
    if fmt == "junit":
        return junit(grade)
    document = {"json": lambda g: g.to_dict(), "gradescope": gradescope,
                "prairielearn": prairielearn}[fmt](grade)
    return json.dumps(document, indent=1, allow_nan=False)


def _title(grade):
    return f"npcell exercise {grade.exercise}"


def gradescope(grade) -> dict:
    """Gradescope results.json: one test per rubric part, the full feedback as ``output``."""
    tests = []
    for number, (part, earned) in enumerate(grade.parts, start=1):
        tests.append({
            "name": part.title, "number": str(number), "score": earned,
            "max_score": part.points, "status": "passed" if earned == part.points else "failed",
            "output": _markdown(grade.part_feedback(part)), "output_format": "md",
            "visibility": "visible", "tags": [part.key],
        })
    return {"score": grade.score, "execution_time": max(1, math.ceil(grade.seconds)),
            "output": _markdown(str(grade)), "output_format": "md",
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests,
            "extra_data": {"exercise": grade.exercise, "variant": grade.variant,
                           "status": grade.status, "wrong_variables": list(grade.wrong),
                           "flags": list(grade.flags), "isolation": grade.isolation}}


def prairielearn(grade) -> dict:
    """PrairieLearn external-grader results.json. ``gradable`` stays true for a graded failure
    (a syntax error is a graded 0); it is false only when the grader itself could not run."""
    tests = [{"name": part.title, "description": ", ".join(part.variables),
              "points": earned, "max_points": part.points,
              "message": "" if earned == part.points else grade.part_feedback(part).split("\n")[0],
              "output": grade.part_feedback(part)} for part, earned in grade.parts]
    fraction = grade.score / grade.max_score if grade.max_score else 0.0
    return {"gradable": True, "score": round(fraction, 6),
            "message": grade.message or ("passed" if grade.passed else
                                         f"{grade.score:g}/{grade.max_score:g}"),
            "output": str(grade), "tests": tests}


def junit(grade) -> str:
    """JUnit XML: a testsuite per grade, a testcase per rubric part."""
    failures = sum(1 for part, earned in grade.parts if earned < part.points)
    suite = ElementTree.Element("testsuite", name=_title(grade), tests=str(len(grade.parts)),
                                failures=str(failures), errors="0",
                                time=f"{grade.seconds:.3f}")
    for part, earned in grade.parts:
        case = ElementTree.SubElement(suite, "testcase", classname=f"npcell.exercises."
                                      f"{grade.exercise}", name=part.title, time="0")
        if earned < part.points:
            feedback = grade.part_feedback(part)
            failure = ElementTree.SubElement(
                case, "failure", message=feedback.split("\n")[0][:200],
                type="wrong" if grade.status == "graded" else grade.status)
            failure.text = feedback
    props = ElementTree.SubElement(suite, "properties")
    ElementTree.SubElement(props, "property", name="isolation", value=grade.isolation)
    out = ElementTree.SubElement(suite, "system-out")
    out.text = str(grade)
    root = ElementTree.Element("testsuites", name="npcell exercises")
    root.append(suite)
    return ElementTree.tostring(root, encoding="unicode", xml_declaration=True)


def _markdown(text: str) -> str:
    """Plain feedback as markdown that keeps its layout (a fenced block)."""
    return "```\n" + text.replace("```", "'''") + "\n```"
