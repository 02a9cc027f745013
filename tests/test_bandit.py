"""Static security scan: bandit over the application packages; a HIGH severity finding fails the build.

Findings that were reviewed and are not a risk carry ``# nosec BXXX - reason`` on the reported line; the second
test keeps those honest (a test id and a reason, never a bare ``# nosec``). MEDIUM findings are reported as
warnings so a reviewer sees them (docs/security.md lists the reviewed ones).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tests.conftest import service_missing
from tests.test_layers import PACKAGES  # every top-level package (that test fails when one is missing)

ROOT = Path(__file__).resolve().parent.parent
NOSEC = re.compile(r"#\s*nosec\b(.*)$")
JUSTIFIED = re.compile(r"^\s+B\d{3}(,\s*B\d{3})*\s+-\s+\S")


def _bandit() -> dict:
    try:
        import bandit  # noqa: F401
    except ImportError:
        service_missing("bandit is not installed (dev extra)")
    completed = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [sys.executable, "-m", "bandit", "-q", "-r", *PACKAGES, "-f", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.stdout, completed.stderr
    return json.loads(completed.stdout)


def test_bandit_finds_no_high_severity_issue():
    report = _bandit()
    assert report["errors"] == [], report["errors"]
    findings = report["results"]

    def line(r: dict) -> str:
        return f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_text']}"

    high = [line(r) for r in findings if r["issue_severity"] == "HIGH"]
    assert high == [], "HIGH severity bandit findings (fix, or '# nosec BXXX - reason' after review):\n" + "\n".join(
        high
    )
    for medium in (line(r) for r in findings if r["issue_severity"] == "MEDIUM"):
        warnings.warn(f"bandit MEDIUM, review it: {medium}", stacklevel=1)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_nosec_names_the_check_and_a_reason(package):
    bare = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = NOSEC.search(text)
            if match and not JUSTIFIED.match(match.group(1)):
                bare.append(f"{path.relative_to(ROOT)}:{number}: {text.strip()}")
    assert bare == [], "write '# nosec BXXX - why it is safe':\n" + "\n".join(bare)
