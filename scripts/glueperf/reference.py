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


def notebook_loop(model, tokenizer, texts, labels, device, batch_size: int = 16) -> np.ndarray:
    """Predicted class ids in input order, computed the way the report's notebook did."""
    from torch.utils.data import DataLoader

    rows = [{"sentence": t, "label": int(label)} for t, label in zip(texts, labels, strict=True)]

    def collate_fn(batch):
        encodings = tokenizer(
            [item["sentence"] for item in batch],
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
            input_ids = batch["input_ids"].to(device)
            attention_mask = batch["attention_mask"].to(device)
            batch_labels = batch["labels"].to(device)
            batch_predictions = model(input_ids, attention_mask=attention_mask).logits.argmax(-1)
            correct += (batch_predictions == batch_labels).sum().item()
            predictions.append(batch_predictions.cpu())
            peak_rss = max(peak_rss, process.memory_info().rss)
    return torch.cat(predictions).numpy()


def pipeline_loop(model, tokenizer, texts, device, batch_size: int = 64) -> np.ndarray:
    """Predicted class ids from ``transformers.pipeline("text-classification")``."""
    from transformers import pipeline

    classify = pipeline(
        "text-classification", model=model, tokenizer=tokenizer, device=torch.device(device)
    )
    outputs = classify(texts, batch_size=batch_size, truncation=True)
    label_ids = model.config.label2id
    return np.array([label_ids[output["label"]] for output in outputs], dtype=np.int64)


def one_by_one(model, tokenizer, texts, device) -> np.ndarray:
    """One sentence per forward pass, no padding at all: the plainest possible reference."""
    predictions = []
    with torch.inference_mode():
        for text in texts:
            encoded = tokenizer(text, truncation=True, max_length=512, return_tensors="pt")
            logits = model(**{k: v.to(device) for k, v in encoded.items()}).logits
            predictions.append(int(logits.argmax(-1)))
    return np.array(predictions, dtype=np.int64)
