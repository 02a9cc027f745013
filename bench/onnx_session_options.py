"""ONNX Runtime session options for the INT8 reranker on busy shared cores, side by side in one process.

Variants (spinning on/off, memory pattern on/off, graph optimisation ALL/EXTENDED) score the benchmark's pairs
(``bench/rerank_pairs.py``) 25 at a time for 4 s each, 3 interleaved rounds; prints the median pairs/s per
variant as one JSON line with the load average (docs/cpu-serving.md, "ONNX Runtime INT8 under load").

    PYTHONPATH=. python bench/onnx_session_options.py bench/.models/small-init0.1
"""

import json
import os
import sys
import time

sys.path.insert(0, "bench")
import onnxruntime as ort
from rerank_pairs import benchmark_pairs

from reranking.loading import load_scorer

model = sys.argv[1]
base = load_scorer(model=model, backend="onnx", int8=True, num_threads=2, allow_fallback=False)
graph = base.session._model_path


def session(mem_pattern=True, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL, spin=False, threads=2):
    o = ort.SessionOptions()
    o.graph_optimization_level = level
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.inter_op_num_threads = 1
    o.intra_op_num_threads = threads
    o.enable_mem_pattern = mem_pattern
    o.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(graph, sess_options=o, providers=["CPUExecutionProvider"])


variants = {
    "nospin": session(),
    "nospin_nomempattern": session(mem_pattern=False),
    "spin": session(spin=True),
    "nospin_extended": session(level=ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED),
}
pairs = benchmark_pairs(100)
res = {k: [] for k in variants}
for _round in range(3):
    for name, sess in variants.items():
        base.session = sess
        base.score_pairs(pairs[:10])
        t = time.perf_counter()
        n = 0
        while time.perf_counter() - t < 4:
            base.score_pairs(pairs[(n // 25 % 4) * 25 : (n // 25 % 4) * 25 + 25])
            n += 25
        res[name].append(n / (time.perf_counter() - t))
print(json.dumps({k: sorted(v)[1] for k, v in res.items()}), os.getloadavg())
