"""``make test-fast`` runs ``pytest -m "not slow"``; ``tests/conftest.py`` marks a test ``slow`` by the fixtures it
uses. These checks keep that classification from drifting quietly: a renamed slow fixture would otherwise turn
its tests "fast", and a hook that stopped marking would make ``test-fast`` as slow as the whole suite."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import SLOW_FIXTURES, pytest_collection_modifyitems

TESTS = Path(__file__).resolve().parent


def test_every_slow_fixture_is_still_a_fixture() -> None:
    source = "\n".join(path.read_text(encoding="utf-8") for path in sorted(TESTS.glob("*.py")))
    for name in SLOW_FIXTURES:
        assert re.search(rf"@pytest\.fixture\b[^\n]*\n(?:@[^\n]*\n)*def {name}\(", source), f"no fixture {name!r}"


class _Item:
    def __init__(self, *fixturenames: str) -> None:
        self.fixturenames = list(fixturenames)
        self.markers: list[str] = []

    def add_marker(self, marker: pytest.MarkDecorator) -> None:
        self.markers.append(marker.name)


def test_tests_on_slow_fixtures_are_marked_slow_and_no_others() -> None:
    on_shop, on_model, plain = _Item("request", "client", "shop_db_url"), _Item("tiny_model_dir"), _Item("tmp_path")
    pytest_collection_modifyitems(None, None, [on_shop, on_model, plain])  # type: ignore[arg-type,list-item]
    assert on_shop.markers == ["slow"] and on_model.markers == ["slow"] and plain.markers == []


def test_the_slow_marker_is_declared(pytestconfig: pytest.Config) -> None:
    assert any(line.startswith("slow:") for line in pytestconfig.getini("markers"))  # --strict-markers needs it
