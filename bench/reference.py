"""The loops the engine is measured against (bench/compare_loops.py) and checked against (tests).

``notebook_loop`` re-implements the original report's evaluation faithfully: a DataLoader of 16
sentences, tokenized in ``collate_fn`` with padding to the batch's longest sentence, a host
synchronization (``.item()``) and an RSS reading every batch. ``pipeline_loop`` is what a
transformers user would reach for first.
"""

from __future__ import annotations

import numpy as np
import psutil
import torch

from glueperf.engine import model_inputs


def notebook_loop(
    model, tokenizer, texts, labels, device, batch_size: int = 16, pairs=None
) -> np.ndarray:
    """Predicted class ids in input order, computed the way the report's notebook did; for
    ``pairs``, each text with its second text, passed to the tokenizer as a pair. A one-output
    (regression) model gives its scores."""
    from torch.utils.data import DataLoader

    second = pairs if pairs is not None else [None] * len(texts)
    rows = [
        {"sentence": t, "sentence2": p, "label": label}
        for t, p, label in zip(texts, second, np.asarray(labels).tolist(), strict=True)
    ]

    def collate_fn(batch):
        encodings = tokenizer(
            [item["sentence"] for item in batch],
            None if pairs is None else [item["sentence2"] for item in batch],
            padding=True,
            truncation=True,
            max_length=512,
            return_tensors="pt",
        )
        encodings["labels"] = torch.tensor([item["label"] for item in batch])
        return encodings

    process = psutil.Process()
    peak_rss, correct, predictions = 0, 0, []
    model.eval()
    with torch.no_grad():
        for batch in DataLoader(rows, batch_size=batch_size, collate_fn=collate_fn):
            batch_labels = batch.pop("labels").to(device)
            if pairs is None:  # as the notebook: ids and mask only (single texts' types are 0)
                batch.pop("token_type_ids", None)
            inputs = {k: v.to(device) for k, v in batch.items() if k in model_inputs(model)}
            logits = model(**inputs).logits
            batch_predictions = logits[:, 0] if logits.shape[-1] == 1 else logits.argmax(-1)
            correct += (batch_predictions == batch_labels).sum().item()
            predictions.append(batch_predictions.cpu())
            peak_rss = max(peak_rss, process.memory_info().rss)
    return torch.cat(predictions).numpy()


def text_classification(model, tokenizer, device):
    """``transformers.pipeline("text-classification")`` of the model on ``device``."""
    from transformers import pipeline

    return pipeline(
        "text-classification", model=model, tokenizer=tokenizer, device=torch.device(device)
    )


def pipeline_inputs(texts, pairs=None) -> list:
    """The texts as the pipeline takes them; pairs as ``{"text": ..., "text_pair": ...}``."""
    if pairs is None:
        return texts
    return [{"text": t, "text_pair": p} for t, p in zip(texts, pairs, strict=True)]


def pipeline_loop(model, tokenizer, texts, device, batch_size: int = 64, pairs=None) -> np.ndarray:
    """Predicted class ids from ``transformers.pipeline("text-classification")``; pairs are given
    to it as ``{"text": ..., "text_pair": ...}``."""
    classify = text_classification(model, tokenizer, device)
    outputs = classify(pipeline_inputs(texts, pairs), batch_size=batch_size, truncation=True)
    label_ids = model.config.label2id
    return np.array([label_ids[output["label"]] for output in outputs], dtype=np.int64)
