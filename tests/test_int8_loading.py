"""Torch INT8 loading: Linear weights streamed from the checkpoint give the same model as quantize_dynamic."""

from __future__ import annotations

import copy

import torch
from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

from reranking.scorers.cross_encoder import quantize_linear_int8


def _load_fp32(model_dir):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32).eval()


def _logits(model, input_ids, attention_mask):
    with torch.inference_mode():
        return model(input_ids=input_ids, attention_mask=attention_mask).logits.view(-1)


def test_streamed_quantization_equals_whole_model_quantize_dynamic(tiny_model_dir):
    from torch.ao.quantization import quantize_dynamic

    model = _load_fp32(tiny_model_dir)
    reference = quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
    streamed = quantize_linear_int8(model, tiny_model_dir)
    assert not any(type(m) is torch.nn.Linear for m in streamed.modules())
    assert sum(isinstance(m, DynamicQuantizedLinear) for m in streamed.modules()) == sum(
        isinstance(m, DynamicQuantizedLinear) for m in reference.modules()
    )
    input_ids = torch.tensor([[0, 1000, 2000, 3000, 2, 2, 4000, 5000, 2], [0, 1500, 2, 2, 2500, 2, 1, 1, 1]])
    attention_mask = (input_ids != 1).long()
    assert torch.equal(_logits(streamed, input_ids, attention_mask), _logits(reference, input_ids, attention_mask))


def test_without_a_safetensors_checkpoint_it_quantizes_the_loaded_weights(tiny_model_dir, tmp_path):
    model = _load_fp32(tiny_model_dir)
    quantized = quantize_linear_int8(model, tmp_path)  # an empty folder: nothing to stream from
    assert not any(type(m) is torch.nn.Linear for m in quantized.modules())
    assert any(isinstance(m, DynamicQuantizedLinear) for m in quantized.modules())
