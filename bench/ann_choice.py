"""Which dense index for the first stage: our IVF over a memory-mapped ``.npy`` vs hnswlib, usearch and faiss.

Same clustered 384-d vectors for all (``bench/catalog_scale.py``'s generator), one run, side by side:
build seconds, query p50 (top 100), recall@100 against an exact scan, a 10 %-selective filtered query,
and what a *second process* that opens the saved index and runs 50 queries adds in anonymous memory
(a heap copy of the index; memory-mapped index pages are page cache, shared by every process).

Needs the three libraries, which are not project dependencies: ``pip install hnswlib usearch faiss-cpu``.
Usage: ``python bench/ann_choice.py --rows 100000``; prints JSON and a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.benchstats import percentile  # noqa: E402
from bench.catalog_scale import generate  # noqa: E402

SECOND_PROCESS = r"""
import sys, time, numpy as np
from pathlib import Path
engine, path, dim = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
def uss():  # anonymous memory: heap copies; mapped index files are page cache shared by every process
    kb = 0
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith("Anonymous:"):
            kb += int(line.split()[1])
    return kb / 1024
queries = np.random.default_rng(5).normal(size=(50, dim)).astype(np.float32)
queries /= np.linalg.norm(queries, axis=1, keepdims=True)
if engine == "ivf":
    sys.path.insert(0, sys.argv[4])
    from search.vector_index import VectorIndex
    before = uss(); index = VectorIndex.open(path)
    search = lambda q: index.search(q, 100)
elif engine == "hnswlib":
    import hnswlib
    before = uss(); index = hnswlib.Index(space="ip", dim=dim)
    index.load_index(str(path / "hnsw.bin")); index.set_ef(160)
    search = lambda q: index.knn_query(q, k=100)
elif engine == "usearch":
    from usearch.index import Index
    before = uss(); index = Index.restore(str(path / "usearch.bin"), view=True)
    search = lambda q: index.search(q, 100)
else:
    import faiss
    before = uss()
    index = faiss.read_index(str(path / "faiss.bin"), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    index.nprobe = int(sys.argv[5]); search = lambda q: index.search(q[None, :], 100)
for q in queries:
    search(q)
print(round(uss() - before, 1))
"""


def timed(fn, queries) -> tuple[list, float]:
    out, latencies = [], []
    for q in queries:
        started = time.perf_counter()
        out.append(fn(q))
        latencies.append((time.perf_counter() - started) * 1000)
    return out, percentile(latencies, 50)


def entry(build: float, p50: float, found_recall: float, filtered_p50: float | None, second: float) -> dict:
    filtered = None if filtered_p50 is None else round(filtered_p50, 2)
    return {"build_s": round(build, 1), "query_ms_p50": round(p50, 2), "recall@100": round(found_recall, 4),
            "filtered_ms_p50": filtered, "second_process_mb": second}  # fmt: skip


def recall(found: list[np.ndarray], exact: list[set]) -> float:
    return float(np.mean([len(set(np.asarray(f).tolist()) & e) / 100 for f, e in zip(found, exact, strict=True)]))


def second_process(engine: str, path: Path, dim: int, *extra: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", SECOND_PROCESS, engine, str(path), str(dim), str(ROOT), *extra],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        return float("nan")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    vectors = np.concatenate([v for _, v in generate(args.rows, seed=11)])
    dim = vectors.shape[1]
    rng = np.random.default_rng(2)
    picks = rng.integers(0, len(vectors), args.queries)
    queries = vectors[picks] + 0.5 * rng.normal(size=(args.queries, dim)).astype(np.float32) / math.sqrt(dim)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = [set(np.argpartition(-(vectors @ q), 99)[:100].tolist()) for q in queries]
    allowed = rng.random(len(vectors)) < 0.10
    lists = int(2 * math.sqrt(args.rows))
    probes = max(8, lists // 16)
    results: dict[str, dict] = {}
    work = Path(tempfile.mkdtemp(prefix="ann-choice-"))

    from search.vector_index import VectorIndex, plan_layout, save

    started = time.perf_counter()
    layout = plan_layout(vectors, lists)
    np.save(work / "vectors.npy", vectors[layout.order])
    save(work, layout)
    build = time.perf_counter() - started
    ivf = VectorIndex.open(work, probes)
    found, p50 = timed(lambda q: layout.order[ivf.search(q, 100)[0]], queries)
    stored_allowed = allowed[layout.order]
    _, filtered_p50 = timed(lambda q: ivf.search(q, 100, stored_allowed), queries)
    results["ivf_numpy_mmap"] = entry(
        build, p50, recall(found, exact), round(filtered_p50, 2), second_process("ivf", work, dim)
    )

    import hnswlib

    started = time.perf_counter()
    hnsw = hnswlib.Index(space="ip", dim=dim)
    hnsw.init_index(max_elements=len(vectors), M=16, ef_construction=100)
    hnsw.add_items(vectors, num_threads=2)
    build = time.perf_counter() - started
    hnsw.set_ef(160)
    hnsw.save_index(str(work / "hnsw.bin"))
    found, p50 = timed(lambda q: hnsw.knn_query(q, k=100)[0][0], queries)
    allowed_ids = set(np.flatnonzero(allowed).tolist())
    _, filtered_p50 = timed(lambda q: hnsw.knn_query(q, k=100, filter=lambda i: i in allowed_ids), queries[:20])
    results["hnswlib"] = entry(
        build, p50, recall(found, exact), round(filtered_p50, 2), second_process("hnswlib", work, dim)
    )

    from usearch.index import Index

    started = time.perf_counter()
    usearch_index = Index(ndim=dim, metric="ip", dtype="f32", connectivity=16, expansion_add=100, expansion_search=160)
    usearch_index.add(np.arange(len(vectors)), vectors, threads=2)
    build = time.perf_counter() - started
    usearch_index.save(str(work / "usearch.bin"))
    found, p50 = timed(lambda q: usearch_index.search(q, 100).keys, queries)
    results["usearch"] = entry(build, p50, recall(found, exact), None, second_process("usearch", work, dim))

    import faiss

    faiss.omp_set_num_threads(2)
    started = time.perf_counter()
    quantizer = faiss.IndexFlatIP(dim)
    flat = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
    flat.train(vectors[rng.choice(len(vectors), min(len(vectors), lists * 48), replace=False)])
    flat.add(vectors)
    build = time.perf_counter() - started
    flat.nprobe = probes
    faiss.write_index(flat, str(work / "faiss.bin"))
    found, p50 = timed(lambda q: flat.search(q[None, :], 100)[1][0], queries)
    selector = faiss.IDSelectorBatch(np.flatnonzero(allowed).astype(np.int64))
    params = faiss.SearchParametersIVF(sel=selector, nprobe=probes)
    _, filtered_p50 = timed(lambda q: flat.search(q[None, :], 100, params=params), queries)
    results["faiss_ivfflat"] = entry(
        build, p50, recall(found, exact), round(filtered_p50, 2), second_process("faiss", work, dim, str(probes))
    )

    loadavg = Path("/proc/loadavg").read_text().split()[:3]
    report = {"rows": args.rows, "dim": dim, "lists": lists, "probes": probes, "loadavg": loadavg, "engines": results}
    print(json.dumps(report, indent=2))
    print(
        "; ".join(
            f"{name}: build {r['build_s']} s, p50 {r['query_ms_p50']} ms, recall {r['recall@100']}, "
            f"filtered {r['filtered_ms_p50']} ms, 2nd process +{r['second_process_mb']} MB"
            for name, r in results.items()
        )
    )


if __name__ == "__main__":
    main()
