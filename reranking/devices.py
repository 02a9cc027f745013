"""Where and in what precision a model runs.

The rules come from what is fast *and* correct on each device: fp16 on CUDA (tensor
cores, half the memory), never fp16 on CPU (slower than fp32 there, and some CPU
kernels lack Half), INT8 dynamic quantization as the CPU default.
"""

from __future__ import annotations

from typing import Literal, cast

import torch

Precision = Literal["fp32", "fp16", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16", "int8")


def resolve_device(requested: str = "auto") -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; explicit names are validated."""
    requested = (requested or "auto").strip().lower()
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cpu":
        return "cpu"
    if requested == "cuda" or requested.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {requested!r} requested but CUDA is not available")
        return requested
    raise ValueError(f"unknown device {requested!r} (expected auto, cpu, cuda or cuda:N)")


def resolve_precision(device: str, requested: str = "auto", int8: bool = True) -> Precision:
    """Pick the numeric format for ``device``; refuse combinations that are slow or broken."""
    requested = (requested or "auto").strip().lower()
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r} (expected one of {', '.join(PRECISIONS)})")
    on_cuda = device.startswith("cuda")
    if requested == "auto":
        if on_cuda:
            return "fp16"
        return "int8" if int8 else "fp32"
    if requested in ("fp16", "bf16") and not on_cuda:
        raise ValueError(f"{requested} on CPU is slower than fp32 and unsupported by some kernels; use int8 or fp32")
    if requested == "int8" and on_cuda:
        raise ValueError("int8 dynamic quantization is a CPU path; use fp16 on CUDA")
    return cast(Precision, requested)  # one of PRECISIONS (checked above) and not "auto"


def torch_dtype(precision: Precision) -> torch.dtype:
    """The dtype weights are loaded in (INT8 models are loaded in fp32, then quantized)."""
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
