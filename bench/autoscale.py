"""Autoscaling simulation: a day of traffic through the scaling rule the Helm chart configures, vs fixed pools.

    python bench/autoscale.py                      # JSON on stdout, one-line summary on stderr, SVG chart
    python bench/autoscale.py --peak 80 --cold-start 300 --svg /tmp/day.svg

What is simulated, every ``pollingInterval`` (15 s) of a 24 h day:

* **Traffic**: searches/s on a day-shaped curve (night trough, lunch and evening peaks). A share equal to the
  score-cache hit rate is served from the cache whole (head queries are cached, tail ones are not: that is how
  the docs' pair hit rates arise); the rest need the cross-encoder.
* **The pool** (what the web tier's depth policy does, reranking/depth.py): an uncached search gets the deepest
  head that one worker can score before the deadline (``r x (deadline - overhead) x safety``), that the pool's
  throughput leaves room for (``C / uncached searches/s``), at most ``rerank_max_depth``; when not even
  ``rerank_min_depth`` fits, the share that does not fit is shed.
* **The signal**: ``shoprank_work_waiting_seconds`` = backlog pairs / pool pairs/s. By Little's law the backlog is
  the admitted pair rate x each job's time in the pool; a job takes ``depth / r`` on its worker, stretched by
  ``1 / (1 - utilisation)`` when jobs share workers, and never longer than the deadline budget (the policy admits
  no more); so ``W = utilisation x min(budget, (depth / r) / (1 - utilisation))``.
* **The rule** (deploy/helm/shoprank/values.yaml, read at start so it cannot drift): HPA ``Value`` on W
  (``ceil(n x W / target)``, 10 % tolerance), ``AverageValue`` on broker queue depth (jobs beyond
  ``jobs-in-flight`` per worker) and on shed searches/s, the larger wins; clamped to min/max; scale-up by the
  larger of +percent and +pods per period, scale-down one pod per period after the stabilisation window (the
  highest recommendation in the window wins); a new worker serves only after the cold start.
* **GPU pool** (``--gpu-pairs-per-second``, off by default: no GPU was measured here): KEDA wakes it from zero
  when searches/s pass the activation threshold, sizes it by searches/s per worker and W, and sends it back to
  zero after ``cooldownPeriod`` below activation; while a GPU worker is up every job goes to rerank.gpu.

Defaults come from measurements in docs/: 6.88 pairs/s per CPU worker (bge-reranker-v2-m3, torch INT8, 2 cores:
"CPU reranking"), a 93.2 % pair cache-hit rate (load test, cold cache). The cold start (pod scheduled, image
cached, model loaded and calibrated) was not measured: 120 s is an assumption; try ``--cold-start 300``.
Outputs: reranked share (searches reranked at depth >= min depth, cached ones included), shed share, mean depth of
uncached searches and worker-hours, for the autoscaled pool, a fixed pool sized for the peak and a fixed pool
with the same worker-hours.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
VALUES = REPO / "deploy" / "helm" / "shoprank" / "values.yaml"
DAY_SECONDS = 24 * 3600
#: HPA's default tolerance: no change while the metric is within 10 % of its target.
HPA_TOLERANCE = 0.1


@dataclass(frozen=True)
class PoolRule:
    """One ScaledObject as values.yaml configures it."""

    min_replicas: int
    max_replicas: int
    polling_interval: int
    cooldown_period: int
    work_waiting_target: float
    stabilization_down: int
    queue_depth_per_worker: float | None = None
    shed_per_second_per_worker: float | None = None
    searches_per_worker: float | None = None
    activation_searches: float | None = None


@dataclass(frozen=True)
class Rules:
    cpu: PoolRule
    gpu: PoolRule
    up_percent: int
    up_pods: int
    up_period: int
    down_pods: int
    down_period: int
    jobs_in_flight_cpu: int
    jobs_in_flight_gpu: int
    deadline_s: float
    overhead_s: float
    safety: float
    max_depth: int
    min_depth: int


def load_rules(path: Path = VALUES) -> Rules:
    """The thresholds the chart renders into its ScaledObjects, and the depth policy's settings it passes."""
    from shoprank.config import Settings

    values = yaml.safe_load(path.read_text())
    a = values["autoscaling"]
    cpu, gpu = a["workerCpu"], a["workerGpu"]
    config = {k: str(v) for k, v in values["config"].items()} | {"SHOPRANK_ENV": "development"}
    settings = Settings.from_env(config)
    return Rules(
        cpu=PoolRule(
            cpu["minReplicas"],
            cpu["maxReplicas"],
            cpu["pollingInterval"],
            cpu["cooldownPeriod"],
            float(cpu["workWaitingTargetSeconds"]),
            cpu["scaleDownStabilizationSeconds"],
            queue_depth_per_worker=float(cpu["queueDepthPerWorker"]),
            shed_per_second_per_worker=float(cpu["shedPerSecondPerWorker"]),
        ),
        gpu=PoolRule(
            gpu["minReplicas"],
            gpu["maxReplicas"],
            gpu["pollingInterval"],
            gpu["cooldownPeriod"],
            float(gpu["workWaitingTargetSeconds"]),
            gpu["scaleDownStabilizationSeconds"],
            searches_per_worker=float(gpu["searchesPerSecondPerWorker"]),
            activation_searches=float(gpu["activationSearchesPerSecond"]),
        ),
        up_percent=a["behavior"]["scaleUp"]["percent"],
        up_pods=a["behavior"]["scaleUp"]["pods"],
        up_period=a["behavior"]["scaleUp"]["periodSeconds"],
        down_pods=a["behavior"]["scaleDown"]["pods"],
        down_period=a["behavior"]["scaleDown"]["periodSeconds"],
        jobs_in_flight_cpu=values["workers"]["cpu"]["jobsInFlight"],
        jobs_in_flight_gpu=values["workers"]["gpu"]["jobsInFlight"],
        deadline_s=settings.rerank_deadline_ms / 1000,
        overhead_s=settings.rerank_overhead_ms / 1000,
        safety=settings.rerank_depth_safety,
        max_depth=settings.rerank_max_depth,
        min_depth=settings.rerank_min_depth,
    )


def traffic(t: float, night: float, peak: float, spike: tuple[float, float, float] = (0.0, 15.0, 0.0)) -> float:
    """Searches/s at ``t`` seconds after midnight: a night trough, a lunch peak and a higher evening peak, plus a
    flash spike (``factor`` x peak from ``hour`` for ``minutes``: a newsletter, a sale) that no smooth ramp warns of.
    """
    hour = (t / 3600) % 24
    factor, spike_hour, minutes = spike
    if factor > 0 and spike_hour <= hour < spike_hour + minutes / 60:
        return factor * peak

    def bump(centre: float, width: float) -> float:
        distance = min(abs(hour - centre), 24 - abs(hour - centre))
        return math.exp(-0.5 * (distance / width) ** 2)

    shape = max(0.7 * bump(12.5, 1.6), bump(20.5, 2.0), 0.35 * bump(9.0, 2.5))
    return night + (peak - night) * shape


@dataclass
class Step:
    """What one pool does with a load for one interval."""

    depth: float
    reranked: float  # share of uncached searches reranked at >= min depth
    utilisation: float
    work_waiting: float
    queue_depth: float
    shed_per_second: float
    job_seconds: float = 0.0  # a job's time in the pool (what the search waits for its rerank)


def serve(uncached_per_s: float, ready: int, rate: float, rules: Rules, jobs_in_flight: int) -> Step:
    """The depth policy's outcome and the signals it leaves, for ``ready`` workers of ``rate`` pairs/s each."""
    budget = max(0.0, (rules.deadline_s - rules.overhead_s) * rules.safety)
    if uncached_per_s <= 0:
        return Step(0.0, 1.0, 0.0, 0.0, 0.0, 0.0)
    capacity = ready * rate
    if capacity <= 0:
        return Step(0.0, 0.0, 0.0, 0.0, 0.0, uncached_per_s)
    per_job_limit = min(rules.max_depth, rate * budget)  # one worker scores one job before the deadline
    depth = min(per_job_limit, capacity / uncached_per_s)
    if depth >= rules.min_depth:
        reranked, admitted = 1.0, uncached_per_s
    else:  # not even the minimum fits for everyone: as many as fit get min depth, the rest are shed
        depth = float(rules.min_depth)
        admitted = capacity / rules.min_depth
        reranked = admitted / uncached_per_s
    utilisation = min(1.0, admitted * depth / capacity)
    job_seconds = depth / rate
    in_pool = budget if utilisation >= 0.999 else min(budget, job_seconds / (1 - utilisation))
    work_waiting = utilisation * in_pool
    jobs_in_system = admitted * in_pool
    queue_depth = max(0.0, jobs_in_system - ready * jobs_in_flight)
    return Step(depth, reranked, utilisation, work_waiting, queue_depth, uncached_per_s * (1 - reranked), in_pool)


@dataclass
class Pool:
    """Replica bookkeeping for one Deployment: spec replicas, pods still starting, the HPA's recent wishes."""

    rule: PoolRule
    replicas: int
    starting: deque[float] = field(default_factory=deque)
    ready: int = 0
    history: deque[tuple[float, int]] = field(default_factory=deque)
    last_up: float = -1e9
    last_down: float = -1e9
    inactive_since: float | None = None

    def tick(self, now: float) -> None:
        while self.starting and self.starting[0] <= now:
            self.starting.popleft()
            self.ready += 1

    def set_replicas(self, target: int, now: float, cold_start: float) -> None:
        if target > self.replicas:
            self.starting.extend([now + cold_start] * (target - self.replicas))
        elif target < self.replicas:
            drop = self.replicas - target
            while drop and self.starting:  # pods still starting go first
                self.starting.pop()
                drop -= 1
            self.ready -= drop
        self.replicas = target


def hpa_step(pool: Pool, raw: int, now: float, rules: Rules, cold_start: float) -> None:
    """The HPA's behaviour: clamp, scale-up policies, scale-down stabilisation and rate."""
    rule = pool.rule
    desired = max(rule.min_replicas if rule.min_replicas > 0 else 1, min(rule.max_replicas, raw))
    pool.history.append((now, desired))
    while pool.history and pool.history[0][0] < now - rule.stabilization_down:
        pool.history.popleft()
    current = pool.replicas
    if desired > current:
        if now - pool.last_up >= rules.up_period or pool.last_up < 0:
            limit = max(math.ceil(current * (1 + rules.up_percent / 100)), current + rules.up_pods)
            pool.set_replicas(min(desired, limit), now, cold_start)
            pool.last_up = now
    else:
        stabilised = max(d for _, d in pool.history)
        if stabilised < current and now - pool.last_down >= rules.down_period:
            pool.set_replicas(max(stabilised, current - rules.down_pods), now, cold_start)
            pool.last_down = now


def value_rule(pool: Pool, metric: float, target: float) -> int:
    """HPA on an external metric of type Value: ``ceil(ready pods x metric / target)``, unchanged within tolerance.

    The HPA multiplies by the *ready* pods (pods still starting are not counted), so a metric that stays high
    while new workers load their model does not compound into a runaway.
    """
    ratio = metric / target if target > 0 else 0.0
    if abs(ratio - 1) <= HPA_TOLERANCE:
        return pool.replicas
    return math.ceil(pool.ready * ratio) if pool.replicas else math.ceil(ratio)


@dataclass
class Totals:
    searches: float = 0.0
    reranked: float = 0.0
    shed: float = 0.0
    uncached: float = 0.0
    depth_sum: float = 0.0
    job_seconds_sum: float = 0.0
    saturated: float = 0.0
    cpu_worker_seconds: float = 0.0
    gpu_worker_seconds: float = 0.0
    peak_cpu: int = 0
    peak_gpu: int = 0

    def summary(self) -> dict[str, float]:
        return {
            "reranked_share": round(self.reranked / self.searches, 4),
            "shed_share": round(self.shed / self.searches, 4),
            "mean_uncached_depth": round(self.depth_sum / self.uncached, 1) if self.uncached else 0.0,
            "mean_rerank_seconds": round(self.job_seconds_sum / self.uncached, 2) if self.uncached else 0.0,
            # uncached searches while the pool ran >= 95 % busy: their jobs wait up to the deadline (partial heads)
            "saturated_share": round(self.saturated / self.uncached, 4) if self.uncached else 0.0,
            "cpu_worker_hours": round(self.cpu_worker_seconds / 3600, 1),
            "gpu_worker_hours": round(self.gpu_worker_seconds / 3600, 1),
            "peak_cpu_workers": self.peak_cpu,
            "peak_gpu_workers": self.peak_gpu,
        }


def simulate(
    args: argparse.Namespace, rules: Rules, fixed_cpu: int | None = None
) -> tuple[Totals, list[dict[str, Any]]]:
    """One day. ``fixed_cpu``: a fixed CPU pool of that size, no autoscaler and no GPU."""
    dt = rules.cpu.polling_interval
    use_gpu = fixed_cpu is None and args.gpu_pairs_per_second > 0
    cpu = Pool(rules.cpu, fixed_cpu if fixed_cpu is not None else rules.cpu.min_replicas)
    cpu.ready = cpu.replicas  # the day starts from a settled pool
    gpu = Pool(rules.gpu, 0)
    totals, series = Totals(), []
    for step_index in range(2 * DAY_SECONDS // dt):  # day one settles the pools; day two is measured
        now = step_index * dt
        measured = now >= DAY_SECONDS
        cpu.tick(now)
        gpu.tick(now)
        searches = traffic(now, args.night, args.peak, (args.spike_factor, args.spike_at, args.spike_minutes))
        uncached = searches * (1 - args.cache_hit_rate)
        on_gpu = use_gpu and gpu.ready > 0  # routing: rerank.gpu while a GPU worker is alive
        gpu_step = serve(
            uncached if on_gpu else 0.0, gpu.ready, args.gpu_pairs_per_second, rules, rules.jobs_in_flight_gpu
        )
        cpu_step = serve(0.0 if on_gpu else uncached, cpu.ready, args.pairs_per_second, rules, rules.jobs_in_flight_cpu)
        served = gpu_step if on_gpu else cpu_step
        if measured:
            record(totals, series, now - DAY_SECONDS, searches, uncached, served, cpu, gpu, dt)
        if fixed_cpu is None:
            raw = max(
                value_rule(cpu, cpu_step.work_waiting, rules.cpu.work_waiting_target),
                math.ceil(cpu_step.queue_depth / (rules.cpu.queue_depth_per_worker or 1)),
                math.ceil(cpu_step.shed_per_second / (rules.cpu.shed_per_second_per_worker or 1)),
            )
            hpa_step(cpu, raw, now, rules, args.cold_start)
            if use_gpu:
                gpu_step_keda(gpu, gpu_step, searches, now, rules, args.cold_start)
    return totals, series


def record(
    totals: Totals,
    series: list[dict[str, Any]],
    t: float,
    searches: float,
    uncached: float,
    served: Step,
    cpu: Pool,
    gpu: Pool,
    dt: float,
) -> None:
    """Account one interval of the measured day."""
    totals.searches += searches * dt
    totals.uncached += uncached * dt
    totals.reranked += (searches - uncached + uncached * served.reranked) * dt
    totals.shed += uncached * (1 - served.reranked) * dt
    totals.depth_sum += uncached * served.reranked * served.depth * dt
    totals.job_seconds_sum += uncached * served.reranked * served.job_seconds * dt
    if served.utilisation >= 0.95:
        totals.saturated += uncached * dt
    totals.cpu_worker_seconds += cpu.replicas * dt  # a starting pod costs as much as a ready one
    totals.gpu_worker_seconds += gpu.replicas * dt
    totals.peak_cpu = max(totals.peak_cpu, cpu.replicas)
    totals.peak_gpu = max(totals.peak_gpu, gpu.replicas)
    series.append(
        {
            "t": t,
            "searches_per_s": round(searches, 3),
            "cpu_replicas": cpu.replicas,
            "cpu_ready": cpu.ready,
            "gpu_replicas": gpu.replicas,
            "work_waiting_s": round(served.work_waiting, 3),
            "reranked": round(served.reranked, 4),
            "depth": round(served.depth, 1),
        }
    )


def gpu_step_keda(gpu: Pool, step: Step, searches: float, now: float, rules: Rules, cold_start: float) -> None:
    """KEDA on a pool that may sit at zero: activation wakes it, cooldown below activation sends it back."""
    rule = gpu.rule
    active = searches > (rule.activation_searches or 0) or step.work_waiting > rule.work_waiting_target
    if gpu.replicas == 0:
        if active:
            gpu.set_replicas(1, now, cold_start)
            gpu.inactive_since = None
        return
    if active:
        gpu.inactive_since = None
    elif gpu.inactive_since is None:
        gpu.inactive_since = now
    if gpu.inactive_since is not None and now - gpu.inactive_since >= rule.cooldown_period:
        gpu.set_replicas(0, now, cold_start)
        gpu.history.clear()
        return
    raw = max(
        value_rule(gpu, step.work_waiting, rule.work_waiting_target),
        math.ceil(searches / (rule.searches_per_worker or 1)),
    )
    hpa_step(gpu, raw, now, rules, cold_start)


def svg_chart(series: list[dict[str, Any]], fixed: int, title: str) -> str:
    """Searches/s and CPU (and GPU) workers over the day, hand-drawn SVG (no plotting library in the venv)."""
    width, height, left, right, top, bottom = 760, 300, 50, 50, 30, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    max_searches = max(p["searches_per_s"] for p in series) * 1.1
    most = max(max(p["cpu_replicas"] + p["gpu_replicas"] for p in series), fixed)
    max_workers = 4 * math.ceil(most * 1.15 / 4)  # right-axis ticks at whole workers

    def x(t: float) -> float:
        return left + plot_w * t / DAY_SECONDS

    def y(value: float, top_value: float) -> float:
        return top + plot_h * (1 - value / top_value)

    def path(key: str, scale: float, step: bool = False) -> str:
        points: list[str] = []
        previous = None
        for p in series:
            if step and previous is not None:
                points.append(f"{x(p['t']):.1f},{y(previous, scale):.1f}")
            points.append(f"{x(p['t']):.1f},{y(p[key], scale):.1f}")
            previous = p[key]
        return "M" + " L".join(points)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="13">{title}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#444"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#444"/>',
        f'<line x1="{left + plot_w}" y1="{top}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#444"/>',
    ]
    for hour in range(0, 25, 3):
        parts.append(
            f'<text x="{x(hour * 3600):.1f}" y="{top + plot_h + 15}" text-anchor="middle">{hour:02d}:00</text>'
        )
    for tick in range(5):
        s_value, w_value = max_searches * tick / 4, max_workers * tick / 4
        yy = y(s_value, max_searches)
        parts.append(f'<line x1="{left}" y1="{yy:.1f}" x2="{left + plot_w}" y2="{yy:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 5}" y="{yy + 4:.1f}" text-anchor="end" fill="#1f77b4">{s_value:.0f}</text>')
        parts.append(f'<text x="{left + plot_w + 5}" y="{yy + 4:.1f}" fill="#d62728">{w_value:.0f}</text>')
    parts.append(f'<path d="{path("searches_per_s", max_searches)}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>')
    parts.append(
        f'<path d="{path("cpu_replicas", max_workers, True)}" fill="none" stroke="#d62728" stroke-width="1.5"/>'
    )
    if any(p["gpu_replicas"] for p in series):
        parts.append(
            f'<path d="{path("gpu_replicas", max_workers, True)}" fill="none" stroke="#2ca02c" stroke-width="1.5"/>'
        )
    fixed_y = y(fixed, max_workers)
    parts.append(
        f'<line x1="{left}" y1="{fixed_y:.1f}" x2="{left + plot_w}" y2="{fixed_y:.1f}" stroke="#d62728"'
        ' stroke-dasharray="5,4"/>'
    )
    legend = [
        ("#1f77b4", "searches/s (left axis)", ""),
        ("#d62728", "CPU workers, autoscaled (right axis)", ""),
        ("#d62728", f"fixed pool sized for the peak: {fixed}", "5,4"),
    ]
    if any(p["gpu_replicas"] for p in series):
        legend.append(("#2ca02c", "GPU workers", ""))
    for i, (colour, label, dash) in enumerate(legend):
        ly = top + 12 + i * 15
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<line x1="{left + 10}" y1="{ly}" x2="{left + 30}" y2="{ly}" stroke="{colour}"'
            f' stroke-width="2"{dash_attr}/>'
        )
        parts.append(f'<text x="{left + 35}" y="{ly + 4}">{label}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def smallest_fixed_pool(args: argparse.Namespace, rules: Rules, auto: dict[str, float]) -> int:
    """Fewest fixed CPU workers whose day is as good as the autoscaled one: no more shed, no shallower heads, no
    more searches in saturated intervals."""
    for size in range(1, 500):
        summary = simulate(args, rules, fixed_cpu=size)[0].summary()
        if (
            summary["shed_share"] <= auto["shed_share"]
            and summary["mean_uncached_depth"] >= auto["mean_uncached_depth"]
            and summary["saturated_share"] <= auto["saturated_share"]
        ):
            return size
    raise RuntimeError("no fixed pool below 500 workers meets the goal")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peak", type=float, default=60.0, help="searches/s at the evening peak")
    parser.add_argument("--night", type=float, default=3.0, help="searches/s at night")
    parser.add_argument("--spike-factor", type=float, default=1.3, help="flash spike: x the evening peak (0 = none)")
    parser.add_argument("--spike-at", type=float, default=15.0, help="flash spike: start hour")
    parser.add_argument("--spike-minutes", type=float, default=20.0, help="flash spike: duration")
    parser.add_argument(
        "--pairs-per-second", type=float, default=6.88, help="one CPU worker (docs/performance.md, INT8)"
    )
    parser.add_argument("--cache-hit-rate", type=float, default=0.932, help="docs load test, cold cache: 93.2 %%")
    parser.add_argument("--cold-start", type=float, default=120.0, help="seconds until a new worker serves (assumed)")
    parser.add_argument(
        "--gpu-pairs-per-second", type=float, default=0.0, help="one GPU worker (not measured here: 0 = no GPU pool)"
    )
    parser.add_argument("--values", type=Path, default=VALUES, help="the chart's values.yaml (thresholds)")
    parser.add_argument("--svg", type=Path, default=REPO / "docs" / "autoscale-day.svg", help="chart to write")
    parser.add_argument("--series", action="store_true", help="include the per-step series in the JSON")
    args = parser.parse_args(argv)
    rules = load_rules(args.values)
    totals, series = simulate(args, rules)
    auto = totals.summary()
    result: dict[str, Any] = {
        "benchmark": "autoscale",
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "series"},
        "rules": asdict(rules),
        "autoscaled": auto,
    }
    args.svg.parent.mkdir(parents=True, exist_ok=True)
    if args.gpu_pairs_per_second > 0:  # a CPU pool cannot reach GPU depth: compare with GPUs kept at their peak
        peak_gpu = int(auto["peak_gpu_workers"])
        result["gpus_always_on_at_peak_count"] = {"gpu_workers": peak_gpu, "gpu_worker_hours": peak_gpu * 24}
        if args.series:
            result["series"] = series
        print(json.dumps(result, indent=2))
        args.svg.write_text(svg_chart(series, 0, f"A day at {args.peak:g} searches/s peak: GPU pool scaling to zero"))
        print(
            f"autoscale with GPUs ({args.gpu_pairs_per_second:g} pairs/s each, assumed): reranked "
            f"{auto['reranked_share']:.1%}, shed {auto['shed_share']:.2%}, depth {auto['mean_uncached_depth']}, "
            f"{auto['gpu_worker_hours']:.0f} GPU-hours (peak {peak_gpu}; always on: {peak_gpu * 24}) + "
            f"{auto['cpu_worker_hours']:.0f} CPU worker-hours",
            file=sys.stderr,
        )
        return result
    peak_sized = smallest_fixed_pool(args, rules, auto)
    peak_totals, _ = simulate(args, rules, fixed_cpu=peak_sized)
    same_hours = max(1, round(totals.cpu_worker_seconds / DAY_SECONDS))
    same_totals, _ = simulate(args, rules, fixed_cpu=same_hours)
    result["fixed_sized_for_peak"] = {"workers": peak_sized, **peak_totals.summary()}
    result["fixed_same_worker_hours"] = {"workers": same_hours, **same_totals.summary()}
    if args.series:
        result["series"] = series
    args.svg.parent.mkdir(parents=True, exist_ok=True)
    args.svg.write_text(
        svg_chart(series, peak_sized, f"A day at {args.peak:g} searches/s peak: autoscaled CPU workers vs a fixed pool")
    )
    print(json.dumps(result, indent=2))
    worker_hours = auto["cpu_worker_hours"] + auto["gpu_worker_hours"]
    same = same_totals.summary()
    print(
        f"autoscale: reranked {auto['reranked_share']:.1%}, shed {auto['shed_share']:.2%}, depth "
        f"{auto['mean_uncached_depth']}, saturated {auto['saturated_share']:.1%}, {worker_hours:.0f} worker-hours "
        f"(peak {auto['peak_cpu_workers']}); fixed {peak_sized} (as good): {peak_sized * 24} worker-hours; fixed "
        f"{same_hours} (same hours): reranked {same['reranked_share']:.1%}, shed {same['shed_share']:.2%}, depth "
        f"{same['mean_uncached_depth']}, saturated {same['saturated_share']:.1%}",
        file=sys.stderr,
    )
    return result


if __name__ == "__main__":
    main()
