"""INT8 memory and fidelity: resident memory after loading + one scoring pass, and agreement with fp32.

Each variant runs in its own subprocess (so nothing one loaded counts against another) on the
100 benchmark pairs (``bench/rerank_pairs.py``, the ones ``bench/rerank_cpu.py`` scores), with the
random-weight models ``bench/rerank_cpu.py`` builds and caches in ``bench/.models/``:

* ``torch_fp32``: the reference scores;
* ``torch_int8_linear``: torch INT8 as it was before issue 27 (Linear layers only; embeddings fp32);
* ``torch_int8``: torch INT8 as served now (Linear layers + per-row INT8 embedding tables);
* ``onnx_int8``: the ONNX Runtime INT8 export (``shoprank model export-onnx --int8``).

Resident memory is ``VmRSS`` after the load and one pass over the 100 pairs; the peak (``VmHWM``)
is reported beside it. Fidelity is Spearman's rho and max |Δ logit| against ``torch_fp32``.

    python bench/int8_memory.py --arch large          # the bge-reranker-v2-m3 shape
    python bench/int8_memory.py --arch small,large --variants torch_int8_linear,torch_int8

Prints JSON, then a one-line summary; the JSON is saved under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rerank_cpu import (  # noqa: E402  (bench/ is put on the path just above)
    PAIR_COUNT,
    RESULTS_DIR,
    _checked,
    _log,
    _memory_snapshot,
    _rank_agreement,
    ensure_model,
)

VARIANTS = ("torch_fp32", "torch_int8_linear", "torch_int8", "onnx_int8")
#: The goal for the v2-m3 shape (issue 27): resident after load + one scoring pass.
RSS_GOAL_MB = 800


def _child(args: list[str], threads: int) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="false")
    env.setdefault("HF_HUB_OFFLINE", "1")
    command = [sys.executable, str(Path(__file__).resolve()), *args]
    return subprocess.run(command, env=env, text=True, capture_output=True, check=False)


def run_variant(variant: str, model_dir: str, threads: int) -> dict[str, Any]:
    """Load one variant, score the pairs once, report memory and scores. Runs in its own process."""
    from rerank_pairs import benchmark_pairs

    pairs = benchmark_pairs(PAIR_COUNT)
    before = _memory_snapshot()
    started = time.perf_counter()
    scorer: Any
    if variant == "onnx_int8":
        from reranking.scorers.onnx import OnnxCrossEncoder

        scorer = OnnxCrossEncoder.from_export(model_dir, int8=True, num_threads=threads, allow_download=False)
    else:
        from reranking.scorers.cross_encoder import TorchCrossEncoder

        scorer = TorchCrossEncoder.from_pretrained(
            model_dir,
            device="cpu",
            int8=variant != "torch_fp32",
            quantize_embeddings=variant == "torch_int8",
            num_threads=threads,
            allow_download=False,
        )
    load_seconds = time.perf_counter() - started
    after_load = _memory_snapshot()
    tick = time.perf_counter()
    scores = [float(s) for s in scorer.compute_score(pairs)]
    return {
        "variant": variant,
        "torch_imported": "torch" in sys.modules,
        "load_seconds": round(load_seconds, 2),
        "score_seconds": round(time.perf_counter() - tick, 2),
        "before_load": before,
        "after_load": after_load,
        "after_score": _memory_snapshot(),
        "scores": scores,
    }


def main_parent(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "benchmark": "int8_memory",
        "pairs": PAIR_COUNT,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "loadavg_start": list(os.getloadavg()),
        "architectures": {},
    }
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if "torch_fp32" not in variants:
        variants.insert(0, "torch_fp32")
    for arch in [a.strip() for a in args.arch.split(",") if a.strip()]:
        model_dir = ensure_model(arch, args.threads)
        runs: dict[str, dict[str, Any]] = {}
        for variant in variants:
            loadavg = list(os.getloadavg())
            _log(f"{arch} / {variant} (load {loadavg[0]:.2f})")
            process = _child(["--worker", variant, str(model_dir), "--threads", str(args.threads)], args.threads)
            _checked(process, f"{arch} / {variant}")
            run = json.loads(process.stdout.strip().splitlines()[-1])
            run["loadavg_before"], run["loadavg_after"] = loadavg, list(os.getloadavg())
            runs[variant] = run
            _log(f"  RSS {run['after_score']['rss_mb']:.0f} MB (peak {run['after_score']['peak_rss_mb']:.0f})")
        reference = runs["torch_fp32"]["scores"]
        table = {}
        for variant, run in runs.items():
            row: dict[str, Any] = {
                "rss_mb": run["after_score"]["rss_mb"],
                "peak_rss_mb": run["after_score"]["peak_rss_mb"],
                "rss_after_load_mb": run["after_load"]["rss_mb"],
                "load_seconds": run["load_seconds"],
                "torch_imported": run["torch_imported"],
            }
            if variant != "torch_fp32":
                row["vs_fp32"] = _rank_agreement(reference, run["scores"])
            table[variant] = row
        for run in runs.values():
            run.pop("scores")
        report["architectures"][arch] = {"model_dir": str(model_dir), "table": table, "runs": runs}
    report["loadavg_end"] = list(os.getloadavg())
    report["summary"] = summary_line(report)
    return report


def summary_line(report: dict[str, Any]) -> str:
    parts = []
    for arch, data in report["architectures"].items():
        cells = []
        for variant, row in data["table"].items():
            cell = f"{variant} {row['rss_mb']:.0f}MB"
            if "vs_fp32" in row:
                cell += f" rho={row['vs_fp32']['spearman']:.4f} max|d|={row['vs_fp32']['max_abs_diff']:.3f}"
            cells.append(cell)
        parts.append(f"{arch}: " + " | ".join(cells))
    start, end = report["loadavg_start"][0], report["loadavg_end"][0]
    return f"int8_memory (load {start:.2f}->{end:.2f}) " + " || ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="large", help="comma-separated: small, large (default large)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", nargs=2, metavar=("VARIANT", "MODEL_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_variant(args.worker[0], args.worker[1], args.threads)))
        return
    report = main_parent(args)
    RESULTS_DIR.mkdir(exist_ok=True)
    saved = RESULTS_DIR / f"int8_memory-{time.strftime('%Y%m%d-%H%M%S')}.json"
    saved.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    print(report["summary"])


if __name__ == "__main__":
    main()
