"""Single-request latency: how long one sentence (or pair) takes from its text to its prediction.

The offline pass (glueperf/engine.py) measures throughput: every row at once, in large batches.
A service answers one request at a time; MLPerf Inference's SingleStream scenario measures that
(one sample per query, the next sent when the last returns, its 90th percentile reported beside
Offline throughput), optimum-benchmark reports p50/p90/p95/p99. This module does the same after
the offline pass, in the same process, with the same model on the same device:

- **Which rows.** A seeded sample of the dataset's rows (numpy's Generator, ``seed``): the same
  rows, in the same order, on every run and every machine; never more than the rows there are.
- **One request.** The text (or pair) is tokenized by the engine's own tokenizer, one call for
  this text alone; the ids go to the device; the model runs; the class id (the largest logit) or,
  for a one-output regression model, the score is read on the host. Reading it waits for the
  device, so each request ends when its prediction is on the host. Nothing is batched across
  requests and nothing is shared but the model and the tokenizer.
- **How many.** ``warmup`` requests first, not counted (cut short after ``max_seconds``); then
  the sample's rows one after another until ``requests`` have been timed or ``max_seconds`` have
  passed since the first timed one (the request under way finishes and counts). Defaults: 10 +
  1000 requests within 2 s.
- **Percentiles.** Nearest rank: p-th percentile = the ceil(p/100 * n)-th smallest of n
  latencies, always a latency that was measured, never one interpolated between two.
  A percentile is reported only when at least ``MIN_TAIL`` (5) requests lie at or above its rank
  (n - rank + 1 >= 5): p50 needs 8 requests, p90 40, p99 400. With fewer it is empty (NaN), and
  the note says why. The maximum is reported whenever one request ran.

Batch sizes other than 1 are left out: the offline pass already measures large batches, and a
"request of N sentences" would need rules of its own (which N rows, padded how) for a figure that
lies between the two that are measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from glueperf import results

PERCENTILES = (50, 90, 99)
# Requests that must lie at or above a percentile's rank for it to be reported: below that, the
# figure is one of the few slowest requests, whichever they happened to be.
MIN_TAIL = 5
CONFIG_KEY = "evaluation.latency"


@dataclass(frozen=True)
class LatencySettings:
    """``evaluation.latency`` of the config (schemas/config.schema.yaml has the same defaults)."""

    enabled: bool = True
    requests: int = 1000  # requests timed, at most (never more than the dataset's rows)
    max_seconds: float = 2.0  # timed requests stop once this much time has passed
    warmup: int = 10  # requests sent first, not timed
    seed: int = 0  # of the sample of rows


@dataclass(frozen=True, eq=False)
class Latency:
    """Single-request latencies, in milliseconds (``unit``), of ``requests`` requests; a
    percentile is NaN where too few requests ran (``note`` says why). ``rows``: the dataset's
    rows in the order they were sent, the timed ones first in ``latencies_ms`` and
    ``predictions`` (the model's class ids, or scores for regression)."""

    requests: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    phase_s: float  # seconds of the whole phase, warm-up included: what it cost the evaluation
    note: str = ""
    unit: str = "ms"
    rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    latencies_ms: np.ndarray = field(default_factory=lambda: np.empty(0))
    predictions: np.ndarray = field(default_factory=lambda: np.empty(0))


def not_measured(why: str) -> Latency:
    nan = float("nan")
    return Latency(0, nan, nan, nan, nan, 0.0, note=why)


def sample_rows(n_rows: int, n: int, seed: int) -> np.ndarray:
    """``min(n, n_rows)`` distinct row indices (int64), in the order they are sent: the same
    for the same arguments on every run and machine."""
    size = max(0, min(n, n_rows))
    return np.random.default_rng(seed).choice(n_rows, size=size, replace=False).astype(np.int64)


def rank(p: int, n: int) -> int:
    """The nearest rank of percentile ``p`` (an integer percent) among ``n`` values, 1-based:
    ceil(p * n / 100), in integers: exact for every n, as a float's ceil need not be."""
    return max(1, -(-p * n // 100))


def min_requests(p: int, tail: int = MIN_TAIL) -> int:
    """The fewest requests for which percentile ``p`` has ``tail`` requests at or above its rank
    (n - rank + 1 >= tail, i.e. floor(n * (100 - p) / 100) >= tail - 1)."""
    return -(-100 * (tail - 1) // (100 - p))


def summarize(latencies_ms, why_fewer: str = "") -> dict:
    """p50/p90/p99/max (ms, NaN where too few requests ran) and the note: ``why_fewer`` (why
    fewer requests ran than were asked for), then which percentiles are empty and why."""
    ordered = sorted(latencies_ms)
    n = len(ordered)
    figures, empty = {}, []
    for p in PERCENTILES:
        if n and n - rank(p, n) + 1 >= MIN_TAIL:
            figures[f"p{p}_ms"] = float(ordered[rank(p, n) - 1])
        else:
            figures[f"p{p}_ms"] = float("nan")
            empty.append(f"p{p} needs {min_requests(p)}")
    figures["max_ms"] = float(ordered[-1]) if n else float("nan")
    notes = [why_fewer] if why_fewer else []
    if empty:
        notes.append(
            f"{', '.join(empty)} requests or more ({MIN_TAIL} at or above it), {n} were timed"
        )
    figures["note"] = "; ".join(notes)
    return figures


class SingleRequest:
    """One request: text (or pair) in, prediction out, nothing batched or kept between calls.
    Call it inside ``torch.inference_mode()``."""

    def __init__(self, model, tokenize, device, regression: bool):
        self._model, self._tokenize, self._regression = model, tokenize.one, regression
        self._device = torch.device(device)

    @classmethod
    def of(cls, engine) -> SingleRequest:
        """Requests to the model, tokenizer and device of an ``Engine`` (glueperf/engine.py)."""
        return cls(engine.model, engine.tokenize, engine.device, engine.regression)

    def __call__(self, text: str, pair: str | None = None) -> int | float:
        ids, types = self._tokenize(text, pair)
        # One unpadded row: no attention mask, as the engine passes none for unpadded batches.
        inputs = {"input_ids": torch.tensor([ids], dtype=torch.int64, device=self._device)}
        if types is not None:
            inputs["token_type_ids"] = torch.tensor([types], dtype=torch.int64, device=self._device)
        logits = self._model(**inputs).logits
        # .item() reads the device: the host waits for the forward pass to end.
        return logits[0, 0].item() if self._regression else logits[0].argmax().item()


def time_requests(
    request: Callable,
    texts: list[str],
    pairs: list[str] | None,
    settings: LatencySettings,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[float], list, float]:
    """(seconds of each timed request, its prediction, seconds of the whole phase) of
    ``request(text, pair)`` sent for each text in turn, after ``settings.warmup`` untimed ones
    (the first texts), until every text was sent or ``settings.max_seconds`` have passed. The
    warm-up stops early after ``max_seconds`` too: the phase lasts at most about twice that,
    however slow a request."""
    seconds = [None] * len(texts) if pairs is None else pairs
    timed, predictions = [], []
    began = clock()
    for text, pair in zip(texts[: settings.warmup], seconds, strict=False):
        request(text, pair)
        if clock() - began >= settings.max_seconds:
            break
    deadline = clock() + settings.max_seconds
    for text, pair in zip(texts, seconds, strict=True):
        start = clock()
        predictions.append(request(text, pair))
        end = clock()
        timed.append(end - start)
        if end >= deadline:
            break
    return timed, predictions, clock() - began


def measure_latency(
    engine,
    texts: list[str],
    pairs: list[str] | None = None,
    settings: LatencySettings | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Latency:
    """Single-request latency of the engine's model on a seeded sample of the rows (see the
    module docstring). Call it after the offline pass, with the device still held."""
    settings = settings or LatencySettings()
    if not settings.enabled:
        return not_measured(f"not measured: {CONFIG_KEY}.enabled is false")
    if not texts:
        return not_measured("not measured: the dataset has no rows")
    rows = sample_rows(len(texts), settings.requests, settings.seed)
    chosen = rows.tolist()  # the texts picked before the clock runs
    sent = [texts[i] for i in chosen]
    second = None if pairs is None else [pairs[i] for i in chosen]
    with torch.inference_mode():
        timed, predictions, phase_s = time_requests(
            SingleRequest.of(engine), sent, second, settings, clock
        )
    latencies_ms = np.array(timed) * 1000.0
    figures = summarize(latencies_ms.tolist(), why_fewer(len(timed), len(texts), settings))
    return Latency(
        requests=len(timed),
        phase_s=phase_s,
        rows=rows[: len(timed)],
        latencies_ms=latencies_ms,
        predictions=np.array(predictions, dtype=np.float32 if engine.regression else np.int64),
        **figures,
    )


def why_fewer(timed: int, n_rows: int, settings: LatencySettings) -> str:
    """Why fewer requests were timed than ``settings.requests``, or "" when all were."""
    if timed >= settings.requests:
        return ""
    if timed >= n_rows:
        return f"{timed} of {settings.requests} requests: the dataset has {n_rows} rows"
    return (
        f"{timed} of {settings.requests} requests: {CONFIG_KEY}.max_seconds "
        f"({settings.max_seconds:g} s) ran out"
    )


def latency_fields(latency: Latency) -> results.Latency:
    """The metrics row's latency columns (glueperf/results.py)."""
    return results.Latency(
        latency_requests=latency.requests,
        latency_p50_ms=latency.p50_ms,
        latency_p90_ms=latency.p90_ms,
        latency_p99_ms=latency.p99_ms,
        latency_max_ms=latency.max_ms,
        latency_phase_s=latency.phase_s,
        latency_note=latency.note,
    )
