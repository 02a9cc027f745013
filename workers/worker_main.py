"""Starting a rerank worker: plan the process layout, load the model where it belongs, run Celery.

Two layouts, both ``acks_late``:

* **one process** (``threads`` pool; ``solo`` with one job in flight): the model is
  loaded in the process that serves, before Celery starts consuming, and jobs taken
  together are merged by the model thread (``workers.microbatch``). This is the GPU
  layout (one process per GPU, nothing ever forks after CUDA is touched) and the CPU
  default.
* **prefork** (CPU, ``--concurrency N > 1``): N child processes split the cores
  (torch threads = cores / N), each loading its own model in ``worker_process_init``,
  after the fork. Each child holds one job at a time; a child killed mid-job has its
  job requeued (``reject_on_worker_lost``).

A worker that cannot load its cross-encoder never serves: it logs one line starting
with ``FATAL: rerank worker cannot load its model`` and exits with status 3. It never
falls back to the bi-encoder the embedded web mode may use.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from dataclasses import dataclass
from typing import Any

from celery import platforms, signals

from reranking.model_source import ModelUnavailableError, resolve_model
from reranking.threads import ThreadPlan, apply_thread_environment, available_cores, plan_threads, threads_in_force
from shoprank.config import ConfigError, Settings
from shoprank.observability.metrics import start_metrics_server
from workers.celery_app import QUEUE_FOR_DEVICE, create_celery_app, device_family
from workers.runtime import ModelLoadError, WorkerPlan, WorkerRuntime, current_runtime, install_runtime
from workers.tasks import register_tasks

log = logging.getLogger(__name__)

EXIT_BAD_OPTIONS = 2
EXIT_MODEL_LOAD_FAILED = 3
DEFAULT_JOBS_IN_FLIGHT = 8


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """Command-line choices; everything else comes from ``Settings``."""

    device: str = "cpu"
    concurrency: int = 1
    jobs_in_flight: int = DEFAULT_JOBS_IN_FLIGHT
    batching: bool = True
    model: str | None = None
    max_length: int | None = None
    int8: bool | None = None
    hostname: str | None = None
    autoscale: tuple[int, int] | None = None  # (max, min) processes, prefork only
    loglevel: str = "WARNING"  # Celery's own loggers; INFO would log every result in full


def worker_thread_plan(settings: Settings, cores: int, processes: int) -> ThreadPlan:
    """Intra-op threads and wait policy of each CPU worker process: its share of the available cores."""
    try:
        return plan_threads(
            "worker",
            cores,
            processes=processes,
            worker_threads=settings.reranker_threads,
            wait_policy=settings.omp_wait_policy,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def plan_worker(options: WorkerOptions, settings: Settings, cores: int | None = None) -> WorkerPlan:
    """Turn options into a process layout; ``ConfigError`` for combinations that cannot work."""
    family = device_family(options.device)
    if options.device not in ("cpu", "cuda") and not options.device.startswith("cuda:"):
        raise ConfigError(f"--device must be cpu or cuda, got {options.device!r}")
    if options.concurrency < 1 or options.jobs_in_flight < 1:
        raise ConfigError("--concurrency and --jobs-in-flight must be at least 1")
    processes = options.concurrency
    if options.autoscale:
        high, low = options.autoscale
        if not 1 <= low <= high:
            raise ConfigError("--autoscale MAX,MIN needs 1 <= MIN <= MAX")
        processes = high
    if family == "cuda" and (processes > 1 or options.autoscale):
        raise ConfigError(
            "CUDA workers run one process per GPU: start one worker per GPU (CUDA_VISIBLE_DEVICES=N) "
            "and raise --jobs-in-flight instead of --concurrency"
        )
    cores = cores or available_cores()
    torch_threads = None
    if family == "cpu":
        torch_threads = worker_thread_plan(settings, cores, processes).threads
    prefork = processes > 1 or options.autoscale is not None
    if prefork:
        pool, jobs_in_flight, batching = "prefork", 1, False
    else:
        jobs_in_flight = options.jobs_in_flight
        pool = "threads" if jobs_in_flight > 1 else "solo"
        batching = options.batching and jobs_in_flight > 1
    overrides: dict[str, Any] = {"device": options.device, "num_threads": torch_threads, "allow_fallback": False}
    if options.model:
        overrides["model"] = options.model
    if options.max_length:
        overrides["max_length"] = options.max_length
    if options.int8 is not None:
        overrides["int8"] = options.int8
    return WorkerPlan(
        device=options.device,
        node=options.hostname or f"rerank-{family}@{socket.gethostname()}",
        queue=QUEUE_FOR_DEVICE[family],
        pool=pool,
        processes=processes,
        jobs_in_flight=jobs_in_flight,
        torch_threads=torch_threads,
        batching=batching,
        spec=settings.scorer_spec(**overrides),
    )


def _log_load_failure(plan: WorkerPlan, exc: BaseException) -> None:
    log.critical(
        "FATAL: rerank worker cannot load its model %s on %s: %s. Exiting with status %d; "
        "this worker will not serve jobs (it never falls back to another model).",
        plan.spec.model,
        plan.device,
        exc,
        EXIT_MODEL_LOAD_FAILED,
    )


def _ready_line(runtime: WorkerRuntime) -> str:
    ad = runtime.advertisement()
    return (
        f"rerank worker ready: node={ad['node']} queue={ad['queue']} device={ad['device']} dtype={ad['dtype']} "
        f"model={ad['model_id']} max_length={ad['max_length']} pool={ad['pool']} processes={ad['processes']} "
        f"jobs_in_flight={ad['jobs_in_flight']} torch_threads={ad['torch_threads']} batching={ad['batching']} "
        f"pid={ad['pid']} threads_env={threads_in_force()}"
    )


def _connect_single_process_hooks(runtime: WorkerRuntime) -> None:
    def on_ready(**_: Any) -> None:
        runtime.start_heartbeat()  # advertised only once Celery consumes, so routing never races start-up
        log.info(_ready_line(runtime))

    def on_shutdown(**_: Any) -> None:
        runtime.close()

    signals.worker_ready.connect(on_ready, weak=False, dispatch_uid="shoprank-rerank-ready")
    signals.worker_shutdown.connect(on_shutdown, weak=False, dispatch_uid="shoprank-rerank-shutdown")


def _connect_prefork_hooks(plan: WorkerPlan, settings: Settings) -> None:
    def load_in_child(**_: Any) -> None:
        try:
            runtime = WorkerRuntime.load(plan, settings)
        except ModelLoadError as exc:
            _log_load_failure(plan, exc)
            logging.shutdown()
            os.kill(os.getppid(), signal.SIGUSR2)  # tell the parent to stop instead of respawning us forever
            os._exit(EXIT_MODEL_LOAD_FAILED)
        install_runtime(runtime)
        runtime.start_heartbeat()
        log.info(_ready_line(runtime))

    def close_in_child(**_: Any) -> None:
        runtime = current_runtime()
        if runtime is not None:
            runtime.close()

    signals.worker_process_init.connect(load_in_child, weak=False, dispatch_uid="shoprank-rerank-child-init")
    signals.worker_process_shutdown.connect(close_in_child, weak=False, dispatch_uid="shoprank-rerank-child-stop")


def _import_model_code() -> None:
    """Import torch and transformers once in the parent so N children do not each spend seconds on it.

    Importing is fork-safe: no CUDA context and no OpenMP thread pool exist until the first
    operation runs, and the parent never runs one.
    """
    import transformers  # noqa: F401

    import reranking.scorers.cross_encoder  # noqa: F401


def _stop_when_a_child_cannot_load() -> None:
    def child_failed(*_: Any) -> None:
        from celery.worker import state

        # warm shutdown, exit status 3 (celery reads an exit code here; celery-types types it None)
        state.should_stop = EXIT_MODEL_LOAD_FAILED  # type: ignore[assignment]  # an exit code, see above

    platforms.signals["SIGUSR2"] = child_failed


def run_worker(options: WorkerOptions, settings: Settings) -> int:
    """Run a rerank worker until it is stopped; the return value is the process exit status."""
    try:
        plan = plan_worker(options, settings)
        app = create_celery_app(settings, role="worker")
    except ConfigError as exc:
        log.critical("FATAL: rerank worker not started: %s", exc)
        return EXIT_BAD_OPTIONS
    register_tasks(app)
    if plan.torch_threads is not None:  # before torch / ONNX Runtime load their thread pools
        threads = worker_thread_plan(settings, available_cores(), plan.processes)
        in_force = apply_thread_environment(threads)
        log.info("rerank worker threads: %d intra-op per process, environment %s", threads.threads, in_force)
    log.info("starting rerank worker: %s", plan.describe())
    try:  # Prometheus scrape port (SHOPRANK_WORKER_METRICS_PORT); prefork children need PROMETHEUS_MULTIPROC_DIR
        start_metrics_server(settings.worker_metrics_port)
    except OSError as exc:
        log.critical("FATAL: rerank worker not started: metrics port %d: %s", settings.worker_metrics_port, exc)
        return EXIT_BAD_OPTIONS

    if plan.pool == "prefork":
        try:  # the parent checks the weights exist (no torch, no CUDA); each child loads them after the fork
            resolve_model(plan.spec.model, allow_download=plan.spec.allow_download)
        except ModelUnavailableError as exc:
            _log_load_failure(plan, exc)
            return EXIT_MODEL_LOAD_FAILED
        _import_model_code()
        _connect_prefork_hooks(plan, settings)
    else:
        try:
            runtime = WorkerRuntime.load(plan, settings)
        except ModelLoadError as exc:
            _log_load_failure(plan, exc)
            return EXIT_MODEL_LOAD_FAILED
        install_runtime(runtime)
        _connect_single_process_hooks(runtime)

    worker_options: dict[str, Any] = {
        "hostname": plan.node,
        "pool_cls": plan.pool,
        "concurrency": plan.processes if plan.pool == "prefork" else plan.jobs_in_flight,
        "queues": [plan.queue],
        "loglevel": options.loglevel,
        "quiet": True,
        "without_gossip": True,
        "without_mingle": True,
        "without_heartbeat": True,
        "optimization": "fair",
        "prefetch_multiplier": 1,
        "redirect_stdouts": False,
    }
    if options.autoscale:
        worker_options["autoscale"] = options.autoscale
    worker = app.Worker(**worker_options)
    if plan.pool == "prefork":
        _stop_when_a_child_cannot_load()
    worker.start()
    return int(worker.exitcode or 0)
