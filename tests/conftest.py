"""Shared fixtures: a real tiny cross-encoder, real Redis, a private Redis we may stop.

Services are used for real. Where one is missing, its tests skip with the reason,
unless ``SHOPRANK_REQUIRE_SERVICES=1`` (set by ``.ci/run``): then they fail, so CI
can never pass by skipping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_URL = os.environ.get("SHOPRANK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("SHOPRANK_REQUIRE_SERVICES") == "1"

#: Fixtures that make a test slow, with why. A test that uses one (directly or through another fixture) is
#: marked ``slow`` at collection, so ``make test-fast`` (``-m "not slow"``) leaves it to ``make test``; a new test
#: on these fixtures is classified without anyone remembering to mark it. Tests slow for another reason carry
#: ``pytest.mark.slow`` themselves.
SLOW_FIXTURES = {
    "shop_db_url": "imports and embeds the demo catalog (once per session and backend: minutes on 2 cores)",
    "tiny_model_dir": "builds a random XLM-R cross-encoder (once per session)",
    "private_redis": "starts a redis-server of its own",
    "private_postgres": "initdb + pg_ctl: a PostgreSQL server of its own",
    "browser": "launches headless Chromium",
    "live_shop": "a real HTTP server on a freshly imported and embedded catalog",
    "hostile_server": "a real HTTP server on a freshly imported and embedded catalog",
}


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses a fixture of ``SLOW_FIXTURES`` as ``slow`` (see there; ``test_markers`` checks
    that each name is still a fixture, so a rename cannot quietly turn its tests "fast")."""
    for item in items:
        if SLOW_FIXTURES.keys() & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def service_missing(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight XLM-R cross-encoder saved with ``save_pretrained``, real XLM-R tokenizer."""
    from reranking.testing import build_random_cross_encoder

    return build_random_cross_encoder(tmp_path_factory.mktemp("tiny-xlmr-reranker"))


@pytest.fixture(scope="session")
def tiny_scorer_fp32(tiny_model_dir: Path):
    from reranking import load_scorer

    return load_scorer(model=str(tiny_model_dir), device="cpu", int8=False, allow_fallback=False)


@pytest.fixture(scope="session")
def tiny_scorer_int8(tiny_model_dir: Path):
    from reranking import load_scorer

    return load_scorer(model=str(tiny_model_dir), device="cpu", int8=True, allow_fallback=False)


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.RedisError as exc:
        service_missing(f"Redis at {REDIS_URL} unreachable: {exc}")
    return REDIS_URL


@pytest.fixture
def unique_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:10]}:"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A real redis-server of our own, so a test can stop it without hurting anyone else.

    ``restart()`` brings it back on the same port (empty: it never saves), as after a Redis crash.
    """

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    self.stop()
                    raise RuntimeError("private redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        service_missing("redis-server binary not installed")
    server = PrivateRedis(tmp_path)
    yield server
    server.stop()


# --- Shop / web app: real databases (a private PostgreSQL database per session), real first stage ---

POSTGRES_ADMIN_URL = os.environ.get("SHOPRANK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def postgres_factory():
    """Creates private PostgreSQL databases (other helpers share the server) and drops them at the end."""
    from tests.shop_support import PostgresFactory

    factory = PostgresFactory(POSTGRES_ADMIN_URL)
    if not factory.available():
        service_missing(f"PostgreSQL at {POSTGRES_ADMIN_URL} unreachable: {factory.error}")
    yield factory
    factory.drop_all()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def shop_db_url(request, tmp_path_factory):
    """A migrated database with the test catalog imported, once per backend per session."""
    from tests.shop_support import prepare_shop_database

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('shop-sqlite') / 'shop.db'}"
    else:
        url = request.getfixturevalue("postgres_factory").create()
    prepare_shop_database(url)
    return url


@pytest.fixture(scope="session")
def shop_services(shop_db_url):
    """App services on the shared database: real catalog index, in-process e5 fallback scorer."""
    from tests.shop_support import build_test_services

    services = build_test_services(shop_db_url)
    yield services
    services.close()


@pytest.fixture
def shop_app(shop_services):
    from webapp import create_app

    return create_app(services=shop_services)


@pytest.fixture
def client(shop_app):
    return shop_app.test_client()


# --- A private PostgreSQL server we may stop (fault tests) -------------------------------------------------------

POSTGRES_BIN = Path(os.environ.get("SHOPRANK_TEST_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))


class PrivatePostgres:
    """``initdb`` + ``pg_ctl`` in a temporary directory on a free port: a server a test can stop and start.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` OS user and every
    command runs through ``runuser``; otherwise as the current user. Trust auth on 127.0.0.1 only.
    """

    def __init__(self, bin_dir: Path) -> None:
        import tempfile

        self.bin_dir = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="shoprank-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as: list[str] = []
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        self.admin_url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self._as, str(self.bin_dir / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Fast shutdown: open sessions are terminated, as when the database server goes away."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def create_database(self, name: str) -> str:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if not (POSTGRES_BIN / "initdb").exists() or not (POSTGRES_BIN / "pg_ctl").exists():
        service_missing(f"PostgreSQL server binaries not found in {POSTGRES_BIN}")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        service_missing("running as root without runuser: cannot start PostgreSQL as the postgres user")
    server = PrivatePostgres(POSTGRES_BIN)
    yield server
    server.destroy()
