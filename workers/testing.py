"""Real worker processes for tests and benchmarks (like ``celery.contrib.testing``, but a separate process).

A rerank worker must be tested as it runs in production: its own process, started by
``shoprank worker``, loading its model, talking to a real Redis. ``WorkerProcess``
starts one in its own process group (so a test can SIGKILL it, children included),
waits until it advertises itself in the registry, and always cleans up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shoprank.config import Settings
from workers.registry import WorkerRegistry

REPO_ROOT = Path(__file__).resolve().parent.parent


def isolated_environment(redis_url: str, prefix: str | None = None, **extra: str) -> dict[str, str]:
    """Environment for a worker (and its callers) that shares Redis with others but nothing else."""
    prefix = prefix or f"test-{uuid.uuid4().hex[:10]}:"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPRANK_")}
    env.update(
        SHOPRANK_ENV="test",
        SHOPRANK_REDIS_URL=redis_url,
        SHOPRANK_QUEUE_PREFIX=prefix,
        SHOPRANK_CACHE_KEY_PREFIX=prefix,
        SHOPRANK_RERANK_RESULT_EXPIRES_SECONDS="600",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
        TOKENIZERS_PARALLELISM="false",
    )
    env.update(extra)
    return env


def settings_for(env: Mapping[str, str]) -> Settings:
    return Settings.from_env({k: v for k, v in env.items() if k.startswith("SHOPRANK_")})


def delete_prefixed_keys(redis_url: str, prefix: str) -> int:
    """Remove everything a test run left under its own prefix (never anything else)."""
    import redis

    if not prefix:
        raise ValueError("refusing to delete keys without a prefix")
    client = redis.Redis.from_url(redis_url)
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            deleted += client.delete(*batch)
            batch.clear()
    if batch:
        deleted += client.delete(*batch)
    return deleted


class WorkerProcess:
    """``python -m shopctl worker ARGS`` (or another ``command``) in its own process group, log in a file."""

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        command: str = "worker",
        registry_namespace: str = "",
    ) -> None:
        self.args = list(args)
        self.env = dict(env)
        self.log_path = Path(log_path)
        self.command = command
        #: Appended to the queue prefix for readiness: embed workers advertise under ``<prefix>embed:``.
        self.registry_namespace = registry_namespace
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def node(self) -> str | None:
        if "--hostname" in self.args:
            return self.args[self.args.index("--hostname") + 1]
        return None

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "shopctl", self.command, *self.args],
                env=self.env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killpg reaches prefork children too
            )
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, processes: int = 1, timeout: float = 180.0) -> list[dict[str, Any]]:
        """Block until ``processes`` model processes of this node advertise themselves."""
        assert self.process is not None and self.node, "start() with --hostname first"
        settings = settings_for(self.env)
        registry = WorkerRegistry.from_url(settings.redis_url or "", settings.queue_prefix + self.registry_namespace)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.log_text()[-4000:]}")
            mine = [e for e in registry.live() if e.get("node") == self.node]
            if len(mine) >= processes:
                return mine
            time.sleep(0.2)
        raise TimeoutError(f"worker {self.node} not ready after {timeout:.0f} s:\n{self.log_text()[-4000:]}")

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (the worker and any prefork children)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
            except ProcessLookupError:
                pass

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
