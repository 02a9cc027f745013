"""Every shell and Python example in the documentation (README.md and docs/) runs against a live demo server.

A reader pastes these examples; an example that fails when pasted (an unset ``$KEY``, a renamed parameter, a
removed endpoint) is a documentation bug, and this test is how it is caught. Each fenced block is one of:

* ``bash`` / ``sh`` / ``shell``: run by bash with ``set -euo pipefail`` (an unset variable fails), and ``curl``
  given ``--fail-with-body``, so a 4xx/5xx answer fails the example, not only a refused connection;
* ``python``: run by this interpreter in a subprocess;
* ``text`` / ``json`` / ``layers``: output, file listings or data, not examples;
* any of the first two preceded by ``<!-- not run: REASON -->`` (the reason is required): shown, not run
  (it needs a cluster, Docker, a GPU, the reader's own files, or minutes of benchmark).

A fence with another or no language fails the test, so a new example cannot slip through unclassified.

The server is the app behind waitress, on SQLite with the small fixture catalog
(``tests/fixtures/mini_catalog.jsonl``), at a free port; ``http://127.0.0.1:8000`` in an example (the demo's
address) is replaced with it. The ``shoprank`` command is the project's console script (``[project.scripts]``
in pyproject.toml), run with this interpreter, against the server's database. Each page's shell blocks run in
one bash session, in order, so a page must set what it uses (``export KEY=$(shoprank apikey create …)``).
Python blocks read ``KEY`` from the environment, as the docs say; the test creates that key through the same command.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.live_servers import LiveServer

REPO = Path(__file__).resolve().parents[1]
DEMO_URL = "http://127.0.0.1:8000"
SHELL = {"bash", "sh", "shell"}
PYTHON = {"python"}
NOT_EXAMPLES = {"text", "json", "layers"}
NOT_RUN = re.compile(r"<!--\s*not run:\s*(\S.*?)\s*-->")
FENCE = re.compile(r"^(`{3,})(.*)$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    language: str
    code: str
    not_run_reason: str | None

    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def documentation_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def fenced_blocks(path: Path) -> list[Block]:
    """The top-level fenced blocks of one Markdown file, with the ``not run`` marker on the line before, if any."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, info = opening.group(1), opening.group(2).strip()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence), None)
        assert end is not None, f"{path}:{i + 1}: unclosed fence"
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = NOT_RUN.search(previous)
        language = info.split()[0] if info else ""
        blocks.append(Block(path, i + 1, language, "\n".join(lines[i + 1 : end]), marker.group(1) if marker else None))
        i = end + 1
    return blocks


ALL_BLOCKS = [block for path in documentation_files() for block in fenced_blocks(path)]


def test_every_fence_is_an_example_that_runs_or_says_why_not() -> None:
    problems = []
    for block in ALL_BLOCKS:
        if block.language not in SHELL | PYTHON | NOT_EXAMPLES:
            problems.append(f"{block.where()}: fence language {block.language!r} (use bash, python, text or json)")
        elif block.not_run_reason is not None and block.language in NOT_EXAMPLES:
            problems.append(f"{block.where()}: a 'not run' marker on a {block.language} block, which never runs")
    assert not problems, "\n".join(problems)
    # the parser itself: a marker needs a reason, and the examples this test exists for are found
    assert not NOT_RUN.search("<!-- not run: -->")
    runnable = [b for b in ALL_BLOCKS if b.not_run_reason is None and b.language in SHELL | PYTHON]
    assert any("$KEY" in b.code for b in runnable) and any(b.language == "python" for b in runnable)


def console_script_module() -> str:
    """``shoprank = "pkg.mod:main"`` from pyproject, so the shim follows the packaging."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    return str(scripts["shoprank"])


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory):
    """The app on waitress with the small fixture catalog on SQLite, and a ``shoprank`` command for its database."""
    from tests.shop_support import MINI_CATALOG, build_test_services, prepare_shop_database
    from webapp import create_app

    directory = tmp_path_factory.mktemp("docs-examples")
    url = f"sqlite:///{directory / 'docs.db'}"
    prepare_shop_database(url, MINI_CATALOG)  # the small catalog: embedding the demo's takes minutes
    services = build_test_services(url)
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    module, function = console_script_module().split(":")
    shim = bin_dir / "shoprank"
    shim.write_text(f"#!{sys.executable}\nimport sys\nfrom {module} import {function}\nsys.exit({function}())\n")
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHOPRANK_") and k != "KEY"},
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "SHOPRANK_DATABASE_URL": url,
        "SHOPRANK_INSTANCE_DIR": str(directory / "instance"),
        "SHOPRANK_RERANKER_ALLOW_DOWNLOAD": "0",
    }
    with LiveServer(create_app(services=services), "waitress") as server:
        yield server.url, env
    services.close()


def _pages_with(languages: set[str]) -> list[Path]:
    return sorted({b.path for b in ALL_BLOCKS if b.language in languages and b.not_run_reason is None})


def _at(code: str, base_url: str) -> str:
    return code.replace(DEMO_URL, base_url)


@pytest.mark.parametrize("page", _pages_with(SHELL), ids=lambda p: str(p.relative_to(REPO)))
def test_shell_examples_run(page: Path, demo_server) -> None:
    base_url, env = demo_server
    blocks = [b for b in fenced_blocks(page) if b.language in SHELL and b.not_run_reason is None]
    script = ["set -euo pipefail", 'curl() { command curl --fail-with-body --silent --show-error "$@"; echo; }']
    for block in blocks:
        script += [f"echo '### {block.where()}' >&2", _at(block.code, base_url)]
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{page.name}: exit {done.returncode}\n{done.stderr[-3000:]}\n{done.stdout[-2000:]}"
    assert '"error"' not in done.stdout, done.stdout[-2000:]


@pytest.mark.parametrize(
    "block",
    [b for b in ALL_BLOCKS if b.language in PYTHON and b.not_run_reason is None],
    ids=lambda b: b.where(),
)
def test_python_examples_run(block: Block, demo_server) -> None:
    base_url, env = demo_server
    key = subprocess.run(
        ["shoprank", "apikey", "create", "--name", "docs-python"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.strip()
    done = subprocess.run(
        [sys.executable, "-c", _at(block.code, base_url)],
        cwd=REPO,
        env={**env, "KEY": key},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{block.where()}: exit {done.returncode}\n{done.stderr[-3000:]}"
