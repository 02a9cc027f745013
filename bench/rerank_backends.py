"""Torch INT8 against ONNX Runtime INT8 (no spinning) in one process, 2 threads each, interleaved rounds.

Both scorers load the same model; 3 rounds of 12 s each score the benchmark's pairs 5 at a time. Prints one JSON
line: pairs/s and pairs per CPU-second per round and their medians, the CPU and its INT8 flags, the load average.
Run with the worker's thread policy in the environment (docs/cpu-serving.md):

    OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE PYTHONPATH=. python bench/rerank_backends.py bench/.models/large-init0.04
"""

import json
import os
import resource
import sys
import time

sys.path.insert(0, "bench")
from rerank_pairs import benchmark_pairs

from reranking.loading import load_scorer
from reranking.threads import cpu_info

model = sys.argv[1]
t0 = time.time()
scorers = {
    "torch_int8": load_scorer(model=model, backend="torch", int8=True, num_threads=2, allow_fallback=False),
    "onnx_int8_nospin": load_scorer(
        model=model, backend="onnx", int8=True, num_threads=2, allow_fallback=False, spinning=False
    ),
}
load_s = time.time() - t0
pairs = benchmark_pairs(100)
for s in scorers.values():
    s.score_pairs(pairs[:4])
res = {k: [] for k in scorers}
cpu = {k: [] for k in scorers}
la0 = os.getloadavg()
for _round in range(3):
    for name, sc in scorers.items():
        u0 = resource.getrusage(resource.RUSAGE_SELF)
        t = time.perf_counter()
        n = 0
        while time.perf_counter() - t < 12:
            i = (n // 5) % 20
            sc.score_pairs(pairs[i * 5 : i * 5 + 5])
            n += 5
        w = time.perf_counter() - t
        u1 = resource.getrusage(resource.RUSAGE_SELF)
        res[name].append(round(n / w, 2))
        cpu[name].append(round(n / ((u1.ru_utime - u0.ru_utime) + (u1.ru_stime - u0.ru_stime)), 2))
print(
    json.dumps(
        {
            "model": model,
            "cpu": cpu_info(),
            "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")},
            "pairs_per_s_rounds": res,
            "pairs_per_cpu_s_rounds": cpu,
            "median_pairs_per_s": {k: sorted(v)[1] for k, v in res.items()},
            "median_pairs_per_cpu_s": {k: sorted(v)[1] for k, v in cpu.items()},
            "load_average_before": la0,
            "load_average_after": os.getloadavg(),
            "load_s": round(load_s, 1),
        }
    )
)
