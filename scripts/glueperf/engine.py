"""The evaluation engine: tokenize fast, batch by length under a token budget, never sync per batch.

Why it is fast (compared with the notebook's loop, see bench/compare_loops.py):
- Texts are tokenized in large chunks by the Rust tokenizer's ``encode_batch_fast`` (no offsets,
  all cores, GIL released). On CUDA a background thread tokenizes the next chunk while the GPU
  works on the current one.
- Sentences of similar length share a batch, so padding is small; a batch holds as many sentences
  as fit a budget of padded tokens. A batch with no padding passes no attention mask, which lets
  SDPA pick its fastest kernel.
- Predictions stay on the device until the end: one host synchronization per evaluation instead
  of one per batch. Inputs are copied from pinned memory without blocking.
- On CUDA out-of-memory the token budget is halved and the failed batch retried.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from glueperf import GlueperfError

log = logging.getLogger(__name__)

# Texts per tokenizer call: the first call is small so that the GPU starts at once, later ones
# grow to keep every core busy while staying small enough for the overlap to pay.
FIRST_CHUNK_TEXTS = 1024
CHUNK_TEXTS = 8192
# A batch holds sentences of at least this fraction of its longest one's length, which keeps
# padding under a quarter of the computed tokens.
MIN_LENGTH_RATIO = 0.75


@dataclass
class Batching:
    """How sentences are grouped: padded tokens and sentences per batch, tokens per sentence."""

    batch_tokens: int = 16384
    max_batch_size: int = 1024
    max_length: int = 512


@dataclass
class EngineResult:
    predictions: np.ndarray  # int64 class id per text, in input order
    probabilities: np.ndarray  # float32 probability of the predicted class
    token_counts: np.ndarray  # int64 tokens per text after truncation, special tokens included
    n_truncated: int
    n_batches: int
    batch_tokens: int  # the budget in force at the end (smaller than asked after an OOM back-off)
    tokenize_s: float  # seconds spent inside the tokenizer (may overlap the forward passes)
    oom_retries: int = 0
    padded_tokens: int = 0
    notes: list[str] = field(default_factory=list)


class ChunkTokenizer:
    """Tokenizes lists of texts to id lists with truncation, counting truncated texts."""

    def __init__(self, tokenizer, max_length: int):
        self.max_length = max_length
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:
            from tokenizers import Tokenizer

            # A private copy: tokenizer.json may carry padding/truncation presets (minilm-sst2
            # pads to 128), and the caller's tokenizer must stay as it was.
            self._backend = Tokenizer.from_str(backend.to_str())
            self._backend.no_padding()
            self._backend.enable_truncation(max_length)
        else:
            self._backend = None
            self._tokenizer = tokenizer

    def __call__(self, texts: list[str]) -> tuple[list[list[int]], int]:
        if self._backend is not None:
            encodings = self._backend.encode_batch_fast(texts)
            ids = [encoding.ids for encoding in encodings]
            # Only a text cut to exactly max_length can have been truncated: ask just those.
            n_truncated = sum(
                1
                for encoding, row in zip(encodings, ids, strict=True)
                if len(row) == self.max_length and encoding.overflowing
            )
            return ids, n_truncated
        ids = self._tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        full_lengths = self._tokenizer(
            [t for t, i in zip(texts, ids, strict=True) if len(i) == self.max_length],
            truncation=False,
        )["input_ids"]
        return ids, sum(1 for i in full_lengths if len(i) > self.max_length)


def plan_batches(lengths: np.ndarray, batch_tokens: int, max_batch_size: int) -> list[np.ndarray]:
    """Split positions into batches, longest first, each within the padded-token budget.

    ``lengths`` must be sorted in descending order, so a batch's first sentence sets its padded
    length. Returns arrays of consecutive positions into ``lengths``.
    """
    batches, start, n = [], 0, len(lengths)
    ascending = -lengths  # searchsorted needs ascending order
    while start < n:
        longest = int(lengths[start])
        # Stop before sentences much shorter than the first: their padding would be wasted work.
        similar = int(np.searchsorted(ascending, -MIN_LENGTH_RATIO * longest, side="right")) - start
        size = max(1, min(max_batch_size, batch_tokens // max(longest, 1), similar))
        batches.append(np.arange(start, start + size))
        start += size
    return batches


def pad(ids: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Right-pad id lists to a matrix; the mask is None when no row needed padding."""
    lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
    width = int(lengths.max())
    if (lengths == width).all():
        return np.asarray(ids, dtype=np.int64), None
    matrix = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.arange(width)[None, :] < lengths[:, None]
    matrix[mask] = np.fromiter((t for row in ids for t in row), dtype=np.int64, count=lengths.sum())
    return matrix, mask.astype(np.int64)


def _prefetch(iterator, depth: int = 2):
    """Run ``iterator`` in a background thread, ``depth`` items ahead; re-raise its errors."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def produce():
        try:
            for item in iterator:
                items.put(item)
            items.put(done)
        except BaseException as error:  # handed to the consumer, which re-raises it
            items.put(error)

    threading.Thread(target=produce, daemon=True).start()
    while (item := items.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


class Engine:
    """Classifies texts with a sequence-classification model; see the module docstring."""

    def __init__(
        self,
        model,
        tokenizer,
        device,
        batching: Batching,
        overlap: bool | None = None,
        progress: bool = False,
    ):
        self.model = model
        self.progress = progress
        self.device = torch.device(device)
        self.batching = batching
        self.tokenize = ChunkTokenizer(tokenizer, batching.max_length)
        self.overlap = self.device.type == "cuda" if overlap is None else overlap
        self._pin = self.device.type == "cuda"

    def _chunks(self, texts: list[str], order: np.ndarray, timing: dict):
        start, size = 0, FIRST_CHUNK_TEXTS
        while start < len(order):
            positions = order[start : start + size]
            began = time.perf_counter()
            ids, n_truncated = self.tokenize([texts[i] for i in positions])
            timing["tokenize_s"] += time.perf_counter() - began
            yield positions, ids, n_truncated
            start, size = start + size, min(2 * size, CHUNK_TEXTS)

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(array)
        if self._pin:
            tensor = tensor.pin_memory()
        return tensor.to(self.device, non_blocking=True)

    def _forward(self, ids: list[list[int]]):
        matrix, mask = pad(ids, self.tokenize.pad_id)
        input_ids = self._to_device(matrix)
        attention_mask = None if mask is None else self._to_device(mask)
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        probabilities, predictions = torch.softmax(logits.float(), dim=-1).max(dim=-1)
        return predictions, probabilities, matrix.size

    def run(self, texts: list[str]) -> EngineResult:
        n = len(texts)
        timing = {"tokenize_s": 0.0}
        # Longest texts first (by characters, a cheap proxy for tokens): the largest batches run
        # first, so an out-of-memory shows at once, and chunks arrive roughly length-sorted.
        order = np.argsort(-np.fromiter(map(len, texts), dtype=np.int64, count=n), kind="stable")
        chunks = self._chunks(texts, order, timing)
        if self.overlap:
            chunks = _prefetch(chunks)

        result = EngineResult(
            predictions=np.empty(n, dtype=np.int64),
            probabilities=np.empty(n, dtype=np.float32),
            token_counts=np.empty(n, dtype=np.int64),
            n_truncated=0,
            n_batches=0,
            batch_tokens=self.batching.batch_tokens,
            tokenize_s=0.0,
        )
        outputs = _DeviceOutputs()
        pending_positions = np.empty(0, dtype=np.int64)
        pending_ids: list[list[int]] = []
        chunks = iter(chunks)
        exhausted = False
        # Counts sentences handed to the device (it may still be working on the last ones).
        self._bar = tqdm(
            total=n, unit=" sentences", mininterval=1.0, disable=not self.progress, file=sys.stderr
        )
        with self._bar, torch.inference_mode():
            while not exhausted or len(pending_ids):
                chunk = next(chunks, None)
                exhausted = chunk is None
                if chunk is not None:
                    positions, ids, n_truncated = chunk
                    result.n_truncated += n_truncated
                    pending_positions = np.concatenate([pending_positions, positions])
                    pending_ids = pending_ids + ids
                lengths = np.fromiter(map(len, pending_ids), dtype=np.int64, count=len(pending_ids))
                by_length = np.argsort(-lengths, kind="stable")
                result.token_counts[pending_positions] = lengths
                batches = plan_batches(
                    lengths[by_length], result.batch_tokens, self.batching.max_batch_size
                )
                # Hold back a last, partly filled batch: the next chunk may fill it.
                keep = batches.pop() if (not exhausted and len(batches) > 1) else np.empty(0, int)
                for batch in batches:
                    members = by_length[batch]
                    self._run_batch(
                        [pending_ids[i] for i in members],
                        pending_positions[members],
                        result,
                        outputs,
                    )
                kept = by_length[keep]
                pending_positions = pending_positions[kept]
                pending_ids = [pending_ids[i] for i in kept]
            outputs.gather(result)
        result.tokenize_s = timing["tokenize_s"]
        return result

    def _run_batch(self, ids, positions, result: EngineResult, outputs: _DeviceOutputs):
        """Forward one batch (ids sorted longest first); on out-of-memory halve the budget and
        retry the batch in pieces. Batches planned before a back-off are split to the new budget."""
        longest = len(ids[0])
        if len(ids) > 1 and len(ids) * longest > result.batch_tokens:
            lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
            for piece in plan_batches(lengths, result.batch_tokens, self.batching.max_batch_size):
                self._run_batch([ids[i] for i in piece], positions[piece], result, outputs)
            return
        try:
            predictions, probabilities, padded = self._forward(ids)
        except torch.OutOfMemoryError as error:
            if len(ids) == 1:
                raise GlueperfError(
                    f"out of memory on a single sentence of {longest} tokens; lower "
                    "evaluation.max_length or use a device with more memory"
                ) from error
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            result.oom_retries += 1
            result.batch_tokens = max(1, min(result.batch_tokens, len(ids) * longest) // 2)
            message = (
                f"out of memory on a batch of {len(ids)} x {longest} tokens: "
                f"token budget halved to {result.batch_tokens}, retrying"
            )
            log.warning(message)
            result.notes.append(message)
            self._run_batch(ids, positions, result, outputs)
            return
        self._bar.update(len(ids))
        result.n_batches += 1
        result.padded_tokens += padded
        outputs.add(positions, predictions, probabilities)


class _DeviceOutputs:
    """Per-batch results kept on the device until the end: one host synchronization in all."""

    def __init__(self):
        self.positions, self.predictions, self.probabilities = [], [], []

    def add(self, positions, predictions, probabilities) -> None:
        self.positions.append(positions)
        self.predictions.append(predictions)
        self.probabilities.append(probabilities)

    def gather(self, result: EngineResult) -> None:
        if not self.positions:
            return
        positions = np.concatenate(self.positions)
        result.predictions[positions] = torch.cat(self.predictions).cpu().numpy()
        result.probabilities[positions] = torch.cat(self.probabilities).float().cpu().numpy()
