"""CPU reranking benchmark: FlagReranker (the reference) vs our scorer, fp32 and INT8, in one run.

One search request's top-100 (mixed-language queries × product passages, ~100 tokens
per pair; ``bench/rerank_pairs.py``) is scored by each variant in its own subprocess,
so each variant's peak RSS is that process's ``ru_maxrss`` and nothing one variant
loaded is counted against another. Models are random-weight XLM-R cross-encoders with
bge-reranker-v2-m3's exact architecture ("large") and a 6-layer/384 one ("small"),
built once and cached in ``bench/.models/`` (gitignored). Warm-up is excluded from
timing; torch and ONNX Runtime get the same thread count.

Reference: FlagEmbedding 1.4.2's ``FlagReranker.compute_score`` (fp32, CPU), installed
with ``pip install --no-deps --target bench/.flag-site`` so it never enters the
project's environment. Its package ``__init__`` imports ``datasets``, ``peft`` and
``transformers.modeling_attn_mask_utils`` (gone in transformers 5) for fine-tuning and
decoder-only rerankers that ``FlagReranker`` never runs; the reference subprocess
registers stubs for exactly those three, which raise if anything ever touches them.

    python bench/rerank_cpu.py                      # both architectures, all variants
    python bench/rerank_cpu.py --arch small --repeats 3
    python bench/rerank_cpu.py --model /models/bge-reranker-v2-m3   # real weights, where you have them

Prints the results as JSON, then a one-line summary; the JSON is also saved under
``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmark this checkout, not whatever `shoprank` is installed
sys.path.insert(0, str(ROOT / "bench"))

BENCH_DIR = ROOT / "bench"
MODELS_DIR = BENCH_DIR / ".models"
FLAG_SITE = BENCH_DIR / ".flag-site"
RESULTS_DIR = BENCH_DIR / "results"
FLAG_EMBEDDING = "FlagEmbedding==1.4.2"

#: Variants in the order they run. The first is the reference every ratio is taken against.
VARIANTS = ("flagreranker_fp32", "torch_fp32", "torch_int8", "onnx_int8")
EXTRA_VARIANTS = ("onnx_fp32",)
ARCH_NAMES = ("small", "large")

#: Random-weight init per architecture. At the default 0.02 a random XLM-R barely lets the
#: [CLS] token attend to anything, so logits hardly depend on the input (std ~0.003 over the
#: 100 pairs on "small"; Spearman of anything against it is noise). These ranges give logits
#: that spread like a trained reranker's over one request, without driving the network into
#: the chaotic regime where any perturbation (INT8 or otherwise) scrambles the order.
INIT_RANGE = {"small": 0.1, "large": 0.04}
PAIR_COUNT = 100


# ----------------------------------------------------------------------------- measurement helpers


def _status_kb(field: str) -> int:
    """A ``/proc/self/status`` line in kB (VmRSS, VmHWM, RssFile, RssAnon)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _mb(kb: int) -> float:
    return round(kb / 1024, 1)


def _memory_snapshot() -> dict[str, float]:
    return {
        "rss_mb": _mb(_status_kb("VmRSS")),
        "peak_rss_mb": _mb(_status_kb("VmHWM")),
        "rss_file_mb": _mb(_status_kb("RssFile")),
        "rss_anon_mb": _mb(_status_kb("RssAnon")),
    }


# ----------------------------------------------------------------------------- subprocess workers


def _install_flag_stubs() -> list[str]:
    """Stand-ins for the three modules FlagEmbedding imports but FlagReranker never uses."""
    import types
    from importlib.machinery import ModuleSpec

    class _Unused:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("stub from bench/rerank_cpu.py: FlagReranker was not expected to need this")

    class StubModule(types.ModuleType):
        def __getattr__(self, name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            return type(name, (_Unused,), {})

    stubbed = []
    for name in ("datasets", "peft", "transformers.modeling_attn_mask_utils"):
        try:
            __import__(name)
            continue  # the real one is there: use it
        except ImportError:
            pass
        module = StubModule(name)
        module.__spec__ = ModuleSpec(name, None)
        module.__path__ = []  # type: ignore[attr-defined]
        sys.modules[name] = module
        stubbed.append(name)
    return stubbed


def _flag_token_ids(tokenizer: Any, pairs: list[tuple[str, str]], max_length: int = 512) -> list[list[int]]:
    """The ids FlagReranker feeds the model, computed by FlagEmbedding's own helper."""
    from FlagEmbedding.utils.tokenizer_compat import prepare_for_model_compat

    queries = tokenizer(
        [q for q, _ in pairs], add_special_tokens=False, max_length=max_length * 3 // 4, truncation=True
    )
    passages = tokenizer([p for _, p in pairs], add_special_tokens=False, max_length=max_length, truncation=True)
    return [
        list(
            prepare_for_model_compat(tokenizer, q, p, truncation="only_second", max_length=max_length, padding=False)[
                "input_ids"
            ]
        )
        for q, p in zip(queries["input_ids"], passages["input_ids"], strict=True)
    ]


def run_variant(variant: str, model_dir: str, threads: int, repeats: int, token_budget: int | None) -> dict[str, Any]:
    """Load one variant, warm it up, time ``repeats`` passes over the 100 pairs. Runs in its own process."""
    import torch
    from rerank_pairs import benchmark_pairs

    torch.set_num_threads(threads)
    pairs = benchmark_pairs(PAIR_COUNT)
    out: dict[str, Any] = {"variant": variant, "torch_threads": torch.get_num_threads()}
    started = time.perf_counter()
    if variant == "flagreranker_fp32":
        sys.path.insert(0, str(FLAG_SITE))
        out["stubbed_modules"] = _install_flag_stubs()
        import FlagEmbedding
        from FlagEmbedding import FlagReranker

        out["flagembedding_version"] = getattr(FlagEmbedding, "__version__", FLAG_EMBEDDING.split("==")[1])
        reranker = FlagReranker(model_dir, use_fp16=False, devices="cpu")

        def score(batch: list[tuple[str, str]]) -> list[float]:
            return reranker.compute_score([list(p) for p in batch])

        out.update(backend="FlagReranker", dtype="fp32")
    else:
        from reranking import load_scorer

        backend, dtype = variant.split("_")
        scorer = load_scorer(
            model=model_dir,
            device="cpu",
            backend="onnx" if backend == "onnx" else "torch",
            int8=dtype == "int8",
            num_threads=threads,
            max_tokens_per_batch=token_budget,
            allow_fallback=False,
        )
        info = scorer.describe()
        out.update(backend=info["backend"], dtype=info["dtype"], token_budget=scorer.max_tokens_per_batch)
        if info["backend"] == "onnxruntime":
            out["onnx_intra_op_threads"] = scorer.intra_op_threads

        def score(batch: list[tuple[str, str]]) -> list[float]:
            return scorer.compute_score(batch)

    out["load_seconds"] = round(time.perf_counter() - started, 2)
    out["after_load"] = _memory_snapshot()
    score(pairs[:8])  # warm-up: lazy initialisation, kernel selection, allocator growth
    seconds, cpu_seconds = [], []
    scores: list[float] = []
    for _ in range(repeats):
        cpu_tick, tick = _cpu_seconds(), time.perf_counter()
        scores = [float(s) for s in score(pairs)]
        seconds.append(time.perf_counter() - tick)
        cpu_seconds.append(_cpu_seconds() - cpu_tick)
    out["seconds"] = [round(s, 3) for s in seconds]
    out["best_seconds"] = round(min(seconds), 3)
    out["pairs_per_s"] = round(len(pairs) / min(seconds), 3)
    # CPU time (user + sys, all threads) of the same passes: what the work cost, less sensitive than
    # wall time to other processes on the cores (though spin-waiting threads count in it).
    out["cpu_seconds"] = [round(s, 2) for s in cpu_seconds]
    out["pairs_per_cpu_s"] = round(len(pairs) / min(cpu_seconds), 3)
    out["scores"] = scores
    out["after_run"] = _memory_snapshot()
    out["peak_rss_mb"] = _mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    if variant == "flagreranker_fp32":
        out["token_ids"] = _flag_token_ids(reranker.tokenizer, pairs)
    elif variant == "torch_fp32":
        out["token_ids"] = [e.input_ids for e in scorer.encoder.encode(pairs)]
    return out


def build_model(arch: str, directory: Path) -> None:
    """Random-weight cross-encoder with the real tokenizer; a ``.complete`` marker makes reuse safe."""
    from reranking.testing import BGE_M3_ARCHITECTURE, SMALL_ARCHITECTURE, build_random_cross_encoder

    architecture = {"small": SMALL_ARCHITECTURE, "large": BGE_M3_ARCHITECTURE}[arch]
    build_random_cross_encoder(directory, dict(architecture, initializer_range=INIT_RANGE[arch]), seed=0)
    (directory / ".complete").write_text(json.dumps({"arch": arch, "initializer_range": INIT_RANGE[arch]}))


def export_model(directory: Path) -> None:
    from reranking.onnx_export import export_onnx

    result = export_onnx(str(directory), directory / "onnx", int8=True)
    print(json.dumps(result.as_dict()), file=sys.stderr)


# ----------------------------------------------------------------------------- orchestration (parent)


def _log(message: str) -> None:
    print(f"[rerank_cpu {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _child(args: list[str], threads: int) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="false")
    env.setdefault("HF_HUB_OFFLINE", "1")
    return subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args], env=env, text=True, capture_output=True, check=False
    )


def _checked(process: subprocess.CompletedProcess[str], what: str) -> None:
    if process.returncode != 0:
        sys.stderr.write(process.stderr[-6000:])
        raise SystemExit(f"{what} failed (exit {process.returncode})")


def ensure_flagembedding() -> None:
    if (FLAG_SITE / "FlagEmbedding" / "__init__.py").is_file():
        return
    _log(f"installing {FLAG_EMBEDDING} into {FLAG_SITE.relative_to(ROOT)} (pip --no-deps --target; not a project dep)")
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"]
    subprocess.run([*command, "--target", str(FLAG_SITE), FLAG_EMBEDDING], check=True)


def ensure_model(arch: str, threads: int) -> Path:
    directory = MODELS_DIR / f"{arch}-init{INIT_RANGE[arch]}"
    if not (directory / ".complete").is_file():
        shutil.rmtree(directory, ignore_errors=True)
        _log(f"building random-weight {arch} model in {directory.relative_to(ROOT)} (cached for later runs)")
        _checked(_child(["--build", arch, str(directory)], threads), f"building the {arch} model")
    if not (directory / "onnx" / "model_int8.onnx").is_file():
        _log(f"exporting {arch} to ONNX (fp32 + INT8) in {directory.relative_to(ROOT)}/onnx")
        _checked(_child(["--export", str(directory)], threads), f"ONNX export of {arch}")
    return directory


def _rank_agreement(reference: list[float], other: list[float]) -> dict[str, float]:
    import numpy as np
    from scipy.stats import spearmanr

    a, b = np.asarray(reference), np.asarray(other)
    top_a, top_b = set(np.argsort(-a)[:10]), set(np.argsort(-b)[:10])
    return {
        "spearman": round(float(spearmanr(a, b).statistic), 4),
        "top10_overlap": len(top_a & top_b) / 10,
        "max_abs_diff": float(np.abs(a - b).max()),
        "mean_abs_diff": float(np.abs(a - b).mean()),
    }


def compare(arch: str, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ratios against FlagReranker, INT8-vs-fp32 agreement, FlagReranker-vs-ours correctness."""
    import numpy as np

    reference = results["flagreranker_fp32"]
    ours_fp32 = results["torch_fp32"]
    fp32 = np.asarray(ours_fp32["scores"])
    table = {}
    for name, result in results.items():
        row = {
            "backend": result["backend"],
            "dtype": result["dtype"],
            "pairs_per_s": result["pairs_per_s"],
            "ratio_vs_flagreranker": round(result["pairs_per_s"] / reference["pairs_per_s"], 2),
            "pairs_per_cpu_s": result["pairs_per_cpu_s"],
            "cpu_ratio_vs_flagreranker": round(result["pairs_per_cpu_s"] / reference["pairs_per_cpu_s"], 2),
            "peak_rss_mb": result["peak_rss_mb"],
            "load_seconds": result["load_seconds"],
            "best_seconds": result["best_seconds"],
        }
        if result["dtype"] == "int8":
            row["vs_fp32"] = _rank_agreement(ours_fp32["scores"], result["scores"])
        table[name] = row
    flag_ids, our_ids = reference.pop("token_ids"), ours_fp32.pop("token_ids")
    lengths = [len(ids) for ids in our_ids]
    summary: dict[str, Any] = {
        "variants": table,
        "correctness_flagreranker_vs_torch_fp32": {
            "max_abs_diff": float(np.abs(np.asarray(reference["scores"]) - fp32).max()),
            "tokenization_mismatches": sum(a != b for a, b in zip(flag_ids, our_ids, strict=True)),
        },
        "fp32_logit_spread": {"std": round(float(fp32.std()), 4), "min": float(fp32.min()), "max": float(fp32.max())},
        "tokens_per_pair": {"mean": round(float(np.mean(lengths)), 1), "min": min(lengths), "max": max(lengths)},
    }
    best_int8 = max((n for n in table if table[n]["dtype"] == "int8"), key=lambda n: table[n]["pairs_per_s"])
    summary["best_int8_variant"] = best_int8
    if arch in ("large", "model"):
        summary["goals"] = {
            "int8_ratio_ge_4": table[best_int8]["ratio_vs_flagreranker"] >= 4,
            "int8_peak_rss_le_1600mb": table[best_int8]["peak_rss_mb"] <= 1600,
            "fp32_ratio_ge_1.2": table["torch_fp32"]["ratio_vs_flagreranker"] >= 1.2,
        }
    return summary


def summary_line(report: dict[str, Any]) -> str:
    parts = []
    for arch, data in report["architectures"].items():
        rows = data["comparison"]["variants"]
        cells = []
        for name, row in rows.items():
            cell = f"{name} {row['pairs_per_s']:.2f}p/s {row['ratio_vs_flagreranker']:.2f}x"
            cell += f" (cpu {row['cpu_ratio_vs_flagreranker']:.2f}x)"
            cell += f" {row['peak_rss_mb'] / 1024:.2f}GB"
            if "vs_fp32" in row:
                cell += f" rho={row['vs_fp32']['spearman']:.3f} top10={row['vs_fp32']['top10_overlap']:.1f}"
            cells.append(cell)
        diff = data["comparison"]["correctness_flagreranker_vs_torch_fp32"]["max_abs_diff"]
        parts.append(f"{arch}: " + " | ".join(cells) + f" | flag-vs-ours max|diff|={diff:.1e}")
    load = report["loadavg_start"][0], report["loadavg_end"][0]
    return f"rerank_cpu ({report['threads']} threads, load {load[0]:.1f}->{load[1]:.1f}) " + " || ".join(parts)


def main_parent(args: argparse.Namespace) -> None:
    archs = [a.strip() for a in args.arch.split(",") if a.strip()]
    variants = list(VARIANTS) + [v for v in args.extra if v in EXTRA_VARIANTS]
    ensure_flagembedding()
    report: dict[str, Any] = {
        "benchmark": "rerank_cpu",
        "pairs": PAIR_COUNT,
        "threads": args.threads,
        "repeats": args.repeats,
        "timing": "best of repeats, warm-up excluded",
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "architectures": {},
    }
    targets = [(arch, None) for arch in archs]
    if args.model:  # a real checkpoint instead of the random ones (its ONNX export is made in MODEL/onnx)
        targets = [("model", Path(args.model).resolve())]
    for arch, given in targets:
        model_dir = given or ensure_model(arch, args.threads)
        if given is not None and not (given / "onnx" / "model_int8.onnx").is_file():
            _log(f"exporting {given} to ONNX (fp32 + INT8) in {given}/onnx")
            _checked(_child(["--export", str(given)], args.threads), f"ONNX export of {given}")
        repeats = args.repeats or (3 if arch == "small" else 1)
        results: dict[str, dict[str, Any]] = {}
        for variant in variants:
            loadavg = [round(x, 2) for x in os.getloadavg()]
            _log(f"{arch} / {variant} (load {loadavg[0]:.2f})")
            worker_args = ["--worker", variant, str(model_dir), "--threads", str(args.threads)]
            worker_args += ["--repeats", str(repeats)]
            if args.token_budget:
                worker_args += ["--token-budget", str(args.token_budget)]
            process = _child(worker_args, args.threads)
            _checked(process, f"{arch} / {variant}")
            result = json.loads(process.stdout.strip().splitlines()[-1])
            result["loadavg_before"] = loadavg
            results[variant] = result
            _log(f"  {result['pairs_per_s']:.2f} pairs/s, peak RSS {result['peak_rss_mb']:.0f} MB")
        comparison = compare(arch, results)
        for result in results.values():
            result.pop("scores")
        report["architectures"][arch] = {
            "model_dir": str(model_dir.relative_to(ROOT)) if model_dir.is_relative_to(ROOT) else str(model_dir),
            "initializer_range": INIT_RANGE.get(arch),
            "repeats": repeats,
            "comparison": comparison,
            "runs": results,
        }
    report["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    if report["loadavg_start"][0] > args.threads or report["loadavg_end"][0] > args.threads:
        report["warning"] = (
            "load average above the thread count: other work shared the cores, so wall-clock ratios move from run "
            "to run; the CPU-time ratios are steadier; re-run when the machine is quieter"
        )
    line = summary_line(report)
    report["summary"] = line
    RESULTS_DIR.mkdir(exist_ok=True)
    saved = RESULTS_DIR / f"rerank_cpu-{time.strftime('%Y%m%d-%H%M%S')}.json"
    saved.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2, ensure_ascii=False))
    print(line)
    _log(f"saved {saved.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="small,large", help="comma-separated: small, large (default both)")
    parser.add_argument("--model", help="benchmark this local model directory instead of the random ones")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for every variant (default 2)")
    parser.add_argument("--repeats", type=int, default=0, help="timed passes per variant (default: 3 small, 1 large)")
    parser.add_argument("--token-budget", type=int, default=None, help="override our scorer's padded tokens per batch")
    parser.add_argument("--extra", nargs="*", default=[], help=f"extra variants: {', '.join(EXTRA_VARIANTS)}")
    parser.add_argument("--worker", nargs=2, metavar=("VARIANT", "MODEL_DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--build", nargs=2, metavar=("ARCH", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--export", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        variant, model_dir = args.worker
        print(json.dumps(run_variant(variant, model_dir, args.threads, args.repeats or 1, args.token_budget)))
    elif args.build:
        build_model(args.build[0], Path(args.build[1]))
    elif args.export:
        export_model(Path(args.export))
    else:
        main_parent(args)


if __name__ == "__main__":
    main()
