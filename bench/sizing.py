"""Sizing for operators: pairs/s per core for each shape × path × passage budget, and what it means in searches/s.

One command measures, on this machine, the model throughput a CPU worker gets for each
architecture (``small``: 6 × 384; ``large``: bge-reranker-v2-m3's 24 × 1024, random weights from
``bench/rerank_cpu.py``'s cache), each INT8 path (torch, ONNX Runtime) and each passage token
budget (64/128/256/512; ``reranking.passage_budget``), on passages with feed-length descriptions
(≥ 1,000 characters). One subprocess per shape × path loads the scorer once and scores the same
pairs at every budget in rotating order, round after round, so the budgets are compared side by
side under the same machine load; the figures are medians over rounds. No cache: every pair is
model work.

From the measured pairs/s per core it derives cold searches/s per core at rerank depth 10 and 30
for cache hit rates 0/50/90 %: ``pairs/s per core ÷ (depth × (1 − hit rate))``. Workers needed
for a traffic: docs/cpu-serving-sizing.md, "Sizing workers".

    python bench/sizing.py                                  # both shapes, both paths, all budgets
    python bench/sizing.py --arch small --rounds 5 --pairs 64

Writes ``bench/results/sizing-<time>.json`` and ``.md`` (the Markdown table the docs carry), prints
the JSON and a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rerank_cpu import RESULTS_DIR, _checked, _log, ensure_model  # noqa: E402  (bench/ is on the path above)

PATHS = ("torch_int8", "onnx_int8")
BUDGETS = (64, 128, 256, 512)
DEPTHS = (10, 30)
HIT_RATES = (0.0, 0.5, 0.9)
#: Pairs per budget and round: the large shape runs ~1 pair/s per core at 512 tokens, so few pairs each.
DEFAULT_PAIRS = {"small": 32, "large": 8}
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "fma")


def machine() -> dict[str, Any]:
    """CPU model, the SIMD flags INT8 kernels care about, cores: which machine the numbers come from."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and ":" in line:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {"cpu_model": model, "flags": [f for f in CPU_FLAGS if f in flags], "cpu_count": os.cpu_count()}


def feed_pairs(count: int, seed: int = 29) -> list[tuple[str, str]]:
    """(query, passage) pairs whose products have feed-length descriptions (≥ 1,000 characters)."""
    from rerank_pairs import _CATALOG, _SELLER_NOTES, QUERIES

    from reranking import format_passage

    rng = random.Random(seed)
    pairs = []
    for i in range(count):
        en_title, _, brand, en_desc, _, attributes = _CATALOG[i % len(_CATALOG)]
        sentences = [en_desc, *_SELLER_NOTES]
        description = " ".join(rng.choice(sentences) for _ in range(40))
        while len(description) < 1000:  # never happens with 40 sentences; the contract is the point
            description += " " + rng.choice(sentences)
        product = {
            "title": f"{en_title} {rng.choice(['', '2024', 'Pro', 'Plus'])}".strip(),
            "brand": brand,
            "description": description,
            "attributes": dict(attributes, sku=f"SR-{rng.randint(10000, 99999)}"),
            "price": round(rng.uniform(5, 900), 2),
            "currency": "EUR",
        }
        pairs.append((QUERIES[i % len(QUERIES)], format_passage(product)))
    return pairs


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_cell(arch: str, path: str, model_dir: str, threads: int, pairs_count: int, rounds: int) -> dict[str, Any]:
    """One shape × path in this process: every budget, ``rounds`` times, in rotating order."""
    from reranking import load_scorer

    scorer = load_scorer(
        model=model_dir,
        device="cpu",
        backend="onnx" if path == "onnx_int8" else "torch",
        int8=True,
        num_threads=threads,
        allow_fallback=False,
        allow_download=False,
    )
    pairs = feed_pairs(pairs_count)
    encoder = scorer.encoder  # type: ignore[attr-defined]  # a cross-encoder (allow_fallback=False)
    tokens = {b: sum(len(e.input_ids) for e in encoder.encode(pairs, b)) / len(pairs) for b in BUDGETS}
    scorer.score_pairs(pairs[:2], passage_tokens=64)  # warm-up: kernel selection, allocator growth
    wall: dict[int, list[float]] = {b: [] for b in BUDGETS}
    cpu: dict[int, list[float]] = {b: [] for b in BUDGETS}
    loads = []
    for round_ in range(rounds):
        order = BUDGETS[round_ % len(BUDGETS) :] + BUDGETS[: round_ % len(BUDGETS)]
        for budget in order:
            loads.append(os.getloadavg()[0])
            cpu_tick, tick = _cpu_seconds(), time.perf_counter()
            scorer.score_pairs(pairs, passage_tokens=budget)
            wall[budget].append(time.perf_counter() - tick)
            cpu[budget].append(_cpu_seconds() - cpu_tick)
    by_budget = {}
    for budget in BUDGETS:
        seconds = statistics.median(wall[budget])
        by_budget[str(budget)] = {
            "tokens_per_pair": round(tokens[budget], 1),
            "pairs_per_s": round(len(pairs) / seconds, 3),
            "pairs_per_s_wall_per_thread": round(len(pairs) / seconds / threads, 3),
            # Per core = per CPU-second the worker's threads actually ran: on a shared machine wall time
            # includes waiting for a core, CPU time does not (spin-waiting threads still count in it).
            "pairs_per_s_per_core": round(len(pairs) / statistics.median(cpu[budget]), 3),
            "seconds": [round(s, 3) for s in wall[budget]],
            "cpu_seconds": [round(s, 3) for s in cpu[budget]],
        }
    return {
        "arch": arch,
        "path": path,
        "backend": scorer.info.backend,
        "threads": threads,
        "pairs": len(pairs),
        "rounds": rounds,
        "loadavg_during": [round(min(loads), 2), round(statistics.median(loads), 2), round(max(loads), 2)],
        "budgets": by_budget,
    }


def derive(cells: list[dict[str, Any]]) -> None:
    """Speed-ups against 512 tokens and cold searches/s per core at each depth × hit rate, in place."""
    for cell in cells:
        base = cell["budgets"]["512"]
        for row in cell["budgets"].values():
            row["speedup_vs_512"] = round(row["pairs_per_s_per_core"] / base["pairs_per_s_per_core"], 2)
            row["wall_speedup_vs_512"] = round(row["pairs_per_s"] / base["pairs_per_s"], 2)
            row["searches_per_s_per_core"] = {
                f"depth{d}_hit{round(h * 100)}": round(row["pairs_per_s_per_core"] / (d * (1 - h)), 3)
                for d in DEPTHS
                for h in HIT_RATES
            }


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"Measured {report['date']} on {m['cpu_model']} ({m['cpu_count']} cores; flags: {', '.join(m['flags'])}), "
        f"{report['threads']} threads per worker, load average {report['loadavg_start'][0]:.2f} → "
        f"{report['loadavg_end'][0]:.2f} (other agents were running on the machine); medians of "
        f"{report['rounds']} rounds, feed-length passages (descriptions ≥ 1,000 characters).",
        "",
        "Pairs/s per core = pairs per CPU-second of the worker's threads; × vs 512 on that basis, and on wall "
        "time in brackets.",
        "",
        "| shape | path | budget | tokens/pair | pairs/s per core | × vs 512 | cold searches/s per core: "
        "depth 10 @ 0 / 50 / 90 % hits | depth 30 @ 0 / 50 / 90 % hits |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for cell in report["cells"]:
        for budget, row in cell["budgets"].items():
            s = row["searches_per_s_per_core"]
            d10 = " / ".join(f"{s[f'depth10_hit{h}']:.2f}" for h in (0, 50, 90))
            d30 = " / ".join(f"{s[f'depth30_hit{h}']:.2f}" for h in (0, 50, 90))
            lines.append(
                f"| {cell['arch']} | {cell['path']} | {budget} | {row['tokens_per_pair']:.0f} | "
                f"{row['pairs_per_s_per_core']:.2f} | {row['speedup_vs_512']:.2f} "
                f"({row['wall_speedup_vs_512']:.2f}) | {d10} | {d30} |"
            )
    return "\n".join(lines) + "\n"


def summary_line(report: dict[str, Any]) -> str:
    parts = []
    for cell in report["cells"]:
        b = cell["budgets"]
        parts.append(
            f"{cell['arch']}/{cell['path']} 512:{b['512']['pairs_per_s_per_core']:.2f} "
            f"128:{b['128']['pairs_per_s_per_core']:.2f} p/s/core (128 = {b['128']['speedup_vs_512']:.2f}x)"
        )
    start, end = report["loadavg_start"][0], report["loadavg_end"][0]
    return f"sizing (load {start:.2f}->{end:.2f}) " + " | ".join(parts)


def _child(args: list[str], threads: int) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="false")
    env.setdefault("HF_HUB_OFFLINE", "1")
    command = [sys.executable, str(Path(__file__).resolve()), *args]
    return subprocess.run(command, env=env, text=True, capture_output=True, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="small,large", help="comma-separated: small, large")
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, of {', '.join(PATHS)}")
    parser.add_argument("--threads", type=int, default=2, help="threads per worker = cores it uses (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every budget (default 3)")
    parser.add_argument("--pairs", type=int, default=0, help="pairs per budget and round (default 32 small, 8 large)")
    parser.add_argument("--cell", nargs=3, metavar=("ARCH", "PATH", "MODEL_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cell:
        arch, path, model_dir = args.cell
        pairs = args.pairs or DEFAULT_PAIRS[arch]
        print(json.dumps(run_cell(arch, path, model_dir, args.threads, pairs, args.rounds)))
        return
    report: dict[str, Any] = {
        "benchmark": "sizing",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "threads": args.threads,
        "rounds": args.rounds,
        "loadavg_start": list(os.getloadavg()),
        "cells": [],
    }
    for arch in [a.strip() for a in args.arch.split(",") if a.strip()]:
        model_dir = ensure_model(arch, args.threads)
        for path in [p.strip() for p in args.paths.split(",") if p.strip()]:
            before = list(os.getloadavg())
            _log(f"{arch} / {path} (load {before[0]:.2f})")
            cell_args = ["--cell", arch, path, str(model_dir), "--threads", str(args.threads)]
            cell_args += ["--rounds", str(args.rounds), "--pairs", str(args.pairs)]
            process = _child(cell_args, args.threads)
            _checked(process, f"{arch} / {path}")
            cell = json.loads(process.stdout.strip().splitlines()[-1])
            cell["loadavg_before"], cell["loadavg_after"] = before, list(os.getloadavg())
            report["cells"].append(cell)
            _log(f"  {json.dumps({b: r['pairs_per_s_per_core'] for b, r in cell['budgets'].items()})} pairs/s/core")
    report["loadavg_end"] = list(os.getloadavg())
    derive(report["cells"])
    report["summary"] = summary_line(report)
    RESULTS_DIR.mkdir(exist_ok=True)
    stem = RESULTS_DIR / f"sizing-{time.strftime('%Y%m%d-%H%M%S')}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    stem.with_suffix(".md").write_text(markdown(report), encoding="utf-8")
    print(json.dumps(report, indent=2))
    print(markdown(report))
    print(report["summary"])


if __name__ == "__main__":
    main()
