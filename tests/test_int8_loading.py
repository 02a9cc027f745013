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


def test_int8_scorers_hold_the_embedding_tables_as_int8_rows(tiny_scorer_int8):
    from reranking.int8_embedding import Int8Embedding

    embeddings = tiny_scorer_int8.model.roberta.embeddings
    words = embeddings.word_embeddings
    assert isinstance(words, Int8Embedding) and words.weight.dtype == torch.int8 and words.num_embeddings == 250_002
    # small tables stay fp32 (the tiny model's 514 positions, one token type; v2-m3's 8,194 positions are int8)
    assert type(embeddings.position_embeddings) is torch.nn.Embedding
    assert type(embeddings.token_type_embeddings) is torch.nn.Embedding
    assert not any(isinstance(p, torch.nn.Parameter) and p.numel() >= 250_002 for p in tiny_scorer_int8.model.parameters())


def test_the_int8_table_reconstructs_every_row_within_half_a_step(tiny_model_dir):
    from reranking.int8_embedding import Int8Embedding, quantize_embeddings_int8
    from reranking.scorers.cross_encoder import _safetensors_index

    fp32 = _load_fp32(tiny_model_dir).roberta.embeddings.word_embeddings
    streamed = _load_fp32(tiny_model_dir)
    assert quantize_embeddings_int8(streamed, _safetensors_index(tiny_model_dir)) == 1  # the word table only
    table = streamed.roberta.embeddings.word_embeddings
    assert torch.equal(table.weight, Int8Embedding.from_float(fp32).weight)  # streamed == whole-table quantization
    ids = torch.arange(table.num_embeddings).view(1, -1)
    with torch.inference_mode():
        error = (table(ids)[0] - fp32.weight).abs()
    assert (error <= table.scale[:, None] / 2 + 1e-7).all()
    assert float(error.max() / fp32.weight.abs().max()) < 0.005


def test_quantizing_the_embeddings_keeps_the_logits_of_the_linear_only_int8_model(tiny_model_dir):
    from reranking.int8_embedding import quantize_embeddings_int8

    fp32 = _load_fp32(tiny_model_dir)
    linear_only = quantize_linear_int8(_load_fp32(tiny_model_dir), tiny_model_dir)
    both = quantize_linear_int8(_load_fp32(tiny_model_dir), tiny_model_dir)
    quantize_embeddings_int8(both)
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(5, 250_000, (32, 24), generator=generator)
    input_ids[:, 0], input_ids[:, -1] = 0, 2
    attention_mask = torch.ones_like(input_ids)
    reference = _logits(fp32, input_ids, attention_mask)
    a, b = _logits(linear_only, input_ids, attention_mask), _logits(both, input_ids, attention_mask)
    added = float((a - b).abs().mean())
    linear_error = float((a - reference).abs().mean())
    print(f"mean |logit change|: Linear INT8 {linear_error:.4f}, + embedding INT8 {added:.4f}")
    # The tiny model (32 wide, init 0.3) is the worst case: the embedding's rounding moves its logits by less
    # than the Linear layers' INT8 already does, and the quantized model stays as close to fp32 as before.
    assert added < linear_error
    assert float((b - reference).abs().mean()) < 1.5 * linear_error
