"""The tokenizer's process (glueperf/tokenizer_process.py): a large run on a GPU is tokenized by a
child process, with the same ids, truncation counts and so predictions as in the engine's own
process; a process that fails or dies is an error, never a hang, and is replaced."""

from __future__ import annotations

import copy
import sys

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from conftest import build_tiny_model, make_sentences
from glueperf import tokenizer_process
from glueperf.engine import PROCESS_TEXTS, Batching, ChunkTokenizer, Engine, start_tokenizer_early
from glueperf.tokenizer_process import discard, spare_ready, start_spare, take_spare


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    directory = build_tiny_model(tmp_path_factory.mktemp("models") / "bert", initializer_range=0.5)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    return AutoModelForSequenceClassification.from_pretrained(directory).eval(), tokenizer


@pytest.fixture
def no_spare():
    """No child started ahead before or after the test."""
    yield
    spare = take_spare()
    if spare is not None:
        spare.kill()
        spare.wait()
        discard(spare)


def engines(model, tokenizer, max_length=64):
    """An engine that tokenizes in its own threads, and one whose runs use a process (as a model
    in 16-bit floats would, the threshold lowered to any run: these runs are small); both as on
    a GPU (``overlap``)."""
    batching = Batching(batch_tokens=256, max_length=max_length)
    in_process = Engine(model, tokenizer, "cpu", batching, overlap=True)
    apart = Engine(model, tokenizer, "cpu", batching, overlap=True)
    apart.tokenizes_apart, apart.process_texts = True, 1
    return in_process, apart


def assert_same(result, expected):
    for field in ("predictions", "probabilities", "token_counts"):
        assert np.array_equal(getattr(result, field), getattr(expected, field)), field
    assert (result.n_truncated, result.n_batches, result.padded_tokens) == (
        expected.n_truncated,
        expected.n_batches,
        expected.padded_tokens,
    )


@pytest.mark.parametrize("paired", [False, True])
def test_a_run_tokenized_in_a_process_equals_one_tokenized_in_threads(bert, paired):
    """Over several chunks, truncated texts and (pairs) token type ids, which change the
    predictions: the ids are the same."""
    model, tokenizer = bert
    texts = make_sentences(3000, seed=5)
    pairs = make_sentences(3000, seed=6) if paired else None
    in_process, apart = engines(model, tokenizer, max_length=12)
    expected = in_process.run(texts, pairs)
    result = apart.run(texts, pairs)
    assert apart._process is not None and in_process._process is None
    assert expected.n_truncated > 0 and result.tokenize_s > 0
    assert_same(result, expected)
    again = apart.run(texts, pairs)  # the same process, a second run
    assert_same(again, expected)
    assert apart.close() > 1 << 20  # its memory peak, read before it ended
    assert apart._process is None and in_process.close() == 0


def test_only_a_large_run_in_16_bits_beside_a_gpu_starts_a_process_which_starts_early(bert):
    """An evaluation starts it before its warm-up (``expect``). In float32 the GPU's passes
    outlast the tokenizer's thread: no process."""
    model, tokenizer = bert
    half = copy.deepcopy(model).to(torch.bfloat16)
    assert not Engine(model, tokenizer, "cpu", Batching(), overlap=True).tokenizes_apart
    beside_gpu = Engine(half, tokenizer, "cpu", Batching(), overlap=True)
    on_cpu = Engine(half, tokenizer, "cpu", Batching(), overlap=False)
    assert beside_gpu._tokenizer_process(PROCESS_TEXTS - 1) is None
    on_cpu.expect(PROCESS_TEXTS)
    assert on_cpu._process is None
    beside_gpu.expect(PROCESS_TEXTS)  # before the warm-up: the run then finds it started
    started = beside_gpu._process
    assert started is not None and beside_gpu._tokenizer_process(PROCESS_TEXTS) is started
    beside_gpu.close()


def test_a_failing_chunk_is_an_error_and_the_next_run_gets_a_new_process(bert):
    model, tokenizer = bert
    in_process, apart = engines(model, tokenizer)
    texts = make_sentences(1500, seed=7)
    apart.run(texts)
    first = apart._process
    with pytest.raises(RuntimeError, match="the tokenizer's process failed: .*Error"):
        apart.run([*texts, b"bytes"])  # not a text: the Rust tokenizer refuses it
    assert first.process.poll() is not None  # killed, never read from again
    assert_same(apart.run(texts), in_process.run(texts))
    assert apart._process is not first
    apart.close()


def test_a_process_that_died_is_an_error_not_a_hang(bert):
    _, tokenizer = bert
    process = ChunkTokenizer(tokenizer, 64).process()
    process.kill()
    with pytest.raises(RuntimeError, match=r"the tokenizer's process \(pid \d+\) ended"):
        list(process.chunks([(make_sentences(10), None)]))
    process.close()


def test_a_process_that_cannot_start_leaves_the_tokenizer_in_this_one(bert, monkeypatch, caplog):
    model, tokenizer = bert
    in_process, apart = engines(model, tokenizer)
    monkeypatch.setattr(sys, "executable", "/no/such/python")
    texts = make_sentences(1500, seed=8)
    assert_same(apart.run(texts), in_process.run(texts))
    assert apart._process is None and not apart.tokenizes_apart
    assert "the tokenizer stays in this process" in caplog.text


def test_a_process_started_early_is_the_one_a_run_takes(bert, no_spare):
    """An evaluation starts it before loading its model: the run finds it imported already."""
    model, tokenizer = bert
    start_spare()
    spare = tokenizer_process._spare[0]
    start_spare()  # one waits at most
    assert tokenizer_process._spare == [spare]
    assert spare_ready(timeout=60)
    in_process, apart = engines(model, tokenizer)
    texts = make_sentences(1500, seed=9)
    assert_same(apart.run(texts), in_process.run(texts))
    assert apart._process.process is spare and tokenizer_process._spare == []
    assert not spare_ready(timeout=0)  # none waits any more
    apart.close()


def test_a_spare_that_died_is_not_taken(bert, no_spare):
    model, tokenizer = bert
    start_spare()
    dead = tokenizer_process._spare[0]
    dead.kill()
    dead.wait()
    in_process, apart = engines(model, tokenizer)
    texts = make_sentences(1500, seed=10)
    assert_same(apart.run(texts), in_process.run(texts))
    assert apart._process.process is not dead and tokenizer_process._spare == []
    apart.close()


@pytest.mark.parametrize(
    ("device", "dtype", "n_texts", "starts"),
    [
        ("cuda", "bfloat16", PROCESS_TEXTS, True),
        ("cuda:0", "float16", PROCESS_TEXTS + 1, True),
        ("cuda", "bfloat16", PROCESS_TEXTS - 1, False),
        ("cuda", "float32", PROCESS_TEXTS, False),
        ("cpu", "bfloat16", PROCESS_TEXTS, False),
    ],
)
def test_only_an_evaluation_that_will_tokenize_apart_starts_a_process_early(
    no_spare, device, dtype, n_texts, starts
):
    start_tokenizer_early(device, dtype, n_texts)
    assert (tokenizer_process._spare != []) is starts
