"""The wheel migrates a database on its own, as the container image's ``migrate`` service does.

The Dockerfile copies ``pyproject.toml``, ``README.md`` and the packages, runs ``pip install .`` and later
``shoprank db upgrade``; nothing of the checkout is left in the image. This test does the same outside the
checkout: builds the wheel from exactly those files, installs it (without dependencies) into a fresh virtual
environment in a temporary directory that sees this interpreter's dependencies but not the checkout or its
editable install, and migrates a fresh PostgreSQL database with the installed ``shoprank`` command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds a wheel and a virtual environment

ROOT = Path(__file__).resolve().parent.parent


def image_sources() -> list[str]:
    """What the Dockerfile's build stage copies before ``pip install .``, read from the Dockerfile itself."""
    sources: list[str] = []
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(word.startswith("--") for word in words):  # not COPY --from=build
            sources.extend(words[1:-1])
    return sources


def test_the_image_copies_every_package():
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    assert packages, "no top-level packages found"
    assert {"pyproject.toml", "README.md", *packages} <= set(image_sources())


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None, *, warnings: bool = True) -> str:
    """stdout of ``command``, which must succeed (and, unless ``warnings``, print no Python warning)."""
    if env is None:  # never the checkout: a PYTHONPATH to it would let pip think the wheel is installed already
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{command[:4]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert warnings or "Warning" not in result.stderr, f"{command[:4]} warned:\n{result.stderr[-3000:]}"
    return result.stdout


def _copy_image_sources(target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in image_sources():
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)


def test_installed_wheel_migrates_a_fresh_database(tmp_path, postgres_factory):
    source = tmp_path / "src"
    source.mkdir()
    _copy_image_sources(source)
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels), str(source)]
    _run(build, tmp_path, warnings=False)  # e.g. setuptools' BuildBackendWarning about pyproject.toml
    [wheel] = list(wheels.glob("shoprank-*.whl"))

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    python = venv / "bin" / "python"
    _run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", "--quiet", str(wheel)], tmp_path)
    # The dependencies come from this interpreter's site-packages as a plain path entry: its .pth files (the
    # checkout's editable install among them) are not run, so `import shoprank` can only find the wheel.
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site_packages = Path(_run([str(python), "-c", purelib], tmp_path).strip())
    dependencies = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site_packages / "zz_shoprank_test_dependencies.pth").write_text("\n".join(sorted(dependencies)) + "\n")

    url = postgres_factory.create()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "SHOPRANK_", "VIRTUAL_ENV"))}
    env.update(SHOPRANK_DATABASE_URL=url, HOME=str(tmp_path))
    where = _run([str(python), "-c", "import shoprank.migrate as m; print(m.MIGRATIONS_DIR)"], tmp_path, env)
    assert Path(where.strip()).is_relative_to(venv), where  # the installed copy, not the checkout
    _run([str(venv / "bin" / "shoprank"), "db", "upgrade"], tmp_path, env)
    current = _run([str(venv / "bin" / "shoprank"), "db", "current"], tmp_path, env)

    from shoprank import migrate

    assert migrate.current_revision(url) == migrate.head_revision()
    assert migrate.head_revision() in current
