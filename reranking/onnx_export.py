"""Export a cross-encoder to ONNX, plus an INT8 copy, for the ONNX Runtime CPU backend.

Why a second runtime: torch's dynamic INT8 quantizes only the Linear layers, so
bge-reranker-v2-m3 keeps its 977 MB fp32 word-embedding table, and it quantizes after
loading fp32, so a CPU worker peaks well above what it finally needs. ONNX Runtime's
dynamic quantization also turns the embedding ``Gather`` tables into INT8, and the
quantized file is produced once, here, not in every worker at start-up.

Layout written to ``out_dir`` (put it at ``MODEL_DIR/onnx`` and ``backend="auto"``
finds it): ``model.onnx`` (fp32; weights in ``model.onnx.data`` beside it when the
model is over ONNX's 2 GB protobuf limit), ``model_int8.onnx``, the tokenizer and
``config.json`` (so the folder is usable on its own), and ``export.json`` saying what
was exported from what.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reranking.model_source import resolve_model

log = logging.getLogger(__name__)

ONNX_SUBDIR = "onnx"
FP32_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
MANIFEST_FILE = "export.json"
DEFAULT_OPSET = 17
#: What the exported graph is checked against before anything is written (logits agree to this, absolute).
VERIFY_TOLERANCE = 1e-3
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "sentencepiece.bpe.model",
    "config.json",
)


class OnnxExportMissingError(FileNotFoundError):
    """The ONNX backend was asked for explicitly but no export is where it should be."""


def find_onnx_export(model_dir: str | Path, int8: bool) -> Path | None:
    """The exported graph for ``model_dir``: ``MODEL_DIR/onnx/<file>``, else ``MODEL_DIR/<file>`` (an export dir)."""
    name = INT8_FILE if int8 else FP32_FILE
    base = Path(model_dir)
    for candidate in (base / ONNX_SUBDIR / name, base / name):
        if candidate.is_file():
            return candidate
    return None


def export_command(model: str, int8: bool = True) -> str:
    """The command that creates what ``find_onnx_export`` looks for; quoted in error messages."""
    return f"python -m shopctl model export-onnx --model {model} --out {model}/{ONNX_SUBDIR}" + (
        " --int8" if int8 else ""
    )


@dataclass(frozen=True, slots=True)
class ExportResult:
    out_dir: str
    fp32_path: str
    int8_path: str | None
    source_model: str
    source_revision: str
    opset: int
    #: max |ONNX Runtime fp32 − torch fp32| over the verification batch.
    fp32_max_abs_diff: float
    #: same for the INT8 graph (quantization error, not a bug).
    int8_max_abs_diff: float | None
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sample_batch(tokenizer: Any, uses_token_types: bool) -> dict[str, np.ndarray]:
    """Two pairs of different lengths: the trace must see padding, or a mask-free fast path gets baked in."""
    pairs = [
        ("wireless headphones", "Title: Sony WH-1000XM5\nDescription: Noise cancelling over-ear headphones."),
        ("无线耳机", "Title: Cable"),
    ]
    batch = tokenizer(
        [q for q, _ in pairs], [p for _, p in pairs], padding=True, return_tensors="np", return_token_type_ids=True
    )
    inputs = {
        "input_ids": batch["input_ids"].astype(np.int64),
        "attention_mask": batch["attention_mask"].astype(np.int64),
    }
    if uses_token_types:
        inputs["token_type_ids"] = batch["token_type_ids"].astype(np.int64)
    return inputs


def _run_onnx(path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    logits: np.ndarray = session.run(None, {k: v for k, v in inputs.items() if k in wanted})[0].reshape(-1)
    return logits


def _export_fp32(model: Any, inputs: dict[str, np.ndarray], path: Path, opset: int) -> None:
    import torch

    names = list(inputs)

    class LogitsOnly(torch.nn.Module):
        """Positional inputs in a fixed order, one output: what the legacy exporter traces cleanly."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            logits: torch.Tensor = self.inner(**dict(zip(names, args, strict=True))).logits
            return logits

    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in names}
    dynamic_axes["logits"] = {0: "batch"}
    with warnings.catch_warnings(), torch.inference_mode():
        # The TorchScript exporter warns about traced Python conditionals; the sample batch has padding,
        # and the result is verified against torch on it before anything is kept.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LogitsOnly(model),
            tuple(torch.from_numpy(inputs[name]) for name in names),
            str(path),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,  # the dynamo exporter needs onnxscript and struggles with data-dependent masks
        )


def _consolidate(source: Path, target: Path) -> None:
    """One graph file, plus one ``.data`` file beside it when over 2 GB (the exporter writes one file per tensor)."""
    if [p.name for p in source.parent.iterdir()] == [source.name]:
        source.rename(target)
        return
    import onnx

    model = onnx.load(str(source))  # pulls the per-tensor files in
    onnx.save_model(
        model,
        str(target),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=target.name + ".data",
        size_threshold=1024,
    )


def quantize_int8(fp32_path: Path, int8_path: Path) -> None:
    """ONNX Runtime dynamic quantization of MatMul weights *and* embedding tables (Gather).

    Per-tensor INT8 weights, activations quantized per batch at run time, the same
    scheme as torch's ``quantize_dynamic`` so the two INT8 paths are comparable.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger("root").setLevel(logging.ERROR)  # ORT nags about pre-processing through the root logger
    quantize_dynamic(
        fp32_path,
        int8_path,
        op_types_to_quantize=["MatMul", "Gather"],
        weight_type=QuantType.QInt8,
        per_channel=False,
        reduce_range=False,
        use_external_data_format=False,  # ~4× smaller than fp32: bge-reranker-v2-m3 INT8 fits in one file
    )


def export_onnx(
    model: str,
    out_dir: str | Path,
    int8: bool = True,
    opset: int = DEFAULT_OPSET,
    allow_download: bool = True,
) -> ExportResult:
    """Export ``model`` (hub id or directory) to ``out_dir``; verified against torch before it is written.

    Files are built in a temporary folder inside ``out_dir``'s parent and moved into
    place at the end, so a failed export never leaves a half-written graph that
    ``backend="auto"`` would then pick up.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    started = time.perf_counter()
    resolved = resolve_model(model, allow_download=allow_download)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(resolved.path)  # nosec B615 - local dir from resolve_model
    network = AutoModelForSequenceClassification.from_pretrained(  # nosec B615 - local dir from resolve_model
        resolved.path, dtype=torch.float32
    ).eval()
    if network.config.num_labels != 1:
        raise ValueError(f"{model} has {network.config.num_labels} output labels; a reranker has exactly one")
    uses_token_types = getattr(network.config, "type_vocab_size", 1) > 1
    inputs = _sample_batch(tokenizer, uses_token_types)
    with torch.inference_mode():
        expected = network(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.reshape(-1).float().numpy()

    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        fp32_path = staging / FP32_FILE
        raw = staging / "raw"
        raw.mkdir()
        _export_fp32(network, inputs, raw / FP32_FILE, opset)
        del network  # the steps below load the whole fp32 graph; don't hold two copies
        _consolidate(raw / FP32_FILE, fp32_path)
        shutil.rmtree(raw)
        fp32_diff = float(np.abs(_run_onnx(fp32_path, inputs) - expected).max())
        if not fp32_diff <= VERIFY_TOLERANCE:
            raise RuntimeError(f"exported graph disagrees with torch by {fp32_diff:.3g} (> {VERIFY_TOLERANCE})")
        int8_diff = None
        if int8:
            quantize_int8(fp32_path, staging / INT8_FILE)
            int8_diff = float(np.abs(_run_onnx(staging / INT8_FILE, inputs) - expected).max())
        for name in _TOKENIZER_FILES:
            source = resolved.path / name
            if source.is_file():
                shutil.copy2(source, staging / name)
        result = ExportResult(
            out_dir=str(out_dir),
            fp32_path=str(out_dir / FP32_FILE),
            int8_path=str(out_dir / INT8_FILE) if int8 else None,
            source_model=resolved.model_id,
            source_revision=resolved.revision,
            opset=opset,
            fp32_max_abs_diff=fp32_diff,
            int8_max_abs_diff=int8_diff,
            seconds=time.perf_counter() - started,
        )
        manifest = dict(result.as_dict(), torch=torch.__version__, onnxruntime=_ort_version())
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp (and onnx's external-data writer) make things private;
        for file in staging.iterdir():  # serving processes may run as another user
            file.chmod(0o644)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("exported %s to %s in %.0f s", model, out_dir, result.seconds)
    return result


def _ort_version() -> str:
    import onnxruntime

    version: str = onnxruntime.__version__
    return version
