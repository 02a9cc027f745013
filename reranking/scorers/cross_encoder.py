"""Cross-encoder scoring: encode pairs, plan token-budget batches, run forward passes.

The encode → batch → pad → restore-order pipeline is the same whatever executes the
network, so it lives in ``CrossEncoderScorer``; subclasses only say how to run one
padded batch (``TorchCrossEncoder`` here, ONNX Runtime elsewhere).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import warnings
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reranking.batching import DEFAULT_MAX_BATCH_SIZE, plan_batches
from reranking.devices import Precision, resolve_device, resolve_precision, torch_dtype
from reranking.int8_embedding import quantize_embeddings_int8
from reranking.model_source import DEFAULT_MODEL, ResolvedModel, resolve_model
from reranking.scorers.base import Scorer, ScorerInfo, sigmoid
from reranking.tokenization import EncodedPair, PairEncoder

log = logging.getLogger(__name__)

#: Padded tokens per forward pass. On CPU, XLM-R-large-sized matmuls run no faster
#: beyond ~2k rows (INT8 and fp32 GFLOP/s measured at 2048 rows >= at 8192 on 2 threads),
#: while activations grow linearly: at 8192 tokens ONNX Runtime's arena adds ~450 MiB to
#: an INT8 bge-reranker-v2-m3 worker (peak 1655 MiB; 1284 MiB at 2048, 1408 MiB at 4096).
#: 4096 keeps batches big enough for small models and the CPU peak under 1.6 GiB.
#: On a GPU, bigger batches keep the tensor cores fed (fp16 at 16k tokens needs ~2 GB activations).
DEFAULT_TOKEN_BUDGET = {"cpu": 4096, "cuda": 16384}


class CrossEncoderScorer(Scorer):
    """Pairs in, one logit per pair out, FlagReranker's truncation and ordering."""

    def __init__(
        self,
        encoder: PairEncoder,
        info: ScorerInfo,
        max_tokens_per_batch: int,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.info = info
        self.max_tokens_per_batch = max_tokens_per_batch
        self.max_batch_size = max_batch_size
        # One forward pass at a time: concurrent passes on the same cores only thrash caches.
        self._lock = threading.Lock()

    @abstractmethod
    def _forward(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray | None
    ) -> np.ndarray:
        """Logits (float32, shape [batch]) for one padded batch."""

    def normalize(self, raw: np.ndarray) -> np.ndarray:
        return sigmoid(raw)

    def score_pairs(
        self,
        pairs: Sequence[tuple[str, str]],
        max_batch_size: int | None = None,
        passage_tokens: int | None = None,
    ) -> np.ndarray:
        scores = np.empty(len(pairs), dtype=np.float32)
        if not pairs:
            return scores
        encoded = self.encoder.encode(pairs, passage_tokens)
        lengths = [len(e.input_ids) for e in encoded]
        batches = plan_batches(lengths, self.max_tokens_per_batch, max_batch_size or self.max_batch_size)
        padded_tokens = 0
        started = time.perf_counter()
        with self._lock:
            for indices in batches:
                input_ids, attention_mask, token_types = self._pad([encoded[i] for i in indices])
                padded_tokens += input_ids.size
                scores[indices] = self._forward(input_ids, attention_mask, token_types)
        self.stats.record(len(pairs), len(batches), sum(lengths), padded_tokens, time.perf_counter() - started)
        return scores

    def _pad(self, batch: list[EncodedPair]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        longest = max(len(e.input_ids) for e in batch)
        input_ids = np.full((len(batch), longest), self.encoder.pad_token_id, dtype=np.int64)
        attention_mask = np.zeros((len(batch), longest), dtype=np.int64)
        token_types = np.zeros((len(batch), longest), dtype=np.int64) if self.encoder.uses_token_types else None
        for row, item in enumerate(batch):
            n = len(item.input_ids)
            input_ids[row, :n] = item.input_ids
            attention_mask[row, :n] = 1
            if token_types is not None and item.token_type_ids is not None:
                token_types[row, :n] = item.token_type_ids
        return input_ids, attention_mask, token_types


def quantize_linear_int8(model: torch.nn.Module, weights_dir: Path | None = None) -> torch.nn.Module:
    """INT8 dynamic quantization of every ``nn.Linear`` (weights int8, activations quantized per batch).

    ~3× faster than fp32 on x86 CPUs for XLM-R. The embedding tables are not Linear layers:
    ``reranking.int8_embedding`` quantizes them (per row) after this, in ``from_pretrained``.
    The ``torch.ao`` API is deprecated in favour of torchao but still
    ships in torch 2.x and needs no extra dependency.

    Memory: ``from_pretrained`` maps the safetensors file and every tensor shares that
    one mapping, so quantizing the model's own fp32 weights faults all of them into
    this process's RSS, where they stay (bge-reranker-v2-m3: +1.2 GiB of file pages on
    top of the INT8 copies; ~3.25 GB peak with ``quantize_dynamic`` over the model).
    Given ``weights_dir``, each Linear's weights are read instead through a short-lived
    mapping of their own, quantized, and dropped (load peak ~1.05 GiB, same scores),
    while the model's mapping is never touched for them.
    """
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    checkpoint = _safetensors_index(weights_dir) if weights_dir is not None else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not checkpoint:
            quantized: torch.nn.Module = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
            return quantized
        # Parents and child *names* only: holding the Linear modules themselves (say, in a list of
        # named_modules()) would keep every fp32 weight, and its pages, alive until the loop ends.
        parents = [
            (name, module, [n for n, c in module.named_children() if type(c) is torch.nn.Linear])
            for name, module in model.named_modules()
            if type(module) is not torch.nn.Linear
        ]
        for parent_name, parent, linear_names in parents:
            for child_name in linear_names:
                child = getattr(parent, child_name)
                key = f"{parent_name}.{child_name}" if parent_name else child_name
                for param in ("weight", "bias"):
                    fresh = _read_tensor(checkpoint, f"{key}.{param}", getattr(child, param))
                    if fresh is not None:
                        setattr(child, param, torch.nn.Parameter(fresh, requires_grad=False))
                child.qconfig = default_dynamic_qconfig
                setattr(parent, child_name, DynamicQuantizedLinear.from_float(child))
                del child, fresh  # the fp32 weights' mapping (and its resident pages) goes now
    return model


def _safetensors_index(weights_dir: Path) -> dict[str, Path]:
    """Tensor name → file, for single-file and sharded safetensors checkpoints; empty for anything else."""
    from safetensors import safe_open

    index = weights_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        return {name: weights_dir / file for name, file in weight_map.items()}
    single = weights_dir / "model.safetensors"
    if single.is_file():
        with safe_open(single, framework="pt") as handle:
            return dict.fromkeys(handle.keys(), single)
    return {}


def _read_tensor(checkpoint: dict[str, Path], name: str, current: torch.Tensor | None) -> torch.Tensor | None:
    """``name`` from the checkpoint as fp32, or None to keep the model's own (renamed key, shape change).

    One ``safe_open`` per tensor on purpose: the handle's file mapping lives as long as
    the handle or any tensor read through it, so a handle kept open across the loop
    would keep every weight it ever read resident.
    """
    from safetensors import safe_open

    file = checkpoint.get(name)
    if current is None or file is None:
        return None
    with safe_open(file, framework="pt") as handle:
        tensor: torch.Tensor = handle.get_tensor(name)
    if tuple(tensor.shape) != tuple(current.shape):
        return None
    # A copy, not a view: the quantized Linear keeps its bias tensor as given, and a view
    # would pin a mapping of the whole file for the life of the model.
    return tensor.to(torch.float32, copy=True)


class TorchCrossEncoder(CrossEncoderScorer):
    """A ``transformers`` sequence-classification model run by PyTorch."""

    def __init__(
        self, model: torch.nn.Module, encoder: PairEncoder, info: ScorerInfo, device: str, **kwargs: Any
    ) -> None:
        super().__init__(encoder, info, **kwargs)
        self.model = model
        self.device = torch.device(device)

    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str = DEFAULT_MODEL,
        *,
        device: str = "auto",
        precision: str = "auto",
        int8: bool = True,
        max_length: int = 512,
        max_tokens_per_batch: int | None = None,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        allow_download: bool = True,
        num_threads: int | None = None,
        quantize_embeddings: bool = True,
    ) -> TorchCrossEncoder:
        """Load from a hub id or a local directory; raises ``ModelUnavailableError`` when the weights are absent.

        INT8 quantizes the Linear layers and (unless ``quantize_embeddings`` is off, which only the
        memory benchmark does, to measure the difference) the large embedding tables.
        """
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        resolved: ResolvedModel = resolve_model(model_name_or_path, allow_download=allow_download)
        device = resolve_device(device)
        chosen: Precision = resolve_precision(device, precision, int8)
        if num_threads:
            torch.set_num_threads(num_threads)
        tokenizer = AutoTokenizer.from_pretrained(resolved.path)  # nosec B615 - local dir from resolve_model
        model = AutoModelForSequenceClassification.from_pretrained(  # nosec B615 - local dir from resolve_model
            resolved.path, dtype=torch_dtype(chosen)
        )
        if model.config.num_labels != 1:
            raise ValueError(
                f"{model_name_or_path} has {model.config.num_labels} output labels; a reranker has exactly one"
            )
        model.eval()
        if chosen == "int8":
            model = quantize_linear_int8(model, resolved.path)
            if quantize_embeddings:
                quantize_embeddings_int8(model, _safetensors_index(resolved.path))
        model.to(device)
        model_max = getattr(model.config, "max_position_embeddings", max_length + 2) - 2
        if max_length > model_max:
            log.warning("max_length %d exceeds what %s supports; using %d", max_length, model_name_or_path, model_max)
            max_length = model_max
        info = ScorerInfo(
            model_id=resolved.model_id,
            revision=resolved.revision,
            kind="cross-encoder",
            backend="torch",
            device=device,
            dtype=chosen,
            quantized=chosen == "int8",
            max_length=max_length,
        )
        budget = max_tokens_per_batch or DEFAULT_TOKEN_BUDGET["cuda" if device.startswith("cuda") else "cpu"]
        log.info("loaded cross-encoder %s (%s, %s, max_length=%d)", resolved.model_id, device, chosen, max_length)
        return cls(
            model,
            PairEncoder(tokenizer, max_length=max_length),
            info,
            device,
            max_tokens_per_batch=budget,
            max_batch_size=max_batch_size,
        )

    def _forward(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray | None
    ) -> np.ndarray:
        inputs = {
            "input_ids": torch.from_numpy(input_ids).to(self.device),
            "attention_mask": torch.from_numpy(attention_mask).to(self.device),
        }
        if token_type_ids is not None:
            inputs["token_type_ids"] = torch.from_numpy(token_type_ids).to(self.device)
        with torch.inference_mode():
            logits = self.model(**inputs).logits
        scores: np.ndarray = logits.view(-1).float().cpu().numpy()
        return scores
