"""The evaluation engine: tokenize fast, batch by length under a token budget, never sync per batch.

Why it is fast (compared with the notebook's loop, see bench/compare_loops.py):
- Texts are tokenized in large chunks by the Rust tokenizer's ``encode_batch_fast`` (no offsets,
  all cores, GIL released). On CUDA a background thread encodes the next chunk while the main
  thread reads the current one's ids and keeps the GPU busy; a run of PROCESS_TEXTS texts or
  more by a model in 16-bit floats is tokenized in a process of its own
  (glueperf/tokenizer_process.py), whose work then holds none of this process's GIL.
- Sentences of similar length share a batch, so padding is small; a batch holds as many sentences
  as fit a budget of padded tokens. A batch with no padding passes no attention mask, which lets
  SDPA pick its fastest kernel.
- Predictions stay on the device until the end: one host synchronization per evaluation instead
  of one per batch; transformers' own check for padding in the mask code, which would read the
  device once per padded batch, is answered by the engine (see ``padding_answered``). Inputs are
  copied from pinned memory without blocking.
- Token ids are kept in flat numpy arrays, never as a Python list per sentence: batching and
  padding are numpy operations, which leaves the host free to keep a fast GPU busy (bfloat16).
- On CUDA out-of-memory the token budget is halved and the failed batch retried.
"""

from __future__ import annotations

import inspect
import logging
import queue
import sys
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import chain

import numpy as np
import torch
from tqdm import tqdm

from glueperf import GlueperfError
from glueperf.tokenizer_process import TokenizerProcess, flat_encodings, start_spare

log = logging.getLogger(__name__)

# Texts per tokenizer call: the first call is small so that the GPU starts at once, later ones
# grow to keep every core busy while staying small enough for the overlap to pay.
FIRST_CHUNK_TEXTS = 1024
CHUNK_TEXTS = 8192
# Texts are tokenized longest first (by characters), so the sentences of the next chunk are
# mostly no longer than the longest of this chunk's last 1/TAIL_SHARE: the engine holds back
# the batches that they could join.
TAIL_SHARE = 10
# A run of at least this many texts on CUDA, by a model in 16-bit floats, is tokenized in a
# process of its own: below, the tokenizer's share of the GIL is a few hundredths of a second,
# about the process's start. In float32 the GPU's passes outlast the tokenizer's thread anyway
# (BERT-base on an H100, SST-2 train: 2.12 s with the process, 2.03 s without; BENCHMARKS.md).
PROCESS_TEXTS = 16384
SIXTEEN_BITS = (torch.float16, torch.bfloat16)
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
    # Per text, in input order: the model's class id (int64) and its probability (float32); for a
    # one-output regression model the raw score (float32) and NaN.
    predictions: np.ndarray
    probabilities: np.ndarray
    token_counts: np.ndarray  # int64 tokens per text after truncation, special tokens included
    n_truncated: int
    n_batches: int
    batch_tokens: int  # the budget in force at the end (smaller than asked after an OOM back-off)
    tokenize_s: float  # seconds spent inside the tokenizer (may overlap the forward passes)
    oom_retries: int = 0
    padded_tokens: int = 0


@dataclass
class Tokens:
    """Tokenized texts, their ids one after another in one array (no Python list per text): text
    ``i`` is ``ids[starts[i] : starts[i] + lengths[i]]``, input text ``positions[i]``. A subset
    (``take``) shares the arrays of ids."""

    positions: np.ndarray  # int64: each text's position in the engine's input
    ids: np.ndarray  # int64
    starts: np.ndarray  # int64
    lengths: np.ndarray  # int64: tokens per text, special tokens included
    types: np.ndarray | None = None  # int64 token type ids, laid out as ``ids``; None: none given

    @classmethod
    def from_rows(cls, ids: list[list[int]], types: list[list[int]] | None = None) -> Tokens:
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))

        def flat(rows):
            return np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))

        return cls(
            np.arange(len(ids)),
            flat(ids),
            np.cumsum(lengths) - lengths,
            lengths,
            None if types is None else flat(types),
        )

    def __len__(self) -> int:
        return len(self.lengths)

    def rows(self, types: bool = False) -> list[list[int]]:
        """Each text's ids (or token types) as a list."""
        source = self.types if types else self.ids
        spans = zip(self.starts.tolist(), self.lengths.tolist(), strict=True)
        return [source[start : start + n].tolist() for start, n in spans]

    def take(self, members: np.ndarray) -> Tokens:
        return Tokens(
            self.positions[members],
            self.ids,
            self.starts[members],
            self.lengths[members],
            self.types,
        )

    def compact(self) -> Tokens:
        """The same texts with arrays of their own tokens only (a ``take`` keeps all of them)."""
        index = self._index()
        starts = np.cumsum(self.lengths) - self.lengths
        types = None if self.types is None else self.types[index]
        return Tokens(self.positions, self.ids[index], starts, self.lengths, types)

    def add(self, other: Tokens) -> Tokens:
        """These texts, then ``other``'s."""
        if not len(self):
            return other
        mine = self.compact()
        return Tokens(
            np.concatenate([mine.positions, other.positions]),
            np.concatenate([mine.ids, other.ids]),
            np.concatenate([mine.starts, other.starts + len(mine.ids)]),
            np.concatenate([mine.lengths, other.lengths]),
            None if other.types is None else np.concatenate([mine.types, other.types]),
        )

    def padded(self, pad_id: int, types: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """The ids (or token types) right-padded to a matrix; the mask (int64) is None when no
        text needed padding."""
        source = self.types if types else self.ids
        width = int(self.lengths.max())
        columns = np.arange(width)
        if (self.lengths == width).all():
            return source[self.starts[:, None] + columns], None
        mask = columns < self.lengths[:, None]
        matrix = np.full((len(self), width), pad_id, dtype=np.int64)
        matrix[mask] = source[self._index()]
        return matrix, mask.astype(np.int64)

    def _index(self) -> np.ndarray:
        """Where each text's tokens are in ``ids``, text after text."""
        ends = np.cumsum(self.lengths)
        return np.arange(ends[-1] if len(ends) else 0) + np.repeat(
            self.starts - ends + self.lengths, self.lengths
        )


def no_tokens() -> Tokens:
    empty = np.empty(0, dtype=np.int64)
    return Tokens(empty, empty, empty, empty)


class ChunkTokenizer:
    """Tokenizes lists of texts, or of text pairs, to id lists with truncation (pairs: longest
    first, as transformers does), counting truncated texts. For pairs, also the token type ids
    where the model takes them (BERT: 0 for the first text, 1 for the second)."""

    def __init__(self, tokenizer, max_length: int):
        self.max_length = max_length
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.takes_token_types = "token_type_ids" in getattr(tokenizer, "model_input_names", [])
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

    def __call__(
        self, texts: list[str], pairs: list[str] | None = None
    ) -> tuple[list[list[int]], list[list[int]] | None, int]:
        """(ids, token type ids or None, number of truncated texts), a list per text."""
        tokens, n_truncated = self.tokens(texts, pairs)
        return tokens.rows(), None if tokens.types is None else tokens.rows(types=True), n_truncated

    def tokens(self, texts: list[str], pairs: list[str] | None = None) -> tuple[Tokens, int]:
        """The texts tokenized, and the number of truncated texts."""
        return self.convert(self.encode(texts, pairs))

    def one(self, text: str, pair: str | None = None) -> tuple[list[int], list[int] | None]:
        """One text (or pair) on its own, as a single request comes: its ids, and its token type
        ids where ``tokens`` gives them (pairs, for a model that takes them), else None."""
        with_types = pair is not None and self.takes_token_types
        if self._backend is not None:
            encoding = self._backend.encode(text, pair)
            return encoding.ids, encoding.type_ids if with_types else None
        encoded = self._tokenizer(text, pair, truncation=True, max_length=self.max_length)
        return encoded["input_ids"], encoded["token_type_ids"] if with_types else None

    def encode(self, texts: list[str], pairs: list[str] | None = None):
        """The texts encoded, for ``convert``: the Rust tokenizer's encodings as it returns them
        (its work, all cores, the GIL released), or a slow tokenizer's tokens at once."""
        # Type ids of single texts are all 0, which the model assumes when it is given none.
        with_types = pairs is not None and self.takes_token_types
        if self._backend is not None:
            inputs = texts if pairs is None else list(zip(texts, pairs, strict=True))
            return Encodings(self._backend.encode_batch_fast(inputs), with_types)
        encoded = self._tokenizer(texts, pairs, truncation=True, max_length=self.max_length)
        ids = encoded["input_ids"]
        cut = [i for i, row in enumerate(ids) if len(row) == self.max_length]
        full_lengths = (
            self._tokenizer(
                [texts[i] for i in cut], None if pairs is None else [pairs[i] for i in cut]
            )["input_ids"]
            if cut
            else []
        )
        tokens = Tokens.from_rows(ids, encoded["token_type_ids"] if with_types else None)
        return tokens, sum(1 for i in full_lengths if len(i) > self.max_length)

    def convert(self, encoded) -> tuple[Tokens, int]:
        """(tokens, number of truncated texts) of what ``encode`` gave, or of a chunk flattened
        in the tokenizer's process (``Flat``). Reading the encodings and letting them go holds
        the GIL: the engine does it in its main thread while the tokenizer's thread encodes the
        next chunk."""
        if isinstance(encoded, Encodings):
            encodings, with_types = encoded.encodings, encoded.with_types
            encoded = Flat(*flat_encodings(encodings, with_types, self.max_length, int64_array))
        if not isinstance(encoded, Flat):
            return encoded

        def array(values):
            return None if values is None else np.frombuffer(values, dtype=np.int64)

        lengths = array(encoded.lengths)
        tokens = Tokens(
            np.arange(len(lengths)),
            array(encoded.ids),
            np.cumsum(lengths) - lengths,
            lengths,
            array(encoded.types),
        )
        return tokens, encoded.n_truncated

    def process(self) -> TokenizerProcess | None:
        """A process that tokenizes as this does (``tokenizer_process``), or None for a
        tokenizer without a Rust backend."""
        if self._backend is None:
            return None
        return TokenizerProcess(self._backend.to_str(), self.max_length, self.takes_token_types)

    def converted(self, positions: np.ndarray, encoded, timing: dict) -> tuple[Tokens, int]:
        """``convert`` for a chunk of texts at input ``positions``, its seconds added to
        ``timing["convert_s"]`` (the encoding's are in ``tokenize_s``, which another thread may
        be adding to)."""
        began = time.perf_counter()
        tokens, n_truncated = self.convert(encoded)
        tokens.positions = positions
        timing["convert_s"] = timing.get("convert_s", 0.0) + time.perf_counter() - began
        return tokens, n_truncated


@dataclass
class Encodings:
    """A chunk's encodings from the Rust tokenizer, not yet read (``ChunkTokenizer.convert``)."""

    encodings: list
    with_types: bool


@dataclass
class Flat:
    """A chunk's tokens as ``flat_encodings`` gives them (int64 arrays or their bytes)."""

    lengths: object
    ids: object
    types: object
    n_truncated: int


def chunk_positions(texts: list[str], pairs: list[str] | None):
    """The input positions of each chunk of texts, in the order the engine tokenizes them."""
    # Longest texts first (by characters, a cheap proxy for tokens): the largest batches run
    # first, so an out-of-memory shows at once, and chunks arrive roughly length-sorted.
    characters = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    if pairs is not None:
        characters += np.fromiter(map(len, pairs), dtype=np.int64, count=len(pairs))
    order = np.argsort(-characters, kind="stable")
    start, size = 0, FIRST_CHUNK_TEXTS
    while start < len(order):
        yield order[start : start + size]
        start, size = start + size, min(2 * size, CHUNK_TEXTS)


def chunk_inputs(positions: np.ndarray, texts: list[str], pairs: list[str] | None):
    """A chunk's (texts, pairs or None), in its order."""
    return [texts[i] for i in positions], None if pairs is None else [pairs[i] for i in positions]


def encoded_chunks(tokenize: ChunkTokenizer, texts: list[str], pairs: list[str] | None, timing):
    """(input positions, encoded) of each chunk of texts, in the order the engine tokenizes them
    (see ``ChunkTokenizer.encode``); adds the seconds spent to ``timing["tokenize_s"]``."""
    for positions in chunk_positions(texts, pairs):
        began = time.perf_counter()
        encoded = tokenize.encode(*chunk_inputs(positions, texts, pairs))
        timing["tokenize_s"] += time.perf_counter() - began
        yield positions, encoded


def process_chunks(process: TokenizerProcess, texts: list[str], pairs: list[str] | None, timing):
    """``encoded_chunks``, tokenized by ``process``: (input positions, ``Flat``) of each chunk;
    adds the process's seconds to ``timing["tokenize_s"]``."""
    plan = list(chunk_positions(texts, pairs))
    inputs = (chunk_inputs(positions, texts, pairs) for positions in plan)
    # strict: the process's end of the run is read too, so the next run starts clean.
    for positions, answer in zip(plan, process.chunks(inputs), strict=True):
        lengths, ids, types, n_truncated, seconds = answer
        timing["tokenize_s"] += seconds
        yield positions, Flat(lengths, ids, types, n_truncated)


def tokenized_chunks(
    tokenize: ChunkTokenizer, texts: list[str], pairs: list[str] | None, timing: dict
):
    """(tokens, number truncated) of each chunk of texts, in the order the engine tokenizes
    them, with the texts' input positions, in one thread; adds the seconds spent to
    ``timing["tokenize_s"]`` and ``timing["convert_s"]``."""
    for positions, encoded in encoded_chunks(tokenize, texts, pairs, timing):
        yield tokenize.converted(positions, encoded, timing)


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
    return Tokens.from_rows(ids).padded(pad_id)


def int64_array(values, count: int) -> np.ndarray:
    return np.fromiter(values, dtype=np.int64, count=count)


def parameter_dtype(model) -> torch.dtype | None:
    """The dtype of the model's first parameter; None for a model without any."""
    try:
        return next(iter(model.parameters())).dtype
    except (AttributeError, StopIteration, TypeError):
        return None


def model_inputs(model) -> set[str]:
    """The keyword inputs a model's forward takes (a model that is no nn.Module, such as a
    trace, lists its own: ``input_names``)."""
    names = getattr(model, "input_names", None)
    return set(names) if names is not None else set(inspect.signature(model.forward).parameters)


# True while the engine runs a model on a batch that it padded: the engine passes an attention
# mask for such batches only (see padding_answered).
_PADDED_BATCH: ContextVar[bool] = ContextVar("glueperf_padded_batch", default=False)


@contextmanager
def padding_answered(padded: bool):
    """Runs a forward pass knowing whether its batch is padded.

    transformers' SDPA mask code asks whether any token of a 2D mask is padded
    (``padding_mask.all()`` in an ``if``) to pass no mask where none is needed: a read of the
    device, which makes the host wait for every kernel queued before it, once per padded batch.
    The engine knows the answer: it passes a mask only when a row of the batch is padded (``pad``
    gives None otherwise), and then transformers' check always finds padding and builds the mask.
    The mask function installed by ``answer_padding_checks`` builds that same mask, with the same
    code, without asking.
    """
    token = _PADDED_BATCH.set(padded)
    try:
        yield
    finally:
        _PADDED_BATCH.reset(token)


def _without_padding_checks(mask_function):
    """transformers' SDPA mask function, which skips its checks for padding inside
    ``padding_answered(True)`` (its results are then what the checks lead to: see there)."""

    def mask(*args, **kwargs):
        if _PADDED_BATCH.get() and kwargs.get("attention_mask") is not None:
            kwargs["allow_is_causal_skip"] = kwargs["allow_is_bidirectional_skip"] = False
        return mask_function(*args, **kwargs)

    mask.answers_padding = True
    mask.__wrapped__ = mask_function
    return mask


def answer_padding_checks() -> bool:
    """Install ``_without_padding_checks`` as transformers' SDPA mask function, once, where
    transformers' mask code is in use (a traced model needs none: its trace built the mask
    unconditionally). Outside ``padding_answered(True)`` it is transformers' own. Returns whether
    it is installed."""
    masking = sys.modules.get("transformers.masking_utils")
    interface = getattr(masking, "AttentionMaskInterface", None)
    functions = getattr(masking, "ALL_MASK_ATTENTION_FUNCTIONS", None)
    if interface is None or functions is None or "sdpa" not in functions:
        return False
    current = functions["sdpa"]
    if not getattr(current, "answers_padding", False):
        interface.register("sdpa", _without_padding_checks(current))
    return getattr(functions["sdpa"], "answers_padding", False)


def no_attention_plans_per_shape(device) -> None:
    """On CUDA, leave SDPA's cuDNN backend out (flash and memory-efficient attention remain).
    It builds an execution plan for every new shape: in bfloat16 and float16 (the only dtypes it
    takes), an unpadded batch or single request (no mask, which it accepts) of a length not seen
    before stalled about 40 ms on an H200 with torch 2.11 (BENCHMARKS.md, session 6): p90 of
    single requests 38 ms against p50 2.4 ms, SST-2 train 3.2 s against 0.9 s in float32, where
    the traced model, whose trace always passes a mask, showed neither."""
    if torch.device(device).type == "cuda":
        torch.backends.cuda.enable_cudnn_sdp(False)


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


@contextmanager
def _killed_on_error(process: TokenizerProcess | None):
    """A run that fails leaves its tokenizer's process mid-run: it is killed (and replaced by
    the next run), never read from again."""
    try:
        yield
    except BaseException:
        if process is not None:
            process.kill()
        raise


def tokenizes_apart(overlap: bool, dtype: torch.dtype) -> bool:
    """Whether an engine tokenizes its runs of PROCESS_TEXTS texts or more in a process of its
    own: one that overlaps (on a GPU) a model in 16-bit floats."""
    return overlap and dtype in SIXTEEN_BITS


def start_tokenizer_early(device: str, dtype: str, n_texts: int) -> None:
    """Before a model in ``dtype`` (a torch dtype's name) is loaded to classify ``n_texts`` texts
    on ``device``: start the process that the engine's run will tokenize them in, if it will use
    one (``tokenizer_process.start_spare``), so that its start overlaps the load. One that
    cannot start is left to the engine, which then tokenizes in this process."""
    on_gpu = torch.device(device).type == "cuda"
    if n_texts >= PROCESS_TEXTS and tokenizes_apart(on_gpu, getattr(torch, dtype)):
        try:
            start_spare()
        except OSError as error:
            log.warning("the tokenizer's process could not start early: %s", error)


class Engine:
    """Classifies texts with a sequence-classification model; see the module docstring. Its
    tokenizer's process, where a run started one, lives until ``close``."""

    process_texts = PROCESS_TEXTS

    def __init__(
        self,
        model,
        tokenizer,
        device,
        batching: Batching,
        overlap: bool | None = None,
    ):
        self.model = model
        # One output: a regression head, whose raw score is the prediction.
        self.regression = model.config.num_labels == 1
        self.device = torch.device(device)
        self.batching = batching
        self.tokenize = ChunkTokenizer(tokenizer, batching.max_length)
        # A tokenizer may give token types that its model takes none of (a BERT vocabulary on a
        # DistilBERT): pass what the model accepts, as transformers' own loops would fail to.
        self.tokenize.takes_token_types &= "token_type_ids" in model_inputs(model)
        self.overlap = self.device.type == "cuda" if overlap is None else overlap
        self._pin = self.device.type == "cuda"
        # Whether a large run is tokenized in a process of its own (see PROCESS_TEXTS).
        self.tokenizes_apart = tokenizes_apart(self.overlap, parameter_dtype(model))
        self._process: TokenizerProcess | None = None
        answer_padding_checks()
        no_attention_plans_per_shape(self.device)

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(array)
        if self._pin:
            tensor = tensor.pin_memory()
        return tensor.to(self.device, non_blocking=True)

    def _forward(self, batch: Tokens):
        matrix, mask = batch.padded(self.tokenize.pad_id)
        inputs = {"input_ids": self._to_device(matrix)}
        if mask is not None:
            inputs["attention_mask"] = self._to_device(mask)
        if batch.types is not None:
            inputs["token_type_ids"] = self._to_device(batch.padded(0, types=True)[0])
        with padding_answered(mask is not None):
            logits = self.model(**inputs).logits.float()
        if self.regression:
            return logits[:, 0], torch.full_like(logits[:, 0], float("nan")), matrix.size
        probabilities, predictions = torch.softmax(logits, dim=-1).max(dim=-1)
        return predictions, probabilities, matrix.size

    def forward_ids(self, rows: list[list[int]]) -> np.ndarray:
        """The predictions of one forward pass over texts tokenized already (token ids, a list
        per text, right-padded to the longest, with a mask where one is shorter): no tokenizer
        involved (a stand-in's warm-up)."""
        with torch.inference_mode():
            predictions, _, _ = self._forward(Tokens.from_rows(rows))
            return predictions.cpu().numpy()

    def run(
        self, texts: list[str], pairs: list[str] | None = None, progress: bool = False
    ) -> EngineResult:
        """Predictions for ``texts``, or for the pairs (``texts[i]``, ``pairs[i]``); with
        ``progress``, a progress bar on standard error."""
        n = len(texts)
        timing = {"tokenize_s": 0.0}
        process = self._tokenizer_process(n)
        if process is not None:
            chunks = process_chunks(process, texts, pairs, timing)
        else:
            chunks = encoded_chunks(self.tokenize, texts, pairs, timing)
        if self.overlap:
            chunks = _prefetch(chunks)

        result = EngineResult(
            predictions=np.empty(n, dtype=np.float32 if self.regression else np.int64),
            probabilities=np.empty(n, dtype=np.float32),
            token_counts=np.empty(n, dtype=np.int64),
            n_truncated=0,
            n_batches=0,
            batch_tokens=self.batching.batch_tokens,
            tokenize_s=0.0,
        )
        outputs = _DeviceOutputs()
        pending = no_tokens()
        chunks = iter(chunks)
        exhausted = False
        # Counts sentences handed to the device (it may still be working on the last ones).
        bar = tqdm(
            total=n, unit=" sentences", mininterval=1.0, disable=not progress, file=sys.stderr
        )
        with bar, torch.inference_mode(), _killed_on_error(process):
            while not exhausted or len(pending):
                chunk = next(chunks, None)
                exhausted = chunk is None
                if chunk is not None:
                    tokens, n_truncated = self.tokenize.converted(*chunk, timing)
                    result.n_truncated += n_truncated
                    pending = pending.add(tokens)
                    next_longest = tokens.lengths[-max(1, len(tokens) // TAIL_SHARE) :].max()
                by_length = np.argsort(-pending.lengths, kind="stable")
                result.token_counts[pending.positions] = pending.lengths
                sorted_lengths = pending.lengths[by_length]
                batches = plan_batches(
                    sorted_lengths, result.batch_tokens, self.batching.max_batch_size
                )
                keep = []
                if not exhausted:
                    # Hold back the last, partly filled batch, and the batches that the next
                    # chunk's sentences could join: fewer, fuller batches (SST-2 train: 79
                    # instead of 87, as many as planning all sentences at once gives).
                    while len(batches) > 1 and (
                        not keep or sorted_lengths[batches[-1][0]] <= next_longest
                    ):
                        keep.insert(0, batches.pop())
                for batch in batches:
                    self._run_batch(pending.take(by_length[batch]), result, outputs, bar)
                held = np.concatenate(keep) if keep else np.empty(0, dtype=np.int64)
                pending = pending.take(by_length[held])
            outputs.gather(result)
        result.tokenize_s = timing["tokenize_s"] + timing.get("convert_s", 0.0)
        return result

    def _tokenizer_process(self, n_texts: int) -> TokenizerProcess | None:
        """The process that tokenizes a run of ``n_texts`` texts, started on the first run that
        wants one (``PROCESS_TEXTS``: ``tokenizes_apart``) and kept for later runs; None:
        tokenized in this process. One that a failed run left behind is replaced; one that cannot
        be started (no interpreter to start it with) leaves the tokenizer in this process."""
        if not self.tokenizes_apart or n_texts < self.process_texts:
            return None
        if self._process is not None and self._process.process.poll() is not None:
            self.close()
        if self._process is None:
            try:
                self._process = self.tokenize.process()
            except OSError as error:
                log.warning("the tokenizer stays in this process: %s", error)
                self.tokenizes_apart = False
        return self._process

    def expect(self, n_texts: int) -> None:
        """Start what a run of ``n_texts`` texts will use (its tokenizer's process, if any), so
        that its start overlaps whatever comes before the run (an evaluation's warm-up)."""
        self._tokenizer_process(n_texts)

    def close(self) -> int:
        """End the tokenizer's process, if a run started one: its peak resident set size in
        bytes (the kernel's mark, read before it ends; what the evaluation's memory figure adds
        to its own), else 0."""
        if self._process is None:
            return 0
        from glueperf.measure import kernel_peak_rss_bytes

        peak = kernel_peak_rss_bytes(self._process.pid) or 0
        self._process.close()
        self._process = None
        return peak

    def _run_batch(self, batch: Tokens, result: EngineResult, outputs: _DeviceOutputs, bar):
        """Forward one batch (sorted longest first); on out-of-memory halve the budget and retry
        the batch in pieces. Batches planned before a back-off are split to the new budget."""
        size, longest = len(batch), int(batch.lengths[0])
        if size > 1 and size * longest > result.batch_tokens:
            plan = plan_batches(batch.lengths, result.batch_tokens, self.batching.max_batch_size)
            for piece in plan:
                self._run_batch(batch.take(piece), result, outputs, bar)
            return
        try:
            predictions, probabilities, padded = self._forward(batch)
        except torch.OutOfMemoryError as error:
            if size == 1:
                raise GlueperfError(
                    f"out of memory on a single sentence of {longest} tokens; lower "
                    "evaluation.max_length or use a device with more memory"
                ) from error
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            result.oom_retries += 1
            result.batch_tokens = max(1, min(result.batch_tokens, size * longest) // 2)
            log.warning(
                "out of memory on a batch of %d x %d tokens: token budget halved to %d, retrying",
                size,
                longest,
                result.batch_tokens,
            )
            self._run_batch(batch, result, outputs, bar)
            return
        bar.update(size)
        result.n_batches += 1
        result.padded_tokens += padded
        outputs.add(batch.positions, predictions, probabilities)


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
