"""The evaluation engine: batching, padding, ordering, truncation, OOM back-off, and equality
with the notebook's loop in float32."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from conftest import (
    SHARED,
    build_tiny_model,
    make_sentences,
    reference_predictions,
    requires_shared,
)
from glueperf import GlueperfError
from glueperf.engine import (
    FIRST_CHUNK_TEXTS,
    MIN_LENGTH_RATIO,
    Batching,
    ChunkTokenizer,
    Engine,
    Tokens,
    answer_padding_checks,
    pad,
    padding_answered,
    plan_batches,
)
from glueperf.validation import load_dataset
from reference import notebook_loop


def load(model_dir):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32)
    return model.eval(), tokenizer


@pytest.mark.parametrize("budget, max_size", [(64, 1000), (200, 7), (1, 1000), (10_000, 3)])
def test_plan_batches_covers_every_position_once_within_the_budget(budget, max_size):
    lengths = np.sort(np.random.default_rng(0).integers(1, 60, 500))[::-1]
    batches = plan_batches(lengths, budget, max_size)
    assert np.array_equal(np.concatenate(batches), np.arange(len(lengths)))
    for batch in batches:
        longest = lengths[batch[0]]
        assert len(batch) <= max_size
        assert len(batch) == 1 or len(batch) * longest <= budget
        assert lengths[batch].min() >= MIN_LENGTH_RATIO * longest


def test_pad_right_pads_and_masks_only_when_needed():
    matrix, mask = pad([[5, 6, 7], [8], [9, 10]], pad_id=0)
    assert matrix.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    matrix, mask = pad([[1, 2], [3, 4]], pad_id=0)
    assert matrix.tolist() == [[1, 2], [3, 4]] and mask is None


@pytest.mark.parametrize("overlap", [False, True])
def test_engine_equals_notebook_loop_in_input_order(varied_model, overlap):
    """More texts than one tokenizer chunk, small batches: chunk seams and leftovers are used."""
    model, tokenizer = load(varied_model)
    texts = make_sentences(FIRST_CHUNK_TEXTS + 700, seed=3)
    labels = np.zeros(len(texts), dtype=np.int64)
    engine = Engine(model, tokenizer, "cpu", Batching(batch_tokens=256), overlap=overlap)
    result = engine.run(texts)
    expected = notebook_loop(model, tokenizer, texts, labels, "cpu")
    assert len(set(expected.tolist())) == 2, "the test model must predict both classes"
    assert np.array_equal(result.predictions, expected)
    assert result.n_batches > 2 and result.padded_tokens >= result.token_counts.sum()


def test_engine_probabilities_and_token_counts_match_an_unpadded_reference(varied_model):
    model, tokenizer = load(varied_model)
    texts = make_sentences(60, seed=5)
    result = Engine(model, tokenizer, "cpu", Batching(batch_tokens=128)).run(texts)
    reference = reference_predictions(varied_model, texts)
    assert np.array_equal(result.predictions, reference["prediction"].to_numpy())
    assert np.allclose(result.probabilities, reference["probability"].to_numpy(), atol=1e-5)
    assert np.array_equal(result.token_counts, reference["n_tokens"].to_numpy())


def test_long_sentences_are_truncated_and_counted(varied_model):
    model, tokenizer = load(varied_model)
    texts = make_sentences(40, seed=7)
    full_lengths = [len(tokenizer(t)["input_ids"]) for t in texts]
    max_length = 8
    result = Engine(model, tokenizer, "cpu", Batching(max_length=max_length)).run(texts)
    assert result.n_truncated == sum(n > max_length for n in full_lengths) > 0
    assert result.token_counts.max() == max_length
    reference = reference_predictions(varied_model, texts, max_length=max_length)
    assert np.array_equal(result.predictions, reference["prediction"].to_numpy())


class RunsOutOfMemory(torch.nn.Module):
    """Wraps a model and raises CUDA's out-of-memory error for batches over ``limit`` tokens,
    as the caching allocator does, to exercise the back-off on a machine without a GPU."""

    def __init__(self, model, limit):
        super().__init__()
        self.model, self.limit, self.refusals = model, limit, 0
        self.config = model.config

    def forward(self, input_ids, attention_mask=None):
        if input_ids.numel() > self.limit:
            self.refusals += 1
            raise torch.OutOfMemoryError("CUDA out of memory (injected by the test)")
        return self.model(input_ids=input_ids, attention_mask=attention_mask)


def test_out_of_memory_halves_the_budget_and_finishes(varied_model, caplog):
    model, tokenizer = load(varied_model)
    texts = make_sentences(200, seed=11)
    expected = Engine(model, tokenizer, "cpu", Batching(batch_tokens=4096)).run(texts)
    flaky = RunsOutOfMemory(model, limit=600)
    with caplog.at_level(logging.WARNING, logger="glueperf.engine"):
        result = Engine(flaky, tokenizer, "cpu", Batching(batch_tokens=4096)).run(texts)
    assert flaky.refusals > 0 and result.oom_retries == flaky.refusals
    assert result.batch_tokens <= 600 < 4096
    # Once backed off, batches planned under the old budget are split, not tried and refused.
    assert flaky.refusals <= 4
    assert np.array_equal(result.predictions, expected.predictions)
    assert "token budget halved" in caplog.text


def test_out_of_memory_on_a_single_sentence_is_a_clear_error(varied_model):
    model, tokenizer = load(varied_model)
    flaky = RunsOutOfMemory(model, limit=1)
    with pytest.raises(GlueperfError, match="out of memory on a single sentence.*max_length"):
        Engine(flaky, tokenizer, "cpu", Batching()).run(["a good film", "bad"])


@requires_shared
def test_engine_equals_notebook_loop_on_sst2_validation():
    model_dir = SHARED / "models" / "minilm-sst2"
    model, tokenizer = load(model_dir)
    data = load_dataset(SHARED / "data" / "glue" / "sst2" / "validation.parquet")
    result = Engine(model, tokenizer, "cpu", Batching()).run(data.texts)
    expected = notebook_loop(model, tokenizer, data.texts, data.labels, "cpu")
    assert np.array_equal(result.predictions, expected)
    assert int((result.predictions == data.labels).sum()) == 779


def test_token_limit_prefers_the_tokenizers_stated_limit():
    from types import SimpleNamespace

    from glueperf.models import token_limit

    roberta_like = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=514))
    assert token_limit(roberta_like, SimpleNamespace(model_max_length=512), 1024) == 512
    assert token_limit(roberta_like, SimpleNamespace(model_max_length=int(1e30)), 1024) == 514


class ZeroLogits(torch.nn.Module):
    """A model that costs nothing: two zero logits per sentence (batching tests)."""

    config = type("Config", (), {"num_labels": 2})()

    def forward(self, input_ids, attention_mask=None):
        return type("Output", (), {"logits": torch.zeros(len(input_ids), 2)})()


@requires_shared
def test_chunk_seams_cost_no_extra_batches_on_sst2_train():
    """SST-2 train arrives in 11 tokenizer chunks; the batches held back at each seam make the
    engine plan as few batches as planning all 67,349 sentences at once."""
    tokenizer = AutoTokenizer.from_pretrained(SHARED / "models" / "minilm-sst2")
    data = load_dataset(SHARED / "data" / "glue" / "sst2" / "train.parquet")
    batching = Batching()
    result = Engine(ZeroLogits(), tokenizer, "cpu", batching, overlap=False).run(data.texts)
    lengths = np.sort(result.token_counts)[::-1]
    at_once = plan_batches(lengths, batching.batch_tokens, batching.max_batch_size)
    assert result.n_batches == len(at_once)
    assert result.padded_tokens <= 1.01 * sum(len(b) * lengths[b[0]] for b in at_once)


def padded_naively(rows: list[list[int]], pad_id: int) -> np.ndarray:
    matrix = np.full((len(rows), max(map(len, rows))), pad_id, dtype=np.int64)
    for i, row in enumerate(rows):
        matrix[i, : len(row)] = row
    return matrix


def test_tokens_taken_and_added_pad_as_their_lists_would():
    """The engine's flat token arrays: texts taken out of order and added to other texts still
    pad to the same matrix, mask and token types as their lists."""
    rng = np.random.default_rng(0)
    rows = [rng.integers(1, 1000, rng.integers(1, 12)).tolist() for _ in range(50)]
    types = [[i % 2] * len(row) for i, row in enumerate(rows)]
    first, second = Tokens.from_rows(rows[:30], types[:30]), Tokens.from_rows(rows[30:], types[30:])
    second.positions = second.positions + 30
    members = rng.permutation(30)[:20]
    both = first.take(members).add(second)
    order = rng.permutation(len(both))
    batch = both.take(order)
    expected = [rows[i] for i in both.positions[order]]
    matrix, mask = batch.padded(pad_id=7)
    assert np.array_equal(matrix, padded_naively(expected, 7))
    assert np.array_equal(mask, (padded_naively(expected, -1) != -1).astype(np.int64))
    assert np.array_equal(
        batch.padded(0, types=True)[0], padded_naively([types[i] for i in batch.positions], 0)
    )
    assert batch.rows() == expected and both.compact().rows() == both.rows()


def test_chunk_tokens_equal_the_tokenizers_own_ids(varied_model):
    tokenizer = AutoTokenizer.from_pretrained(varied_model)
    texts = make_sentences(40, seed=2)
    tokens, _ = ChunkTokenizer(tokenizer, 64).tokens(texts)
    assert tokens.rows() == tokenizer(texts)["input_ids"]
    assert tokens.lengths.tolist() == [len(row) for row in tokenizer(texts)["input_ids"]]


class HostReads(TorchFunctionMode):
    """Counts what reads a tensor's values back to the host (on a GPU each waits for every
    kernel queued before it): ``if tensor:``, ``.item()``, ``x in tensor``, ``.cpu()``..."""

    READS = {"__bool__", "item", "tolist", "__contains__", "__int__", "__float__", "__index__"}
    READS |= {"cpu", "numpy"}

    def __init__(self):
        super().__init__()
        self.reads = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in self.READS:
            self.reads[func.__name__] += 1
        return func(*args, **(kwargs or {}))


@pytest.fixture(scope="module")
def sdpa_models(tmp_path_factory, varied_model):
    """(name, model, tokenizer) of three architectures whose SDPA masks transformers builds."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    roberta = build_tiny_model(
        tmp_path_factory.mktemp("models") / "roberta", architecture="roberta"
    )
    models = [("bert", *load(varied_model)), ("roberta", *load(roberta))]
    torch.manual_seed(0)
    distilbert = DistilBertForSequenceClassification(
        DistilBertConfig(
            vocab_size=64, dim=32, hidden_dim=64, n_heads=2, n_layers=2, attn_implementation="sdpa"
        )
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(varied_model)
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    return models + [("distilbert", distilbert, tokenizer)]


def padded_inputs(tokenizer, pairs: bool) -> dict:
    texts = make_sentences(6, seed=9)
    encoded = tokenizer(texts, texts[::-1] if pairs else None, padding=True, return_tensors="pt")
    assert not bool(encoded["attention_mask"].all()), "the batch must be padded"
    return {k: v for k, v in encoded.items() if k in tokenizer.model_input_names}


@pytest.mark.parametrize("pairs", [False, True])
def test_padded_batches_read_nothing_back_from_the_device_but_the_results(sdpa_models, pairs):
    """transformers' mask code asks whether a padded batch is padded (a read of the device per
    batch); the engine answers it: a whole run reads back its two result tensors only."""
    for name, model, tokenizer in sdpa_models:
        inputs = padded_inputs(tokenizer, pairs)
        with HostReads() as alone, torch.inference_mode():
            model(**inputs)
        assert alone.reads["__bool__"] >= 1, f"{name}: transformers checks the mask itself"
        engine = Engine(model, tokenizer, "cpu", Batching(batch_tokens=96))
        texts = make_sentences(200, seed=4)
        with HostReads() as run:
            result = engine.run(texts, texts[::-1] if pairs else None)
        assert result.n_batches > 5 and result.padded_tokens > result.token_counts.sum()
        assert run.reads == Counter({"cpu": 2, "numpy": 2}), name  # predictions, probabilities


@pytest.mark.parametrize("pairs", [False, True])
def test_answered_padding_gives_the_models_own_logits_bit_for_bit(sdpa_models, pairs):
    assert answer_padding_checks(), "transformers' SDPA mask function is the engine's"
    for name, model, tokenizer in sdpa_models:
        inputs = padded_inputs(tokenizer, pairs)
        with torch.inference_mode():
            expected = model(**inputs).logits
            with padding_answered(True):
                got = model(**inputs).logits
        assert torch.equal(got, expected), name


def test_an_engine_on_cuda_leaves_out_sdpas_cudnn_backend():
    """Its per-shape plans stalled half-precision runs on new lengths (BENCHMARKS.md, session 6);
    the CPU has no cuDNN attention to leave out."""
    from glueperf.engine import no_attention_plans_per_shape

    was = torch.backends.cuda.cudnn_sdp_enabled()
    try:
        torch.backends.cuda.enable_cudnn_sdp(True)
        no_attention_plans_per_shape("cpu")
        assert torch.backends.cuda.cudnn_sdp_enabled()
        no_attention_plans_per_shape("cuda")
        assert not torch.backends.cuda.cudnn_sdp_enabled()
    finally:
        torch.backends.cuda.enable_cudnn_sdp(was)
