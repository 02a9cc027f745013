"""Weight-only INT8 embedding tables for the torch CPU path: one int8 row and one fp32 scale per token.

Why: torch's dynamic quantization covers ``nn.Linear`` only, so bge-reranker-v2-m3 kept its
250,002 × 1024 word-embedding table in fp32 (977 MB, ~45 % of its parameters) beside ~300 MB of
INT8 Linear weights. Stored per row (symmetric, scale = max|row| / 127) the table is 245 MB, and a
lookup dequantizes only the rows a batch uses, so the forward pass costs the same.

Why not ``torch.ao.nn.quantized.Embedding``: it runs through ``embedding_bag`` byte kernels with
quint8 per-row affine parameters and is deprecated with the rest of ``torch.ao`` (torchao replaces
it); this is an index and a multiply, and its error is the same per-row rounding.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

#: fp32 bytes quantized at a time when streaming from the checkpoint. Above glibc's largest mmap
#: threshold (32 MB), so each transient block is its own mapping and goes back to the OS when freed
#: instead of staying in the heap as fragmentation.
_CHUNK_BYTES = 64 << 20


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row INT8: ``weight ≈ q * scale[:, None]`` with ``q`` in [-127, 127]."""
    weight = weight.detach().to(torch.float32)
    scale = weight.abs().amax(dim=1) / 127.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row (padding) stays exact
    q = torch.round(weight / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q, scale


class Int8Embedding(torch.nn.Module):
    """Drop-in for ``nn.Embedding`` at inference: int8 rows, dequantized after the lookup."""

    def __init__(self, weight: torch.Tensor, scale: torch.Tensor, padding_idx: int | None = None) -> None:
        super().__init__()
        if weight.dtype != torch.int8 or weight.dim() != 2 or scale.shape != (weight.shape[0],):
            raise ValueError("Int8Embedding needs an int8 [rows, dim] weight and one fp32 scale per row")
        self.register_buffer("weight", weight)
        self.register_buffer("scale", scale.to(torch.float32))
        self.num_embeddings, self.embedding_dim = int(weight.shape[0]), int(weight.shape[1])
        self.padding_idx = padding_idx

    @classmethod
    def from_float(cls, embedding: torch.nn.Embedding) -> Int8Embedding:
        q, scale = quantize_rows(embedding.weight)
        return cls(q, scale, embedding.padding_idx)

    @classmethod
    def from_rows(
        cls, shape: tuple[int, int], chunks: Iterator[torch.Tensor], padding_idx: int | None = None
    ) -> Int8Embedding:
        """Quantize a ``shape`` table given as consecutive row blocks, so the fp32 table never exists whole."""
        weight = torch.empty(shape, dtype=torch.int8)
        scale = torch.empty(shape[0], dtype=torch.float32)
        row = 0
        for chunk in chunks:
            q, s = quantize_rows(chunk)
            weight[row : row + len(q)], scale[row : row + len(q)] = q, s
            row += len(q)
        if row != shape[0]:
            raise ValueError(f"expected {shape[0]} rows, got {row}")
        return cls(weight, scale, padding_idx)

    weight: torch.Tensor
    scale: torch.Tensor

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        rows = torch.nn.functional.embedding(input_ids, self.weight)
        return rows.to(torch.float32) * self.scale[input_ids].unsqueeze(-1)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, int8 per-row, padding_idx={self.padding_idx}"


def _checkpoint_rows(file: Path, name: str, shape: tuple[int, int]) -> Iterator[torch.Tensor] | None:
    """Row blocks of tensor ``name`` read through short-lived mappings of ``file``; None if absent or misshapen."""
    from safetensors import safe_open

    with safe_open(file, framework="pt") as handle:
        if name not in handle.keys() or tuple(handle.get_slice(name).get_shape()) != shape:
            return None
    step = max(1, _CHUNK_BYTES // (4 * shape[1]))

    def blocks() -> Iterator[torch.Tensor]:
        for start in range(0, shape[0], step):
            # One handle per block: a handle's mapping stays resident while it lives (see cross_encoder).
            with safe_open(file, framework="pt") as handle:
                yield handle.get_slice(name)[start : start + step].to(torch.float32)

    return blocks()


def quantize_embeddings_int8(model: torch.nn.Module, checkpoint: dict[str, Path] | None = None) -> int:
    """Replace every ``nn.Embedding`` with at least 4,096 rows (the vocabulary, XLM-R's 8,194 positions) by
    an ``Int8Embedding``; returns how many were replaced.

    Given ``checkpoint`` (tensor name → safetensors file), rows are read from the file in blocks
    instead of from the model's own parameter, whose pages (a mapping shared with every other
    tensor of the model) then never become resident. Small tables (token types) stay fp32.
    """
    replaced = 0
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            if type(child) is not torch.nn.Embedding or child.num_embeddings < 4096:
                continue
            key = f"{parent_name}.{child_name}.weight" if parent_name else f"{child_name}.weight"
            file = (checkpoint or {}).get(key)
            shape = (child.num_embeddings, child.embedding_dim)
            blocks = _checkpoint_rows(file, key, shape) if file is not None else None
            if blocks is not None:
                quantized = Int8Embedding.from_rows(shape, blocks, child.padding_idx)
            else:
                quantized = Int8Embedding.from_float(child)
            setattr(parent, child_name, quantized)
            replaced += 1
            del child
    return replaced
