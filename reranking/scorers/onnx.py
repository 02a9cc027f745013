"""Cross-encoder scoring with ONNX Runtime on CPU, from a graph made by ``reranking.onnx_export``.

Same encode → token-budget batches → restore-order pipeline as the torch scorer
(``CrossEncoderScorer``); only the forward pass differs. The INT8 graph has its
embedding tables quantized too, which is what keeps a bge-reranker-v2-m3 CPU worker
well under the torch INT8 path's memory (docs/performance.md).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from reranking.batching import DEFAULT_MAX_BATCH_SIZE
from reranking.model_source import DEFAULT_MODEL, resolve_model
from reranking.onnx_export import OnnxExportMissingError, export_command, find_onnx_export
from reranking.scorers.base import ScorerInfo
from reranking.scorers.cross_encoder import DEFAULT_TOKEN_BUDGET, CrossEncoderScorer
from reranking.tokenization import PairEncoder

log = logging.getLogger(__name__)

BACKEND_NAME = "onnxruntime"


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _file_fingerprint(path: Path) -> str:
    """Re-exporting (other settings, other source) changes the cache namespace; touching nothing does not."""
    digest = hashlib.sha1(usedforsecurity=False)  # a change detector, not a security hash
    for file in sorted(path.parent.glob(path.name + "*")):  # the graph and its external-data file, if any
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:12]


class OnnxCrossEncoder(CrossEncoderScorer):
    """A single-logit cross-encoder graph run by an ``onnxruntime.InferenceSession`` (CPU)."""

    def __init__(self, session: Any, encoder: PairEncoder, info: ScorerInfo, **kwargs: Any) -> None:
        super().__init__(encoder, info, **kwargs)
        self.session = session
        self._input_names = {i.name for i in session.get_inputs()}

    @classmethod
    def from_export(
        cls,
        model_name_or_path: str = DEFAULT_MODEL,
        *,
        int8: bool = True,
        max_length: int = 512,
        max_tokens_per_batch: int | None = None,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        allow_download: bool = True,
        num_threads: int | None = None,
        spinning: bool = False,
    ) -> OnnxCrossEncoder:
        """Load the ONNX export that belongs to a model directory (``MODEL/onnx/``) or an export directory.

        Raises ``ModelUnavailableError`` when the model itself is absent, and
        ``OnnxExportMissingError`` (naming the export command) when only the export is.
        """
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ImportError(
                "the ONNX backend needs onnxruntime: pip install 'onnxruntime>=1.18' (or shoprank[onnx])"
            ) from exc
        from transformers import AutoConfig, AutoTokenizer

        resolved = resolve_model(model_name_or_path, allow_download=allow_download)
        graph = find_onnx_export(resolved.path, int8=int8)
        if graph is None:
            raise OnnxExportMissingError(
                f"no {'INT8 ' if int8 else ''}ONNX export for {model_name_or_path} "
                f"(looked in {resolved.path / 'onnx'} and {resolved.path}); create it with: "
                + export_command(model_name_or_path, int8)
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = num_threads or 0  # 0 = ONNX Runtime's choice (physical cores)
        # ONNX Runtime's pool spins between runs by default: on cores shared with the web tier that spinning
        # takes the CPU a descheduled pool thread needs, and every run waits for its slowest thread.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
        session = ort.InferenceSession(str(graph), sess_options=options, providers=["CPUExecutionProvider"])

        # The tokenizer and config are copied next to the graph on export; fall back to the model directory.
        meta_dir = graph.parent if (graph.parent / "config.json").is_file() else resolved.path
        tokenizer = AutoTokenizer.from_pretrained(meta_dir)  # nosec B615 - a local directory
        config = AutoConfig.from_pretrained(meta_dir)  # nosec B615 - a local directory
        model_max = getattr(config, "max_position_embeddings", max_length + 2) - 2
        if max_length > model_max:
            log.warning("max_length %d exceeds what %s supports; using %d", max_length, model_name_or_path, model_max)
            max_length = model_max
        dtype = "int8" if int8 else "fp32"
        info = ScorerInfo(
            model_id=resolved.model_id,
            revision=f"{resolved.revision}+onnx-{_file_fingerprint(graph)}",
            kind="cross-encoder",
            backend=BACKEND_NAME,
            device="cpu",
            dtype=dtype,
            quantized=int8,
            max_length=max_length,
        )
        log.info("loaded cross-encoder %s (onnxruntime, cpu, %s, %s)", resolved.model_id, dtype, graph)
        return cls(
            session,
            PairEncoder(tokenizer, max_length=max_length),
            info,
            max_tokens_per_batch=max_tokens_per_batch or DEFAULT_TOKEN_BUDGET["cpu"],
            max_batch_size=max_batch_size,
        )

    @property
    def intra_op_threads(self) -> int:
        return int(self.session.get_session_options().intra_op_num_threads)

    def _forward(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray | None
    ) -> np.ndarray:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = token_type_ids if token_type_ids is not None else np.zeros_like(input_ids)
        (logits,) = self.session.run(["logits"], feeds)
        return np.asarray(logits, dtype=np.float32).reshape(-1)
