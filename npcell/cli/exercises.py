"""``npcell exercises list | new | check | package | notebook | bugs | plant | guide``.

``check`` exits 0 when the file passes, 1 when it is graded and loses points, and 2 when it
could not be graded at all (syntax error, exit call, timeout, flagged) with ``--format text|json``;
with a
platform format (gradescope, prairielearn, junit) it exits 0 whenever grading itself worked,
whatever the score, because the platform reads the score from the document. User errors (an
unknown exercise, a missing file) exit 2 with one line.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UsageError
from ..exercises import (
    BUGS,
    EXERCISES,
    FORMATS,
    draw,
    grade,
    read_header,
    render,
    students,
    write_exercise,
)
from ..exercises import package as packaging
from ..exercises.formats import PLATFORM_FORMATS
from ..exercises.guide import guide_path


def add_cli_arguments(parser):
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    sub.add_parser("list", help="list the exercises")
    p = sub.add_parser("new", help="write a student file NAME.py into DIR")
    p.add_argument("name", metavar="NAME", help="exercise name (see `npcell exercises list`)")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--variant", type=int, default=None, metavar="SEED",
                   help="a per-student variant of the cell drawn from SEED (lstm, peephole, wmc)")
    p.add_argument("--student", action="append", default=None, metavar="ID",
                   help="write this student's variant, derived from ID and --salt (repeat for "
                        "a group); the id their platform reports, e.g. Gradescope's user id")
    p.add_argument("--salt", default=None, metavar="TEXT",
                   help="the course's salt for --student (the same one `package --salt` bakes "
                        "into the autograder)")
    p.add_argument("--solution", action="store_true",
                   help="write the solution file instead (markers kept, for instructors)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p = sub.add_parser("check", help="grade a student file (sandboxed, rubric score)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--exercise", default=None,
                   help="exercise name (default: the file's NPCELL_EXERCISE, else its file name)")
    p.add_argument("--variant", type=int, default=None, metavar="SEED",
                   help="grade as this variant (default: the file's NPCELL_VARIANT)")
    p.add_argument("--metadata", default=None, metavar="PATH",
                   help="Gradescope's submission_metadata.json: grade the variant derived from "
                        "its users' ids and --salt, whatever the file's NPCELL_VARIANT says")
    p.add_argument("--salt", default=None, metavar="TEXT", help="the course's salt (--metadata)")
    p.add_argument("--format", choices=FORMATS, default="text", help="output document")
    p.add_argument("--out", default=None, metavar="PATH",
                   help="write the document to PATH instead of stdout")
    p.add_argument("--rubric", default=None, metavar="JSON",
                   help='points per part, e.g. \'{"dc": 30}\' or a .json file')
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="wall-clock limit of the student's code (default 20 s)")
    p = sub.add_parser("package", help="an autograder for a course platform, written to OUTDIR")
    p.add_argument("name", metavar="NAME")
    p.add_argument("outdir", metavar="OUTDIR")
    p.add_argument("--platform", choices=("gradescope", "prairielearn"), required=True)
    p.add_argument("--variant", type=int, default=None, metavar="SEED",
                   help="grade every submission as this variant (default: each file's own)")
    p.add_argument("--salt", default=None, metavar="TEXT",
                   help="per-student variants (gradescope): grade each submission as the "
                        "variant derived from the submitter's user id and this salt")
    p.add_argument("--rubric", default=None, metavar="JSON")
    p = sub.add_parser("notebook", help="an nbgrader source notebook NAME.ipynb in DIR")
    p.add_argument("name", metavar="NAME")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--variant", type=int, default=None, metavar="SEED")
    p.add_argument("--force", action="store_true", help="overwrite an existing notebook")
    sub.add_parser("bugs", help="list the planted-bug catalogue")
    sub.add_parser("guide", help="print the exercise guide installed with npcell (how grading "
                                 "works, what its messages mean, the bug catalogue)")
    p = sub.add_parser("plant", help="write the solution file with one planted bug into DIR")
    p.add_argument("bug", metavar="BUG", help="bug name (see `npcell exercises bugs`)")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")


def _exercise(name):
    if name not in EXERCISES:
        raise UsageError(f"unknown exercise {name!r}; expected one of {list(EXERCISES)}")
    return EXERCISES[name]


def _variant(ex, seed):
    if seed is not None and not ex.has_variants:
        raise UsageError(f"exercise {ex.name!r} has no variants; --variant works for "
                         "lstm, peephole, wmc")
    if seed is not None and seed < 0:
        raise UsageError(f"--variant must be a seed >= 0; got {seed}")
    return seed


def _student_seed(ex, ids, salt, variant, what):
    """The seed of ``--student`` / ``--metadata`` (None when neither is given)."""
    if ids is None and salt is None:
        return None
    if ids is None or not salt:
        raise UsageError(f"{what} and --salt go together (the salt the student files were "
                         "written with); got only one of them")
    if variant is not None:
        raise UsageError(f"--variant and {what} both choose the variant; give one of them")
    if not ex.has_variants:
        raise UsageError(f"exercise {ex.name!r} has no variants; {what} works for lstm, "
                         "peephole, wmc")
    try:
        return students.student_seed(salt, ex.name, ids)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _rubric(text):
    """--rubric: inline JSON or a path to a JSON file -> {part key: points}."""
    if text is None:
        return None
    source = Path(text).read_text() if Path(text).suffix == ".json" else text
    try:
        rubric = json.loads(source)
    except json.JSONDecodeError as err:
        raise UsageError(f"--rubric is not JSON ({err.msg}); expected e.g. "
                         "'{\"dc\": 30}'") from None
    if not isinstance(rubric, dict):
        raise UsageError(f"--rubric must be a JSON object of part -> points; got {rubric!r}")
    return rubric


def _write_new(path_fn, what):
    try:
        path = path_fn()
    except FileExistsError as err:
        raise UsageError(str(err)) from None
    print(f"wrote {path}; {what}")
    return 0


def cli_main(args) -> int:
    if args.action == "guide":
        print(guide_path().read_text(encoding="utf-8"), end="")
        return 0
    if args.action == "list":
        for ex in EXERCISES.values():
            print(f"{ex.name:<18} {ex.title}")
        return 0
    if args.action == "new":
        ex = _exercise(args.name)
        seed = _variant(ex, args.variant)
        assigned = _student_seed(ex, args.student, args.salt, seed, "--student")
        seed = seed if assigned is None else assigned
        variant = None if seed is None else draw(ex.name, seed)
        return _write_new(lambda: write_exercise(ex, args.directory, solution=args.solution,
                                                 variant=variant, force=args.force),
                          "grade it with: npcell exercises check "
                          f"{Path(args.directory) / ex.name}.py")
    if args.action == "bugs":
        for bug in BUGS.values():
            print(f"{bug.name:<36} [{bug.exercise}] {bug.description}  (names: {bug.variable})")
        return 0
    if args.action == "plant":
        if args.bug not in BUGS:
            raise UsageError(f"unknown bug {args.bug!r}; see `npcell exercises bugs`")
        bug = BUGS[args.bug]
        path = Path(args.directory) / f"{bug.exercise}.py"
        if path.exists() and not args.force:
            raise UsageError(f"{path} exists; pass --force to overwrite it")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(bug.source())
        print(f"wrote {path} (exercise {bug.exercise} with one planted bug); find it with: "
              f"npcell exercises check {path}")
        return 0
    if args.action == "package":
        ex = _exercise(args.name)
        try:
            path = packaging.package(ex, args.outdir, platform=args.platform,
                                     variant=_variant(ex, args.variant),
                                     rubric=_rubric(args.rubric), salt=args.salt)
        except ValueError as err:  # a salt where per-student variants cannot work, a rubric key
            raise UsageError(str(err)) from None
        print(f"wrote {path}")
        return 0
    if args.action == "notebook":
        ex = _exercise(args.name)
        try:
            path = packaging.write_notebook(ex, args.directory, variant=_variant(ex, args.variant),
                                            force=args.force)
        except FileExistsError as err:
            raise UsageError(str(err)) from None
        print(f"wrote {path} (nbgrader source notebook)")
        return 0
    # check
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"no exercise file at {path}")
    header = read_header(path)
    ex = _exercise(args.exercise or header["exercise"] or path.stem)
    seed = _variant(ex, args.variant)  # None: the file's own NPCELL_VARIANT
    ids = None
    if args.metadata is not None:
        try:
            ids = students.gradescope_ids(args.metadata)
        except ValueError as err:
            raise UsageError(str(err)) from None
    elif args.salt is not None:
        raise UsageError("--salt needs --metadata (the submission's metadata file)")
    assigned = _student_seed(ex, ids, args.salt, seed, "--metadata")
    seed = seed if assigned is None else assigned
    options = {} if args.timeout is None else {"timeout": args.timeout}
    try:
        result = grade(ex, path, variant=seed, rubric=_rubric(args.rubric), **options)
    except ValueError as err:  # a rubric naming parts this exercise does not have
        raise UsageError(str(err)) from None
    if assigned is not None and header["variant"] != assigned:
        result.warnings.append(students.mismatch_line(header["variant"], assigned,
                                                      "your Gradescope account"))
    document = render(result, args.format)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(document)  # after the child has ended: overwrites anything it wrote
    else:
        print(document)
    if args.format in PLATFORM_FORMATS:
        return 0
    if result.status != "graded":  # the file could not be graded: syntax error, exit, timeout
        return 2
    return 0 if result.passed else 1
