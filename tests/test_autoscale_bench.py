"""bench/autoscale.py simulates the rule the chart really configures, and the simulation responds as it must.

The numbers themselves are a benchmark (docs/operations/kubernetes.md); these checks keep the simulation honest:
its thresholds are the ones Helm renders into the ScaledObjects (not a copy that can drift), and its model moves in
the right direction when capacity or the target changes.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.test_helm_chart import one, render

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def autoscale() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_autoscale", REPO / "bench" / "autoscale.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_autoscale"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def test_the_simulated_thresholds_are_the_rendered_ones(autoscale):
    rules = autoscale.load_rules()
    manifests = render({})
    for device, pool in (("cpu", rules.cpu), ("gpu", rules.gpu)):
        spec = one(manifests, "ScaledObject", f"-worker-{device}")["spec"]
        assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (pool.min_replicas, pool.max_replicas)
        assert spec["pollingInterval"] == pool.polling_interval and spec["cooldownPeriod"] == pool.cooldown_period
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] == pool.stabilization_down
        assert {p["type"]: p["value"] for p in behavior["scaleUp"]["policies"]} == {
            "Percent": rules.up_percent,
            "Pods": rules.up_pods,
        }
        assert behavior["scaleDown"]["policies"][0]["value"] == rules.down_pods
        triggers = {t["name"]: t for t in spec["triggers"]}
        assert float(triggers["work-waiting"]["metadata"]["threshold"]) == pool.work_waiting_target
        if device == "cpu":
            assert float(triggers["queue-depth"]["metadata"]["threshold"]) == pool.queue_depth_per_worker
            assert float(triggers["shed-searches"]["metadata"]["threshold"]) == pool.shed_per_second_per_worker
        else:
            assert float(triggers["searches"]["metadata"]["threshold"]) == pool.searches_per_worker
            assert float(triggers["searches"]["metadata"]["activationThreshold"]) == pool.activation_searches


def test_the_pool_model_sheds_only_beyond_capacity_and_the_signal_saturates(autoscale):
    rules = autoscale.load_rules()
    light = autoscale.serve(1.0, ready=4, rate=7.0, rules=rules, jobs_in_flight=8)
    assert light.reranked == 1.0 and light.shed_per_second == 0 and 0 < light.work_waiting < 1.2
    overloaded = autoscale.serve(10.0, ready=2, rate=7.0, rules=rules, jobs_in_flight=8)
    assert overloaded.reranked < 1 and overloaded.shed_per_second > 0 and overloaded.depth == rules.min_depth
    budget = (rules.deadline_s - rules.overhead_s) * rules.safety
    assert overloaded.work_waiting == pytest.approx(budget)  # admission control caps the backlog


def test_a_day_autoscaled_costs_less_than_a_peak_sized_pool_and_a_lower_target_costs_more(autoscale, tmp_path):
    args = autoscale.argparse.Namespace(
        peak=60.0,
        night=3.0,
        spike_factor=0.0,
        spike_at=15.0,
        spike_minutes=20.0,
        pairs_per_second=6.88,
        cache_hit_rate=0.932,
        cold_start=120.0,
        gpu_pairs_per_second=0.0,
    )
    rules = autoscale.load_rules()
    auto = autoscale.simulate(args, rules)[0].summary()
    assert auto["shed_share"] < 0.001 and auto["saturated_share"] < 0.02
    peak_sized = autoscale.simulate(args, rules, fixed_cpu=auto["peak_cpu_workers"])[0].summary()
    assert auto["cpu_worker_hours"] < peak_sized["cpu_worker_hours"]
    starved = autoscale.simulate(args, rules, fixed_cpu=2)[0].summary()
    assert starved["shed_share"] > 0.01
    eager = autoscale.Rules(
        **{**rules.__dict__, "cpu": autoscale.PoolRule(**{**rules.cpu.__dict__, "work_waiting_target": 0.5})}
    )
    assert autoscale.simulate(args, eager)[0].summary()["cpu_worker_hours"] > auto["cpu_worker_hours"]
