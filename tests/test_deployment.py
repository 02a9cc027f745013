"""docker-compose.yml, Dockerfile and .env.example checked against the code they deploy.

`docker compose config` needs a Docker engine, which this sandbox (and CI) does not have, so the compose
file is parsed with PyYAML and every command is resolved against the real click CLI and gunicorn's own
option parser: a renamed subcommand or option fails here instead of in a container restart loop.
"""

from __future__ import annotations

import importlib
import re
import shlex
import tomllib
import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from shopctl.cli import cli
from shoprank.config import Settings

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
LONG_RUNNING = ("postgres", "redis-broker", "redis-cache", "web", "worker-cpu", "worker-gpu")
APP_SERVICES = ("migrate", "web", "worker-cpu", "worker-gpu", "warm-head")
SETTINGS_ENV = {f.metadata["env"] for f in fields(Settings)}


def _argv(value: Any) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else [str(part) for part in value]


def _commands() -> list[tuple[str, list[str]]]:
    """Every command line in the file: service commands and healthcheck tests (CMD form)."""
    found = []
    for name, service in SERVICES.items():
        if "command" in service:
            found.append((f"{name}.command", _argv(service["command"])))
        test = service.get("healthcheck", {}).get("test")
        if test:
            argv = _argv(test)
            if argv[0] in ("CMD", "CMD-SHELL"):
                argv = argv[1:] if argv[0] == "CMD" else shlex.split(argv[1])
            found.append((f"{name}.healthcheck", argv))
    return found


def _remaining(ctx: click.Context) -> list[str]:
    with warnings.catch_warnings():  # Click 8.2 deprecates protected_args (merged into args in Click 9)
        warnings.simplefilter("ignore", DeprecationWarning)
        return [*getattr(ctx, "protected_args", []), *ctx.args]


def resolve_cli(argv: list[str]) -> click.Command:
    """Parse ``shoprank ARGS`` down to the leaf command without running it; click raises on any bad option."""
    ctx = cli.make_context("shoprank", list(argv))
    command: click.Command = cli
    args = _remaining(ctx)
    while isinstance(command, click.Group):
        name, sub, rest = command.resolve_command(ctx, args)
        assert sub is not None, f"no subcommand {name!r}"
        ctx = sub.make_context(name, list(rest), parent=ctx)
        command, args = sub, _remaining(ctx)
    assert not args, f"unexpected arguments {args}"
    return command


@pytest.mark.parametrize(
    "argv",
    [["worker", "--device", "gpu"], ["worker", "--devices", "cpu"], ["db", "upgrad"], ["worker-health", "--x"]],
)
def test_the_cli_resolver_rejects_what_the_real_cli_rejects(argv):
    with pytest.raises((click.UsageError, click.BadParameter)):
        resolve_cli(argv)


def test_required_services_with_healthchecks_and_restart_policies():
    assert set(SERVICES) >= {*LONG_RUNNING, "migrate"}
    for name in LONG_RUNNING:
        service = SERVICES[name]
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert service.get("restart") in ("unless-stopped", "always", "on-failure"), f"{name} restart policy"
    assert SERVICES["postgres"]["image"].startswith("postgres:16")
    assert "pg_isready" in SERVICES["postgres"]["healthcheck"]["test"]
    assert any(volume.startswith("pgdata:") for volume in SERVICES["postgres"]["volumes"])
    assert "pgdata" in COMPOSE["volumes"]


def test_migrate_is_a_one_shot_db_upgrade_that_web_and_workers_wait_for():
    migrate = SERVICES["migrate"]
    assert resolve_cli(_argv(migrate["command"])[1:]).name == "upgrade"
    assert _argv(migrate["command"])[1:3] == ["db", "upgrade"]
    assert migrate.get("restart", "no") == "no" and "healthcheck" not in migrate
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker-cpu", "worker-gpu", "warm-head"):
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name


def test_the_warm_head_runs_as_a_loop_beside_the_workers():
    warm = SERVICES["warm-head"]
    argv = _argv(warm["command"])
    assert resolve_cli(argv[1:]).name == "warm-head" and float(argv[argv.index("--every") + 1]) >= 60
    assert warm["restart"] == "unless-stopped"
    # it reads first-stage heads from the same index volume as the web processes
    assert warm["environment"]["SHOPRANK_INDEX_DIR"] == SERVICES["web"]["environment"]["SHOPRANK_INDEX_DIR"]
    assert "search-index:/home/shoprank/index" in warm["volumes"]


def test_redis_is_split_into_a_persistent_broker_and_an_evicting_cache():
    broker = _argv(SERVICES["redis-broker"]["command"])
    cache = _argv(SERVICES["redis-cache"]["command"])
    assert broker[broker.index("--appendonly") + 1] == "yes"
    assert broker[broker.index("--maxmemory-policy") + 1] == "noeviction"  # never drop a queued job
    assert cache[cache.index("--appendonly") + 1] == "no" and cache[cache.index("--save") + 1] == ""
    assert cache[cache.index("--maxmemory-policy") + 1] == "allkeys-lru" and "--maxmemory" in cache
    for name in APP_SERVICES:
        env = SERVICES[name]["environment"]
        # Celery broker (queues, read by queue_depths) vs result backend + score cache + registry (redis_url).
        assert env["SHOPRANK_BROKER_URL"].startswith("redis://redis-broker:"), name
        assert env["SHOPRANK_REDIS_URL"].startswith("redis://redis-cache:"), name
        assert "SHOPRANK_DATABASE_URL" in env and "@postgres:5432/" in env["SHOPRANK_DATABASE_URL"]
        unknown = {key for key in env if key.startswith("SHOPRANK_")} - SETTINGS_ENV
        assert not unknown, f"{name} sets SHOPRANK_ variables Settings does not read: {unknown}"


def test_workers_scalable_cpu_and_gpu_with_nvidia_reservation_and_cuda_image():
    cpu = SERVICES["worker-cpu"]
    assert "container_name" not in cpu and "ports" not in cpu and "profiles" not in cpu
    gpu = SERVICES["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert gpu["build"]["args"]["TORCH_FLAVOR"] == "cuda" and "whl/cu" in gpu["build"]["args"]["TORCH_CUDA_INDEX_URL"]
    assert gpu["image"] != cpu["image"]
    assert cpu["build"]["args"]["TORCH_FLAVOR"] == "cpu"
    assert resolve_cli(_argv(gpu["command"])[1:]).name == "worker"
    assert "--device" in _argv(gpu["command"]) and "cuda" in _argv(gpu["command"])


@pytest.mark.parametrize("where,argv", _commands(), ids=[where for where, _ in _commands()])
def test_every_command_resolves_against_the_real_cli(where, argv):
    program = argv[0]
    if program == "shoprank":
        resolve_cli(argv[1:])
    elif program == "gunicorn":
        from gunicorn.config import Config

        parsed = Config().parser().parse_args(argv[1:])
        assert parsed.config and parsed.config.startswith("python:"), "gunicorn needs -c python:<module>"
        importlib.import_module(parsed.config.removeprefix("python:"))
        [app_spec] = parsed.args
        module_name, _, factory = app_spec.partition(":")
        match = re.fullmatch(r"(\w+)\(\)", factory)
        assert match, f"{app_spec}: expected gunicorn's factory syntax module:function()"
        assert callable(getattr(importlib.import_module(module_name), match.group(1)))
    elif program in ("redis-server", "redis-cli", "pg_isready", "wget"):  # wget: the nginx (alpine) image's
        pass  # the images' own binaries
    elif program == "python":
        assert argv[1] == "-c"
        compile(argv[2], where, "exec")
    else:
        pytest.fail(f"{where}: unexpected program {program!r}")


def test_gunicorn_config_reads_sizing_from_the_environment(monkeypatch, tmp_path):
    import webapp.gunicorn_conf as conf

    monkeypatch.setenv("GUNICORN_WORKERS", "5")
    monkeypatch.setenv("GUNICORN_THREADS", "3")
    reloaded = importlib.reload(conf)
    try:
        assert (reloaded.workers, reloaded.threads, reloaded.worker_class) == (5, 3, "gthread")
        stale = tmp_path / "prom" / "counter_123.db"
        stale.parent.mkdir()
        stale.write_bytes(b"x")
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(stale.parent))
        reloaded.on_starting(None)  # a restarted master must not sum a previous run's samples
        assert not stale.exists() and stale.parent.is_dir()
    finally:
        monkeypatch.delenv("GUNICORN_WORKERS")
        monkeypatch.delenv("GUNICORN_THREADS")
        importlib.reload(conf)


def test_env_example_documents_every_setting_and_nothing_else():
    text = (REPO / ".env.example").read_text()
    documented = set(re.findall(r"^#?(SHOPRANK_[A-Z0-9_]+)=", text, re.M))
    assert documented == SETTINGS_ENV, (
        f"missing from .env.example: {sorted(SETTINGS_ENV - documented)}; "
        f"not settings: {sorted(documented - SETTINGS_ENV)}"
    )
    for name in documented:  # each one has a comment line right above it saying what it does
        line = next(i for i, row in enumerate(text.splitlines()) if re.match(rf"^#?{name}=", row))
        assert text.splitlines()[line - 1].startswith("# "), f"{name} has no explanation"


def test_dockerfile_builds_cpu_and_cuda_torch_and_dependencies_are_declared():
    dockerfile = (REPO / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.M))
    assert {"torch-cpu", "torch-cuda", "build", "runtime"} <= stages
    assert "FROM torch-${TORCH_FLAVOR} AS build" in dockerfile
    assert "https://download.pytorch.org/whl/cpu" in dockerfile and "https://download.pytorch.org/whl/cu" in dockerfile
    for service in APP_SERVICES:
        assert SERVICES[service]["build"]["target"] in stages
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=\[ ]", dep, maxsplit=1)[0].lower() for dep in dependencies}
    assert {"gunicorn", "prometheus-client"} <= names


def test_gunicorn_warms_each_worker_before_it_accepts_connections(shop_services):
    """``post_worker_init`` opens the catalog index and encodes a query, so no shopper waits for a model load."""
    import dataclasses

    import webapp.gunicorn_conf as conf
    from search.index import CatalogIndex
    from webapp import create_app

    cold_index = CatalogIndex(shop_services.db, shop_services.index._embedder, shop_services.index.index_dir)
    services = dataclasses.replace(shop_services, index=cold_index, shop_search=None, suggester=None)
    logged: list[str] = []

    class Worker:
        pid = 4242
        wsgi = create_app(services=services)
        log = type("Log", (), {"info": staticmethod(lambda msg, *args: logged.append(msg % args))})

    assert cold_index._state is None
    conf.post_worker_init(Worker)
    assert cold_index._state is not None and cold_index.size > 0
    assert logged and logged[0].startswith("worker 4242 warmed in ")


def test_a_buffering_proxy_faces_clients_and_gunicorn_is_not_published():
    """Issue 22 item 10: 16 slow-header connections stopped gunicorn answering. Compose ships nginx in front:
    it reads headers and bodies itself (with timeouts) and hands gunicorn only complete requests."""
    proxy, web = SERVICES["proxy"], SERVICES["web"]
    assert proxy["image"].startswith("nginx:")
    assert any(port.endswith(":8080") for port in proxy["ports"]) and "ports" not in web
    assert proxy.get("healthcheck", {}).get("test") and proxy.get("restart") == "unless-stopped"
    assert web["environment"]["SHOPRANK_TRUSTED_PROXIES"] == "1"
    mount = next(volume for volume in proxy["volumes"] if volume.endswith("/etc/nginx/nginx.conf:ro"))
    conf = (REPO / mount.split(":")[0]).read_text()
    for directive in (
        "client_header_timeout 10s",
        "client_body_timeout 10s",
        "proxy_request_buffering on",
        "server web:8000",
        "X-Forwarded-For",
    ):
        assert directive in conf, directive
