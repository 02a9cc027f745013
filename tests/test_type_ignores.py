"""Every ``# type: ignore`` in the type-checked packages names its error code and says why (docs/development.md).

mypy itself rejects an ignore without a code (``enable_error_code = ["ignore-without-code"]``) and one that no
longer silences anything (``warn_unused_ignores``); the reason is ours to check, here.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("shoprank", "webapp", "search", "workers", "catalog", "experiments", "reranking")
# `# type: ignore[code, code]` then `# reason` in the same comment token (tokenize gives the rest of the line)
IGNORE = re.compile(r"#\s*type:\s*ignore(?P<codes>\[[^\]]*\])?(?P<rest>.*)")
REASON = re.compile(r"^\s*#\s*\S.{2,}")


def ignore_problems(source: str) -> list[tuple[int, str]]:
    """``(line, problem)`` for each ``type: ignore`` comment without codes or without a reason after it."""
    problems = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        match = IGNORE.search(token.string)
        if match is None:
            continue
        if not match.group("codes") or not match.group("codes").strip("[] "):
            problems.append((token.start[0], "no error code"))
        elif not REASON.match(match.group("rest")):
            problems.append((token.start[0], "no reason"))
    return problems


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("x = f()  # type: ignore\n", "no error code"),
        ("x = f()  # type: ignore[]  # why\n", "no error code"),
        ("x = f()  # type: ignore[arg-type]\n", "no reason"),
        ("x = f()  # type: ignore[arg-type]  #\n", "no reason"),
        ("x = f()  # type: ignore[arg-type]  # the stub is wrong\n", None),
        ("x = f()  # type: ignore[call-overload,untyped-decorator]  # floats, see above\n", None),
        ("x = '# type: ignore'\n", None),
    ],
)
def test_the_check_itself(line: str, problem: str | None) -> None:
    assert ignore_problems(line) == ([(1, problem)] if problem else [])


def test_every_type_ignore_has_a_code_and_a_reason() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {problem}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, problem in ignore_problems(path.read_text(encoding="utf-8"))
    ]
    assert not found, "type: ignore needs [error-code] and '  # reason':\n" + "\n".join(found)
