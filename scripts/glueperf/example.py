"""The offline example's model and data (scripts/make_example.py): a tiny random-weight BERT
classifier with its WordPiece tokenizer, and small parquet files in GLUE's layout. The tests
build their tiny models with the same builders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

POSITIVE = "good great fine nice happy love".split()
NEGATIVE = "bad awful poor sad hate terrible".split()
OTHER = "movie film plot actors the a was is very not it this and of story".split()
WORDS = POSITIVE + NEGATIVE + OTHER
LABELS = ["negative", "positive"]


def wordpiece(vocab: dict, unk: str, single: str, pair: str, specials: tuple):
    """A lower-casing WordPiece tokenizer (the tokenizers library's) with the given single and
    pair templates; the tests build their tiny models' tokenizers with it too."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    backend = Tokenizer(models.WordPiece(vocab, unk_token=unk))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[(token, vocab[token]) for token in specials]
    )
    return backend


def build_model(directory: Path) -> None:
    """The example's model: classes named as the dataset's."""
    build_bert(directory, WORDS, id2label=dict(enumerate(LABELS)))


def build_bert(
    directory: Path,
    words: list[str],
    max_length: int = 64,
    num_labels: int = 2,
    id2label: dict[int, str] | None = None,
    initializer_range: float = 0.02,
    model_input_names: list[str] | None = None,
) -> Path:
    """A 2-layer BERT sequence classifier, hidden size 32, with a WordPiece tokenizer of
    ``words`` that also encodes pairs, saved in ``directory``; the same on every run. The tests
    build their tiny BERT models with it too."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {token: i for i, token in enumerate(specials + words)}
    backend = wordpiece(
        vocab, "[UNK]", "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1", ("[CLS]", "[SEP]")
    )
    names = {"model_input_names": model_input_names} if model_input_names else {}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_length,
        **names,
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_length,
        num_labels=num_labels,
        initializer_range=initializer_range,
        **class_names(id2label),
    )
    directory.mkdir(parents=True, exist_ok=True)
    BertForSequenceClassification(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def class_names(id2label: dict[int, str] | None) -> dict:
    """A model config's class names (none: transformers' generic LABEL_i)."""
    if not id2label:
        return {}
    return {"id2label": id2label, "label2id": {name: i for i, name in id2label.items()}}


def write_dataset(path: Path, n: int, seed: int, labeled: bool) -> None:
    """GLUE's layout (sentence, label, idx); the label says which sentiment words outnumber the
    other's, -1 when ``labeled`` is false (as GLUE's test splits hide theirs)."""
    rng = np.random.default_rng(seed)
    sentences, labels = [], []
    for _ in range(n):
        words = list(rng.choice(WORDS, size=rng.integers(3, 16)))
        positive = sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)
        sentences.append(" ".join(words))
        labels.append(int(positive > 0) if labeled else -1)
    frame = pd.DataFrame(
        {"sentence": sentences, "label": labels, "idx": np.arange(n, dtype=np.int32)}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
