"""The layer map in ARCHITECTURE.md holds: no import goes up a layer or across independent packages, and no
module import cycle exists. The map is parsed from the document itself, so it is written once."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("shopctl", "shoprank", "webapp", "search", "workers", "catalog", "experiments", "reranking")


@dataclass(frozen=True)
class Layers:
    """Each listed name → (layer index, 0 = top; independent group within the layer)."""

    position: dict[str, tuple[int, int]]

    @classmethod
    def parse(cls, text: str) -> Layers:
        block = re.search(r"```layers\n(.*?)```", text, re.S)
        assert block, "ARCHITECTURE.md has no ```layers block"
        position: dict[str, tuple[int, int]] = {}
        for layer, line in enumerate(line for line in block.group(1).splitlines() if line.strip()):
            for group, names in enumerate(line.split("|")):
                for name in names.split():
                    assert name not in position, f"{name} is listed twice"
                    position[name] = (layer, group)
        return cls(position)

    def of(self, module: str) -> str | None:
        """The longest listed name that is ``module`` or contains it."""
        parts = module.split(".")
        for end in range(len(parts), 0, -1):
            name = ".".join(parts[:end])
            if name in self.position:
                return name
        return None

    def violation(self, source: str, target: str) -> str | None:
        """Why ``source`` may not import ``target``, or None when it may."""
        a, b = self.of(source), self.of(target)
        if a is None or b is None or a == b:
            return None
        (layer_a, group_a), (layer_b, group_b) = self.position[a], self.position[b]
        if layer_b < layer_a:
            return f"{source} ({a}) imports {target} ({b}), a higher layer"
        if layer_b == layer_a and group_a != group_b:
            return f"{source} ({a}) imports {target} ({b}), an independent package of the same layer"
        return None


def module_files(packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imports_of(module: str, source: str, known: set[str], *, runtime_only: bool) -> Iterator[str]:
    """The known modules ``module`` imports (lazy ones inside functions too; ``TYPE_CHECKING`` blocks only
    unless ``runtime_only``): ``from pkg import sub`` counts as importing ``pkg.sub`` when that is a module."""
    tree = ast.parse(source)
    skipped: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped.update(id(inner) for inner in ast.walk(node))
    is_package = module in known and (ROOT / module.replace(".", "/") / "__init__.py").exists()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                parts = parts if is_package else parts[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                yield name


def import_graph(runtime_only: bool) -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    return {
        m: set(imports_of(m, p.read_text(encoding="utf-8"), known, runtime_only=runtime_only)) for m, p in files.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


@pytest.fixture(scope="module")
def layers() -> Layers:
    return Layers.parse((ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"))


def test_every_package_is_on_the_map(layers):
    missing = [package for package in PACKAGES if package not in layers.position]
    assert not missing, f"add {missing} to the layers block of ARCHITECTURE.md"
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert on_disk <= set(PACKAGES), f"new top-level package(s) {on_disk - set(PACKAGES)}: put them on the map"


def test_no_import_goes_up_a_layer_or_across_independent_packages(layers):
    problems = [
        why
        for source, targets in import_graph(runtime_only=False).items()
        for target in sorted(targets)
        if (why := layers.violation(source, target))
    ]
    assert not problems, "\n".join(problems)


def test_no_module_import_cycles():
    found = cycles(import_graph(runtime_only=True))
    assert not found, "import cycles:\n" + "\n".join(" ↔ ".join(c) for c in found)


def test_the_checks_catch_what_they_are_for(layers):
    """The checker itself: an upward import, a sideways one, a lazy one and a cycle are all reported."""
    assert layers.violation("reranking.cache", "shoprank.config")
    assert layers.violation("experiments.store.ingest", "search.index")
    assert layers.violation("experiments.manage", "catalog.models")  # independent packages of one layer
    assert layers.violation("search.service", "workers.client")
    assert layers.violation("shoprank.config", "webapp.errors")
    assert layers.violation("webapp.services", "workers.client") is None
    assert layers.violation("shopctl.cli.data_commands", "webapp") is None
    assert layers.of("shopctl.cli.data_commands") == "shopctl"
    assert layers.of("shoprank.db") == "shoprank"

    lazy = "def f():\n    from webapp.errors import ApiError\n"
    assert list(imports_of("reranking.cache", lazy, {"reranking.cache", "webapp.errors"}, runtime_only=True)) == [
        "webapp.errors"
    ]
    guarded = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from webapp.services import AppServices\n"
    known = {"webapp.context", "webapp.services"}
    assert list(imports_of("webapp.context", guarded, known, runtime_only=True)) == []
    assert list(imports_of("webapp.context", guarded, known, runtime_only=False)) == ["webapp.services"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
