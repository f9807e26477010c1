"""Single-request latency (glueperf.latency): the seeded sample of rows, the request path (the
engine's own predictions, one read of the device per request), nearest-rank percentiles from
known timings, and what is left empty when too few requests ran."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from test_engine import HostReads

from conftest import REPO, build_tiny_model, make_sentences
from glueperf.engine import Batching, ChunkTokenizer, Engine
from glueperf.latency import (
    MIN_TAIL,
    LatencySettings,
    SingleRequest,
    latency_fields,
    measure_latency,
    min_requests,
    sample_rows,
    summarize,
    time_requests,
)
from glueperf.models import load_model

# Seconds that the fake clock's timings are made of: a binary fraction, so that differences and
# milliseconds are exact in floating point.
TICK = 1 / 256


@pytest.fixture(scope="module")
def engines(tmp_path_factory, varied_model):
    """Engines as evaluations build them (CPU, float32): a classifier and a regressor; each with
    sentences and second sentences."""
    base = tmp_path_factory.mktemp("latency-models")
    regressor = build_tiny_model(base / "regressor", num_labels=1, initializer_range=0.5)
    found = {}
    for name, source in (("classifier", varied_model), ("regressor", regressor)):
        model, tokenizer, _ = load_model(str(source), "float32", "cpu")
        found[name] = Engine(model, tokenizer, "cpu", Batching(batch_tokens=256))
    return found


def scripted_clock(durations, warmup: int):
    """A clock whose readings make the timed requests last ``durations`` (seconds), in order,
    when ``time_requests`` reads it: once at the start, after each warm-up request (no time
    passes), after the warm-up (1 s later), before and after each request, and at the end."""
    readings, now = [0.0] * (1 + warmup) + [1.0], 1.0
    for duration in durations:
        readings += [now, now + duration]
        now += duration + TICK
    readings.append(now)
    return iter(readings).__next__


def test_the_sample_is_seeded_distinct_and_never_more_than_the_rows():
    rows = sample_rows(1000, 50, seed=0)
    assert np.array_equal(rows, sample_rows(1000, 50, seed=0))
    assert not np.array_equal(rows, sample_rows(1000, 50, seed=1))
    assert rows.dtype == np.int64 and len(set(rows.tolist())) == 50
    assert rows.min() >= 0 and rows.max() < 1000
    every = sample_rows(40, 1000, seed=0)
    assert sorted(every.tolist()) == list(range(40))  # all 40 rows, each once
    assert len(sample_rows(0, 10, seed=0)) == 0


def test_percentiles_are_nearest_ranks_of_known_timings(engines):
    """The whole phase with a scripted clock: 40 rows, so 40 timed requests of 1..40 ticks in a
    shuffled order; p50 is the 20th smallest, p90 the 36th, p99 left empty (it needs 400)."""
    engine = engines["classifier"]
    texts = make_sentences(40, seed=3)
    ticks = np.random.default_rng(7).permutation(np.arange(1, 41))
    settings = LatencySettings(warmup=3, max_seconds=1e9)
    clock = scripted_clock((ticks * TICK).tolist(), settings.warmup)
    latency = measure_latency(engine, texts, None, settings, clock)
    ms = TICK * 1000
    assert latency.requests == 40 and latency.unit == "ms"
    assert latency.p50_ms == 20 * ms and latency.p90_ms == 36 * ms and latency.max_ms == 40 * ms
    assert math.isnan(latency.p99_ms)
    assert latency.note == (
        "40 of 1000 requests: the dataset has 40 rows; "
        f"p99 needs 400 requests or more ({MIN_TAIL} at or above it), 40 were timed"
    )
    assert latency.phase_s == 1.0 + ticks.sum() * TICK + 40 * TICK
    # The requests' predictions are the offline pass's for the rows sent, in their order.
    assert np.array_equal(latency.rows, sample_rows(40, 1000, settings.seed))
    assert np.array_equal(latency.predictions, engine.run(texts).predictions[latency.rows])
    fields = latency_fields(latency).values()
    assert fields["latency_requests"] == 40 and fields["latency_p90_ms"] == 36 * ms
    assert math.isnan(fields["latency_p99_ms"]) and fields["latency_note"] == latency.note


def test_p99_of_400_requests_is_the_396th():
    latencies = np.random.default_rng(0).permutation(np.arange(1.0, 401.0)).tolist()
    figures = summarize(latencies)
    assert (figures["p50_ms"], figures["p90_ms"], figures["p99_ms"]) == (200.0, 360.0, 396.0)
    assert figures["max_ms"] == 400.0 and figures["note"] == ""


@pytest.mark.parametrize("p, needed", [(50, 8), (90, 40), (99, 400)])
def test_a_percentile_needs_five_requests_at_or_above_it(p, needed):
    assert min_requests(p) == needed
    assert not math.isnan(summarize([1.0] * needed)[f"p{p}_ms"])
    fewer = summarize([1.0] * (needed - 1))
    assert math.isnan(fewer[f"p{p}_ms"]) and f"p{p} needs {needed}" in fewer["note"]
    assert fewer["max_ms"] == 1.0


def test_nothing_timed_gives_empty_figures_with_the_reason(engines):
    disabled = measure_latency(engines["classifier"], ["a film"], None, LatencySettings(False))
    assert disabled.requests == 0 and math.isnan(disabled.p50_ms) and math.isnan(disabled.max_ms)
    assert disabled.note == "not measured: evaluation.latency.enabled is false"
    empty = measure_latency(engines["classifier"], [], None)
    assert empty.requests == 0 and empty.note == "not measured: the dataset has no rows"


def test_the_time_budget_ends_the_requests_and_says_so():
    """Requests of 0.5 s with a budget of 2 s: the fourth ends at the budget and is the last; the
    warm-up requests come before the budget starts."""
    sent = []
    settings = LatencySettings(requests=10, max_seconds=2.0, warmup=2)
    clock = scripted_clock([0.5] * 10, settings.warmup)
    timed, predictions, _ = time_requests(
        lambda text, pair: sent.append(text) or len(text), list("abcdefghij"), None, settings, clock
    )
    assert sent == list("ab") + list("abcd") and timed == [0.5] * 4
    assert predictions == [1, 1, 1, 1]


def test_a_slow_warm_up_stops_at_the_time_budget():
    """Requests of 1.5 s, a budget of 2 s: two warm-up requests of ten, then the budget starts
    again for the timed ones (two, the second ending past it)."""
    now = [0.0]

    def request(text, pair):
        now[0] += 1.5
        return text

    settings = LatencySettings(requests=10, max_seconds=2.0, warmup=10)
    timed, predictions, phase_s = time_requests(
        request, list("abcdefghij"), None, settings, lambda: now[0]
    )
    assert predictions == list("ab") and timed == [1.5, 1.5] and phase_s == 6.0


def test_a_single_request_predicts_what_the_engine_predicts(engines):
    """Single sentences and pairs, classes and scores: a request's prediction is the offline
    pass's for the same text."""
    texts, pairs = make_sentences(30, seed=11), make_sentences(30, seed=12)
    for name, engine in engines.items():
        request = SingleRequest.of(engine)
        for second in (None, pairs):
            expected = engine.run(texts, second).predictions
            got = [request(t, None if second is None else second[i]) for i, t in enumerate(texts)]
            if engine.regression:
                assert np.allclose(got, expected, atol=1e-5), name
            else:
                assert got == expected.tolist(), name
                assert len(set(got)) > 1, "the model must tell sentences apart"


def test_a_request_reads_the_device_once(engines):
    """One read of the prediction per request: the host waits for the device once, at its end."""
    request = SingleRequest.of(engines["classifier"])
    with HostReads() as reads:
        for text in make_sentences(5, seed=4):
            request(text, "a second sentence")
    assert sum(reads.reads.values()) == 5 and reads.reads["item"] == 5


def test_one_text_tokenizes_as_in_a_chunk(varied_model):
    from transformers import AutoTokenizer

    tokenize = ChunkTokenizer(AutoTokenizer.from_pretrained(varied_model), 16)
    texts, pairs = make_sentences(20, seed=5), make_sentences(20, seed=6)
    for second in (None, pairs):
        tokens, _ = tokenize.tokens(texts, second)
        ones = [tokenize.one(t, None if second is None else second[i]) for i, t in enumerate(texts)]
        assert [ids for ids, _ in ones] == tokens.rows()  # truncated to 16 alike
        types = [types for _, types in ones]
        assert types == (tokens.rows(types=True) if second else [None] * len(texts))


def test_the_settings_defaults_are_the_schemas():
    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    latency = schema["properties"]["evaluation"]["properties"]["latency"]["properties"]
    assert {key: node["default"] for key, node in latency.items()} == vars(LatencySettings())
