"""Model files: turning a cross-encoder into what other runtimes load."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click


@click.group("model")
def model_group() -> None:
    """Prepare model files (exports for other runtimes)."""


@model_group.command("export-onnx")
@click.option("--model", required=True, help="Hub id or local directory of a single-logit cross-encoder.")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder; MODEL_DIR/onnx is where backend auto looks.",
)
@click.option("--int8", is_flag=True, help="Also write model_int8.onnx (dynamic INT8, embeddings included).")
@click.option("--opset", default=17, show_default=True, type=click.IntRange(14, 21), help="ONNX opset.")
def export_onnx_command(model: str, out: Path, int8: bool, opset: int) -> None:
    """Export MODEL to ONNX (verified against torch), optionally with an INT8 copy for CPU serving."""
    try:
        from reranking.onnx_export import export_onnx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise click.ClickException(f"{exc}; install onnx and onnxruntime (pip install 'shoprank[onnx]')") from exc
    logging.getLogger("reranking").setLevel(logging.INFO)
    try:
        result = export_onnx(model, out, int8=int8, opset=opset)
    except (ImportError, ValueError, RuntimeError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(result.as_dict(), indent=2))
