"""``shoprank serve --demo`` answers at once: the demo experiments' traffic is seeded afterwards, in a background
thread, while the shop serves; the dashboard says so until it is done; a second start seeds nothing.

The serve command runs for real (migrate, import and embed a small catalog, the app, the waitress server it
builds); only the server's ``run()`` is wrapped so the test can talk to it and then stop it, and the seeding's
pacer is swapped for a gate, so "still seeding" is a state the test holds rather than a race it hopes to win.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

import webapp.waitress_server
from shopctl import demo
from shopctl.cli import cli
from shopctl.simulator import FlaskTransport, SimulationConfig, Simulator
from shoprank.users import set_password
from tests.conftest import free_port
from tests.live_servers import sign_in, stop_waitress
from tests.shop_support import MINI_CATALOG
from webapp.background import BackgroundProgress

REAL_CREATE_SERVER = webapp.waitress_server.create_waitress_server
PASSWORD = "demo-start-test-password"  # noqa: S105 - set on the throwaway demo login of a temporary database
SHOPPERS = 3


class Gate:
    """Stands in for the demo's ``Pacer``: after the first shopper the seeding thread waits for ``go``."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.go = threading.Event()
        self.rests = 0

    def pacer(self, share: float) -> Gate:
        assert share == demo.DEMO_TRAFFIC_SHARE
        return self

    def rest(self) -> None:
        self.rests += 1
        self.reached.set()
        assert self.go.wait(60), "the test never opened the gate"


def _serve_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, check: Callable[[Any, str], None]) -> str:
    """Run ``shoprank serve --demo`` on a temporary instance; ``check(app, url)`` runs while the server serves."""
    def create(app: Any, *, host: str, port: int, threads: int) -> Any:
        server = REAL_CREATE_SERVER(app, host=host, port=port, threads=threads)
        real_run = server.run

        def run() -> None:
            serving = threading.Thread(target=real_run, name="test-waitress", daemon=True)
            serving.start()
            try:
                check(app, f"http://127.0.0.1:{port}")
            finally:
                stop_waitress(server)
                serving.join(10)

        server.run = run
        return server

    monkeypatch.setattr(webapp.waitress_server, "create_waitress_server", create)
    env = {
        "SHOPRANK_INSTANCE_DIR": str(tmp_path / "instance"),
        "SHOPRANK_DEMO_CATALOG": str(MINI_CATALOG),
        "SHOPRANK_RERANKER_ALLOW_DOWNLOAD": "0",
        "SHOPRANK_DATABASE_URL": None,
        "SHOPRANK_INDEX_DIR": None,
        "SHOPRANK_REDIS_URL": None,
        "SHOPRANK_BROKER_URL": None,
    }
    args = ["serve", "--demo", "--demo-users", str(SHOPPERS), "--port", str(free_port())]
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def restore_log_levels() -> Iterator[None]:
    """``serve`` turns its loggers up to INFO for the console; put them back for the tests after this one."""
    names = ("shoprank", "webapp", "search", "catalog", "experiments", "reranking", "workers", "bm25s")
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _seeding_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "demo-traffic"]


def _dashboard(app: Any, url: str) -> requests.Session:
    services = app.extensions["shoprank"]
    with services.db.session() as session:
        set_password(session, demo.DEMO_EMAIL, PASSWORD)
    http, _ = sign_in(url, demo.DEMO_EMAIL, PASSWORD)
    return http


@pytest.mark.slow  # the real serve command twice: imports and embeds a catalog, loads the scorer, serves HTTP
def test_the_demo_serves_while_seeding_and_a_second_start_does_not_seed(tmp_path, monkeypatch, restore_log_levels):
    gate = Gate()
    monkeypatch.setattr(demo, "Pacer", gate.pacer)

    def while_seeding(app: Any, url: str) -> None:
        assert gate.reached.wait(60), "the seeding never simulated its first shopper"
        (seeding,) = _seeding_threads()
        assert seeding.is_alive()  # parked at the gate after one shopper: the seeding is under way

        assert requests.get(f"{url}/", timeout=30).status_code == 200
        answer = requests.get(f"{url}/api/search", params={"q": "headphones", "limit": 3}, timeout=30)
        assert answer.status_code == 200 and answer.json()["results"]
        http = _dashboard(app, url)
        notice = f"{demo.DEMO_TRAFFIC_NOTICE}: 1 of {SHOPPERS} shoppers"
        assert notice in http.get(f"{url}/dashboard/", timeout=30).text
        assert notice in http.get(f"{url}/dashboard/experiments/rerank-ab", timeout=30).text
        assert demo.DEMO_TRAFFIC_NOTICE not in requests.get(f"{url}/dashboard/login", timeout=30).text  # signed out

        gate.go.set()
        seeding.join(60)
        assert not seeding.is_alive()
        assert app.extensions["shoprank"].background.current() is None
        page = http.get(f"{url}/dashboard/", timeout=30)
        assert page.status_code == 200 and demo.DEMO_TRAFFIC_NOTICE not in page.text

    first = _serve_demo(tmp_path, monkeypatch, while_seeding)
    assert gate.rests == SHOPPERS  # one rest after every shopper
    assert f"simulating {SHOPPERS} shoppers in the background" in first
    assert f"demo traffic seeded: {SHOPPERS} shoppers" in first
    assert first.index("shoprank is running at") < first.index("simulating")  # listening before seeding

    def after_restart(app: Any, url: str) -> None:
        assert not _seeding_threads() and app.extensions["shoprank"].background.current() is None
        assert requests.get(f"{url}/", timeout=30).status_code == 200
        http = _dashboard(app, url)
        page = http.get(f"{url}/dashboard/", timeout=30).text
        assert "rerank-ab" in page and demo.DEMO_TRAFFIC_NOTICE not in page

    second = _serve_demo(tmp_path, monkeypatch, after_restart)
    assert "simulating" not in second and "demo traffic seeded" not in second
    assert "imported" not in second  # the catalog was there: no import, no embedding
    assert gate.rests == SHOPPERS


def test_a_failing_seeding_takes_the_notice_down_and_says_why() -> None:
    progress = BackgroundProgress()
    lines: list[str] = []

    class Broken:
        extensions: dict[str, Any] = {}

    thread = demo.start_demo_traffic(Broken(), 5, progress, pause=lambda: None, report=lines.append)  # type: ignore[arg-type]
    thread.join(30)
    assert progress.current() is None
    assert len(lines) == 1 and lines[0].startswith("demo traffic simulation failed: ")


def test_the_pacer_rests_in_proportion_to_the_work() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = demo.Pacer(0.25, clock=lambda: now[0], sleep=sleep)
    now[0] += 2.0  # two seconds of work
    pacer.rest()
    now[0] += 0.5
    pacer.rest()
    assert slept == [pytest.approx(6.0), pytest.approx(1.5)]  # work is a quarter of the time; the rest is rest
    flat_out = demo.Pacer(1.0, clock=lambda: now[0], sleep=sleep)
    now[0] += 3.0
    flat_out.rest()
    assert len(slept) == 2  # a share of 1 never rests
    with pytest.raises(ValueError, match="share"):
        demo.Pacer(0.0)


def test_background_progress_counts_to_its_total_and_ends() -> None:
    progress = BackgroundProgress()
    assert progress.current() is None
    progress.advance()  # nothing running: ignored
    progress.begin("Seeding", "shoppers", 2)
    progress.advance()
    progress.advance(5)
    snapshot = progress.current()
    assert snapshot is not None and (snapshot.done, snapshot.total, snapshot.unit) == (2, 2, "shoppers")
    progress.end()
    assert progress.current() is None


def test_a_paused_simulation_must_be_sequential() -> None:
    transport = FlaskTransport.__new__(FlaskTransport)  # never used: the run is refused first
    simulator = Simulator(transport, SimulationConfig(users=2, concurrency=2))
    with pytest.raises(ValueError, match="concurrency 1"):
        simulator.run(pause=lambda: None)
