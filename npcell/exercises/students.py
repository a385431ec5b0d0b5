"""Per-student variants a student cannot choose: the seed comes from who submitted.

The instructor picks a salt (any text, one per course and term) and writes each student's file
with ``npcell exercises new NAME DIR --student ID --salt SALT``; ``package ... --salt SALT``
bakes the same salt into the autograder, which reads the submitter's ids from the platform's
metadata (on Gradescope ``/autograder/submission_metadata.json``, ``users[].id``) and grades
the variant :func:`student_seed` derives from them, whatever the file's ``NPCELL_VARIANT`` says.

    seed = int.from_bytes(sha256("npcell-student-variant" NUL salt NUL exercise NUL ids)[:4], "big")

with ``ids`` the submitters' ids as text, sorted and NUL-separated (a group shares one variant).
The salt only makes one course's assignment differ from another's; it is no secret that the
grading rests on (it travels in the autograder zip): what a student cannot change is their id.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import ConfigError

PREFIX = "npcell-student-variant"


def student_seed(salt: str, exercise: str, ids) -> int:
    """The variant seed (0 <= seed < 2**32) of the student(s) ``ids`` for ``exercise``."""
    ids = sorted(str(i) for i in ids)
    if not isinstance(salt, str) or not salt:
        raise ConfigError(f"the salt must be non-empty text; got {salt!r}")
    if not ids or any(not i or "\0" in i for i in ids):
        raise ConfigError(f"expected one or more non-empty student ids; got {ids!r}")
    text = "\0".join([PREFIX, salt, exercise, *ids])
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big")


def gradescope_ids(path) -> list[str]:
    """The submitters' ids from Gradescope's ``submission_metadata.json`` (``users[].id``).

    Raises ValueError with one line when the file is missing or holds no user ids."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read the submission metadata {path}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"the submission metadata {path} is not JSON ({err.msg})") from None
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, list) or not users:
        raise ConfigError(f"expected a 'users' list in {path} (Gradescope's submission metadata); "
                         f"got {type(users).__name__}")
    ids = []
    for user in users:
        uid = user.get("id") if isinstance(user, dict) else None
        if uid is None or isinstance(uid, bool) or str(uid) == "":
            raise ConfigError(f"expected every entry of 'users' in {path} to have an 'id'; got "
                             f"{user!r}"[:200])
        ids.append(str(uid))
    return ids


def mismatch_line(file_seed, seed, where="your account") -> str:
    """What to tell a student whose file records another variant than the one assigned."""
    said = ("no NPCELL_VARIANT (the paper's cell)" if file_seed is None
            else f"NPCELL_VARIANT = {file_seed}")
    return (f"Your file says {said}, but the variant assigned to you (from {where}) is "
            f"{seed}: it was graded as variant {seed}. Start from the file your instructor gave "
            "you, or ask for it again.")
