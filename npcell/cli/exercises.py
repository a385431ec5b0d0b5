"""``npcell exercises list | new | check | bugs | plant``: gradient exercises and their grader."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UsageError
from ..exercises import BUGS, EXERCISES, grade, load_file, write_exercise


def add_cli_arguments(parser):
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    sub.add_parser("list", help="list the exercises")
    p = sub.add_parser("new", help="write a student file NAME.py into DIR")
    p.add_argument("name", metavar="NAME", help="exercise name (see `npcell exercises list`)")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--solution", action="store_true",
                   help="write the solution file instead (markers kept, for instructors)")
    p = sub.add_parser("check", help="grade a student file with gradient checks")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--exercise", default=None,
                   help="exercise name (default: the file's NPCELL_EXERCISE, else its file name)")
    p.add_argument("--json", action="store_true", help="print the grade as JSON")
    sub.add_parser("bugs", help="list the planted-bug catalogue")
    p = sub.add_parser("plant", help="write the solution file with one planted bug into DIR")
    p.add_argument("bug", metavar="BUG", help="bug name (see `npcell exercises bugs`)")
    p.add_argument("directory", metavar="DIR")


def _exercise(name):
    if name not in EXERCISES:
        raise UsageError(f"unknown exercise {name!r}; expected one of {list(EXERCISES)}")
    return EXERCISES[name]


def cli_main(args) -> int:
    if args.action == "list":
        for ex in EXERCISES.values():
            print(f"{ex.name:<18} {ex.title}")
        return 0
    if args.action == "new":
        path = write_exercise(_exercise(args.name), args.directory, solution=args.solution)
        print(f"wrote {path}; grade it with: npcell exercises check {path}")
        return 0
    if args.action == "bugs":
        for bug in BUGS.values():
            print(f"{bug.name:<36} [{bug.exercise}] {bug.description}  (shows in: "
                  f"{', '.join(bug.where[:4])}{', ...' if len(bug.where) > 4 else ''})")
        return 0
    if args.action == "plant":
        if args.bug not in BUGS:
            raise UsageError(f"unknown bug {args.bug!r}; see `npcell exercises bugs`")
        bug = BUGS[args.bug]
        directory = Path(args.directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{bug.exercise}.py"
        path.write_text(bug.source())
        print(f"wrote {path} (exercise {bug.exercise} with one planted bug); find it with: "
              f"npcell exercises check {path}")
        return 0
    # check
    path = Path(args.file)
    name = args.exercise
    if name is None:
        module = load_file(path)
        name = getattr(module, "NPCELL_EXERCISE", path.stem)
    result = grade(_exercise(name), path)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1, default=_json_default))
    else:
        print(result)
    return 0 if result.passed else 1


def _json_default(value):
    if isinstance(value, float) or hasattr(value, "item"):
        return float(value)
    return str(value)
