"""Compare the evaluation engine with the notebook's loop and transformers.pipeline.

Runs, in one process, on the same model, tokenizer and texts:
  (a) the notebook's loop (bench/reference.py: notebook_loop)
  (b) transformers.pipeline("text-classification", batch_size=64)
  (c) the engine in float32      (d) the engine in bfloat16
and floors on the same data: the tokenizer alone (``tokenizer(texts)``), the engine's own
tokenization alone (its chunks, one after another, in one thread), and the GPU forward passes
alone on the engine's batches, already on the device. An engine's run is timed as an
evaluation times its offline pass: the engine built beforehand, as the tokenization floor's
tokenizer is, with its tokenizer's process (where its run takes one) started while the model
loaded (``start_tokenizer_early``), here started and ready beforehand (``EngineRun``). Prints a
table per data file: median seconds of --repeats runs, speed-up over (a) and (b), GPU peak
MiB, and agreement with (a).
With --timeline (CUDA only), a second table says where the GPU waited in one more run of each
engine and forward floor: CUDA events around every forward pass, on the GPU's own clock; and how
often each run made the host wait for the device (torch.cuda.set_sync_debug_mode, one more run).

--variants adds engines to compare (each a row, timed as the others):
  checked   (c) and (d) with transformers' own padding check (a device read per padded batch),
            as the engine ran before it answered that check itself
  graphs    (d) with each batch padded to a bucket of shapes and replayed from a CUDA graph
            captured per bucket (CUDA only; bucket padding changes bfloat16 rounding: see flips);
            captured in the warm-up, which is not timed
  captured  the same, but every timed run captures its own graphs, a bucket's from its second
            batch on (its first runs eagerly, unpadded): what an evaluation would pay
  compile   (d) with the model compiled by torch.compile(dynamic=True); compiled in the warm-up
  before    (c) and (d) by another engine module, --engine-before FILE (e.g. the engine.py of an
            earlier commit), for a before/after on one machine
  threads   (c) and (d) tokenized in the engine's own threads, whatever the run's size (the
            engine tokenizes a run of PROCESS_TEXTS texts or more on a GPU in a process of its own)

    python bench/compare_loops.py --model ../shared/models/minilm-sst2 --twin \
        --data ../shared/data/glue/sst2/train.parquet --device cuda --repeats 3
    python bench/compare_loops.py --model ../shared/models/minilm-sst2 --twin --glue-task mnli \
        --data ../shared/data/glue/mnli/validation_matched.parquet --device cuda --repeats 3

--twin evaluates a DistilBERT-base twin (random weights, the --model directory's tokenizer):
same shapes and tokens as distilbert-base-uncased-finetuned-sst-2-english, so the same cost.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from glueperf.engine import (  # noqa: E402
    Batching,
    ChunkTokenizer,
    Engine,
    answer_padding_checks,
    model_inputs,
    pad,
    padding_answered,
    parameter_dtype,
    plan_batches,
    start_tokenizer_early,
    tokenized_chunks,
)
from glueperf.measure import cuda_synchronize, gpu_peaks_mb, reset_gpu_peaks  # noqa: E402
from glueperf.tasks import GLUE_TASKS, dataset_spec  # noqa: E402
from glueperf.tokenizer_process import spare_ready  # noqa: E402
from glueperf.validation import load_dataset  # noqa: E402
from reference import notebook_loop, pipeline_loop  # noqa: E402
from torchscript import trace  # noqa: E402

VARIANTS = ("checked", "graphs", "captured", "compile", "before", "threads")
LOOPS = ("a", "b", "c", "c_traced", "c_checked", "c_before", "c_threads", "d", "d_traced")
LOOPS += ("d_checked", "d_graphs", "d_captured", "d_compile", "d_before", "d_threads")
# Each traced engine and the engine on the transformers model it was traced from.
TRACED = {"c_traced": "c", "d_traced": "d"}
FLOORS = ("tokenizer", "tokenizer_engine", "forward", "forward_traced", "forward_bf16")
NAMES = {
    "a": "(a) notebook loop",
    "b": "(b) transformers.pipeline",
    "c": "(c) engine float32",
    "c_traced": "(c) engine, traced model",
    "d_traced": "(d) engine, traced model",
    "c_checked": "(c) transformers' check",
    "c_before": "(c) engine before",
    "c_threads": "(c) tokenized in threads",
    "d": "(d) engine bfloat16",
    "d_checked": "(d) transformers' check",
    "d_graphs": "(d) CUDA graphs",
    "d_captured": "(d) graphs captured in run",
    "d_compile": "(d) torch.compile",
    "d_before": "(d) engine before",
    "d_threads": "(d) tokenized in threads",
    "tokenizer": "floor: tokenizer alone",
    "tokenizer_engine": "floor: engine's tokenization",
    "forward": "floor: forward alone",
    "forward_traced": "floor: forward, traced model",
    "forward_bf16": "floor: forward bfloat16",
}


def load(model_dir: str, twin: bool, device: str, num_labels: int = 2):
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DistilBertConfig,
        DistilBertForSequenceClassification,
    )

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if twin:
        torch.manual_seed(0)
        config = DistilBertConfig(num_labels=num_labels, attn_implementation="sdpa")
        if num_labels == 2:
            config.id2label, config.label2id = (
                {0: "NEGATIVE", 1: "POSITIVE"},
                {"NEGATIVE": 0, "POSITIVE": 1},
            )
        model = DistilBertForSequenceClassification(config)
        # DistilBERT's own tokenizer gives no token type ids (its model takes none).
        tokenizer.model_input_names = ["input_ids", "attention_mask"]
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, dtype=torch.float32, attn_implementation="sdpa"
        )
    return model.eval().to(device), tokenizer


def timed(device, function):
    """(seconds, result, GPU peak allocated MiB) of one call, the device synchronized."""
    reset_gpu_peaks(device)
    cuda_synchronize(device)
    start = time.perf_counter()
    result = function()
    cuda_synchronize(device)
    return time.perf_counter() - start, result, gpu_peaks_mb(device)[0]


def forward_floor(model, tokenizer, texts, pairs, device, batching: Batching):
    """Seconds of the engine's forward passes alone, on batches already on the device."""
    encoded = tokenizer(texts, pairs, truncation=True, max_length=batching.max_length)
    ids, types = encoded["input_ids"], encoded.get("token_type_ids") if pairs else None
    lengths = np.array([len(i) for i in ids])
    order = np.argsort(-lengths, kind="stable")
    batches = []
    for batch in plan_batches(lengths[order], batching.batch_tokens, batching.max_batch_size):
        matrix, mask = pad([ids[i] for i in order[batch]], tokenizer.pad_token_id or 0)
        inputs = {"input_ids": torch.from_numpy(matrix).to(device)}
        if mask is not None:
            inputs["attention_mask"] = torch.from_numpy(mask).to(device)
        if types is not None:
            inputs["token_type_ids"] = torch.from_numpy(
                pad([types[i] for i in order[batch]], 0)[0]
            ).to(device)
        batches.append(inputs)

    answer_padding_checks()

    def run():
        # Padding answered as the engine answers it: no device read inside a pass.
        with torch.inference_mode():
            return [forward_answered(model, inputs) for inputs in batches]

    return run


def forward_answered(model, inputs):
    with padding_answered("attention_mask" in inputs):
        return model(**inputs).logits.argmax(-1)


class EventedModel:
    """A model with a CUDA event recorded before and after each forward pass (see timeline)."""

    def __init__(self, model):
        self._model = model
        self.events: list = []

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, **inputs):
        start, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
        start.record()
        output = self._model(**inputs)
        end.record()
        self.events.append((start, end))
        return output


class Checked:
    """A model whose padding transformers checks itself again (a device read per padded
    batch): the engine as it ran before it answered that check (variant ``checked``)."""

    def __init__(self, model):
        self._model = model
        self.input_names = model_inputs(model)

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, **inputs):
        with padding_answered(False):
            return self._model(**inputs)


class Compiled:
    """The model compiled by torch.compile with dynamic shapes (variant ``compile``)."""

    def __init__(self, model):
        self._model = model
        self.input_names = model_inputs(model)
        self._compiled = torch.compile(model, dynamic=True)

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, **inputs):
        return self._compiled(**inputs)


# Shape buckets of the CUDA graphs: rows up to the next of these, width to a multiple of 8.
GRAPH_ROWS = sorted({2**i for i in range(15)} | {3 * 2**i for i in range(14)})
GRAPH_WIDTH_STEP = 8


class Graphed:
    """The model replayed from CUDA graphs (variant ``graphs``, CUDA only): a batch is copied
    into the static inputs of its shape bucket (more rows and columns of padding, masked; a row
    of padding attends to its first token so that no row is all masked) and that bucket's graph,
    captured on first use in a memory pool shared by all, is replayed. Every bucket passes a
    mask, built without reading the device (``padding_answered``). ``capture=False``
    runs each bucket eagerly instead: the bucket padding alone, which the CPU can check. With
    ``from_use`` n, a bucket's first n - 1 batches run eagerly as they come (variant
    ``captured``: a bucket of one batch is not worth a capture); ``forget`` drops the graphs."""

    def __init__(
        self, model, pad_id: int, capture: bool = True, from_use: int = 1, warmups: int = 2
    ):
        self._model = model
        self.input_names = model_inputs(model)
        self.pad_id = pad_id
        self.capture = capture
        self.from_use = from_use
        self.warmups = warmups  # eager passes on a side stream before a capture
        self.forget()

    def forget(self) -> None:
        self.buckets: dict = {}  # (rows, width, token types or not) -> (replay, static inputs)
        self.uses: dict = {}  # the same keys -> batches seen
        # A new memory pool with the new graphs: capturing into the pool of graphs just dropped
        # trips an assertion of torch's caching allocator (torch 2.11).
        self.pool = torch.cuda.graph_pool_handle() if self.capture else None

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None):
        from types import SimpleNamespace

        rows, width = input_ids.shape
        bucket_rows = next((n for n in GRAPH_ROWS if n >= rows), rows)
        bucket_width = -(-width // GRAPH_WIDTH_STEP) * GRAPH_WIDTH_STEP
        key = (bucket_rows, bucket_width, token_type_ids is not None)
        self.uses[key] = self.uses.get(key, 0) + 1
        if key not in self.buckets and self.uses[key] < self.from_use:
            given = {"attention_mask": attention_mask, "token_type_ids": token_type_ids}
            return self._model(
                input_ids=input_ids, **{k: v for k, v in given.items() if v is not None}
            )
        if key not in self.buckets:
            self.buckets[key] = self._bucket(*key, input_ids.device)
        replay, static = self.buckets[key]
        static["input_ids"].fill_(self.pad_id)
        static["input_ids"][:rows, :width].copy_(input_ids)
        static["attention_mask"].zero_()
        static["attention_mask"][rows:, 0] = 1
        if attention_mask is None:
            static["attention_mask"][:rows, :width] = 1
        else:
            static["attention_mask"][:rows, :width].copy_(attention_mask)
        if token_type_ids is not None:
            static["token_type_ids"].zero_()
            static["token_type_ids"][:rows, :width].copy_(token_type_ids)
        return SimpleNamespace(logits=replay()[:rows].clone())

    def _bucket(self, rows, width, with_types, device):
        static = {
            "input_ids": torch.full((rows, width), self.pad_id, dtype=torch.int64, device=device),
            "attention_mask": torch.ones((rows, width), dtype=torch.int64, device=device),
        }
        if with_types:
            static["token_type_ids"] = torch.zeros((rows, width), dtype=torch.int64, device=device)
        if not self.capture:
            return (lambda: self._model(**static).logits), static
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        # Told the batch is padded, transformers builds the mask without reading it, which a
        # capture forbids (and some versions do not see the capture).
        with torch.cuda.stream(side), padding_answered(True):
            for _ in range(self.warmups):
                self._model(**static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool), padding_answered(True):
            logits = self._model(**static).logits

        def replay():
            graph.replay()
            return logits

        return replay, static


class CapturingEngine(Engine):
    """The engine on a ``Graphed`` model that captures its graphs anew in each run (variant
    ``captured``)."""

    def run(self, texts, pairs=None, progress=False):
        self.model.forget()
        return super().run(texts, pairs, progress)


class ThreadedEngine(Engine):
    """The engine with its tokenizer in its own threads for any run (variant ``threads``)."""

    process_texts = sys.maxsize


def engine_module(path: str):
    """An engine module from a file (variant ``before``), imported under a name of its own."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("engine_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def host_syncs(run) -> int:
    """How often one ``run()`` made the host wait for the device (CUDA's sync debug mode)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(warning.message) for warning in caught)


def timeline(run, evented: EventedModel) -> dict:
    """Where the GPU's time went in one ``run()`` that uses ``evented``: seconds between the
    run's start and end events, inside forward passes, before the first, between passes, and
    after the last (softmax, gathering), on the GPU's clock."""
    evented.events.clear()
    first, last = (torch.cuda.Event(enable_timing=True) for _ in range(2))
    torch.cuda.synchronize()
    first.record()
    run()
    last.record()
    torch.cuda.synchronize()
    events = evented.events

    def seconds(a, b):
        return a.elapsed_time(b) / 1000

    return {
        "total_s": seconds(first, last),
        "forward_s": sum(seconds(start, end) for start, end in events),
        "before_s": seconds(first, events[0][0]),
        "between_s": sum(seconds(a[1], b[0]) for a, b in zip(events, events[1:], strict=False)),
        "after_s": seconds(events[-1][1], last),
        "passes": len(events),
    }


def main_thread_split(run) -> dict:
    """One ``run()`` of an engine (glueperf.engine's), and where its main thread's time went:
    waiting for the tokenizer's thread or process (the next chunk not there yet), reading the
    encodings or the process's ids (``converted``), the forward passes as the host sees them
    (padding, copies, launching the kernels), and the rest (planning the batches); with the
    engine's tokenization seconds."""
    from glueperf import engine as module

    spent = {"waited_for_tokens_s": 0.0, "convert_s": 0.0, "forward_host_s": 0.0}

    def timed(function, key):
        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - began

        return wrapper

    prefetch, converted, forward = (
        module._prefetch,
        module.ChunkTokenizer.converted,
        module.Engine._forward,
    )

    def counted(iterator, depth=2):
        items, done = prefetch(iterator, depth), object()
        while True:
            began = time.perf_counter()
            item = next(items, done)
            spent["waited_for_tokens_s"] += time.perf_counter() - began
            if item is done:
                return
            yield item

    module._prefetch = counted
    module.ChunkTokenizer.converted = timed(converted, "convert_s")
    module.Engine._forward = timed(forward, "forward_host_s")
    try:
        began = time.perf_counter()
        result = run()
        spent["run_s"] = time.perf_counter() - began
    finally:
        module._prefetch = prefetch
        module.ChunkTokenizer.converted = converted
        module.Engine._forward = forward
    spent["rest_s"] = spent["run_s"] - sum(
        spent[key] for key in ("waited_for_tokens_s", "convert_s", "forward_host_s")
    )
    return {**spent, "tokenize_s": result.tokenize_s}


def main_loop_alone(run, tokenizer, texts, pairs, batching: Batching) -> float:
    """Seconds of one ``run()`` of an engine (glueperf.engine's) whose chunks were tokenized and
    read beforehand: its main thread's own work and the GPU's, with no tokenizer beside them
    (what the engine would take if its tokenization cost the main process nothing)."""
    from glueperf import engine as module

    tokenize = module.ChunkTokenizer(tokenizer, batching.max_length)
    timing = {"tokenize_s": 0.0}
    ready = [
        tokenize.converted(positions, encoded, timing)
        for positions, encoded in module.encoded_chunks(tokenize, texts, pairs, timing)
    ]
    encoded_chunks, converted = module.encoded_chunks, module.ChunkTokenizer.converted
    process_texts = module.Engine.process_texts
    module.encoded_chunks = lambda *args: iter([(None, chunk) for chunk in ready])
    module.ChunkTokenizer.converted = lambda self, positions, chunk, timing: chunk
    module.Engine.process_texts = sys.maxsize  # the chunks above, not a tokenizer's process
    try:
        began = time.perf_counter()
        run()
        return time.perf_counter() - began
    finally:
        module.encoded_chunks, module.ChunkTokenizer.converted = encoded_chunks, converted
        module.Engine.process_texts = process_texts


def engine_tokenization(tokenizer, texts, pairs, batching: Batching):
    """The engine's tokenization alone: its chunks in its order, one after another."""
    tokenize = ChunkTokenizer(tokenizer, batching.max_length)

    def run():
        chunks = tokenized_chunks(tokenize, texts, pairs, {"tokenize_s": 0})
        return sum(len(tokens.ids) for tokens, _ in chunks)

    return run


def variants(args, model, tokenizer, device) -> tuple[dict, dict]:
    """The engines to time, by row: (model, tokenizer, engine class); and the forward floors'
    models, by row."""
    import copy
    import tempfile

    engines = {"c": (model, tokenizer, Engine)}
    floor_models = {"forward": model}
    # The traces that the pipeline made until it dropped TorchScript (bench/torchscript.py).
    if not {"c_traced", "forward_traced"} <= set(args.skip):
        with tempfile.TemporaryDirectory() as directory:
            traced_model = trace(model, tokenizer, device, Path(directory))
        engines["c_traced"] = (traced_model, tokenizer, Engine)
        floor_models["forward_traced"] = traced_model
    bf16 = None
    if device.startswith("cuda") or args.bf16_on_cpu:
        bf16 = copy.deepcopy(model).to(torch.bfloat16)
        engines["d"] = (bf16, tokenizer, Engine)
        floor_models["forward_bf16"] = bf16
        if "d_traced" not in args.skip:
            with tempfile.TemporaryDirectory() as directory:
                traced_bf16 = trace(bf16, tokenizer, device, Path(directory))
            engines["d_traced"] = (traced_bf16, tokenizer, Engine)
    if "checked" in args.variants:
        engines["c_checked"] = (Checked(model), tokenizer, Engine)
        if bf16 is not None:
            engines["d_checked"] = (Checked(bf16), tokenizer, Engine)
    if "before" in args.variants:
        before = engine_module(args.engine_before).Engine
        engines["c_before"] = (model, tokenizer, before)
        if bf16 is not None:
            engines["d_before"] = (bf16, tokenizer, before)
    if "threads" in args.variants:
        engines["c_threads"] = (model, tokenizer, ThreadedEngine)
        if bf16 is not None:
            engines["d_threads"] = (bf16, tokenizer, ThreadedEngine)
    if "compile" in args.variants and bf16 is not None:
        engines["d_compile"] = (Compiled(copy.deepcopy(bf16)), tokenizer, Engine)
    pad_id = tokenizer.pad_token_id or 0
    if "graphs" in args.variants and bf16 is not None:
        engines["d_graphs"] = (Graphed(copy.deepcopy(bf16), pad_id), tokenizer, Engine)
    if "captured" in args.variants and bf16 is not None:
        graphed = Graphed(copy.deepcopy(bf16), pad_id, from_use=2, warmups=1)
        engines["d_captured"] = (graphed, tokenizer, CapturingEngine)
    return engines, floor_models


def benchmark(args, data_path: str) -> dict:
    spec = dataset_spec("bench", {"path": data_path, "glue_task": args.glue_task})
    data = load_dataset(data_path, spec)
    texts, pairs, labels = data.texts, data.pairs, data.labels
    if args.limit:
        texts, labels = texts[: args.limit], labels[: args.limit]
        pairs = pairs[: args.limit] if pairs else None
    device = args.device
    n_classes = len(data.label_names) if data.label_names else 2
    model, tokenizer = load(args.model, args.twin, device, n_classes)
    batching = Batching(batch_tokens=args.batch_tokens, max_batch_size=args.max_batch_size)
    engines, floor_models = variants(args, model, tokenizer, device)

    class EngineRun:
        """A new engine's run over the texts, timed as an evaluation times its offline pass:
        ``prepare`` builds the engine and starts what its run will use (``Engine.expect``), with
        its tokenizer's process, where the run takes one, started and imported beforehand, as
        the evaluation's model load leaves it (``start_tokenizer_early``); ``finish`` closes
        it. Called unprepared, it prepares itself (a diagnostic run)."""

        def __init__(self, used_model, used_tokenizer, engine_class=Engine):
            self.model, self.tokenizer, self.engine_class = used_model, used_tokenizer, engine_class
            self.engine, self.done = None, []

        def prepare(self) -> None:
            self.finish()
            dtype = parameter_dtype(self.model)
            if dtype is not None and self.engine_class.process_texts <= len(texts):
                start_tokenizer_early(device, str(dtype).removeprefix("torch."), len(texts))
                spare_ready(timeout=30.0)
            self.engine = self.engine_class(self.model, self.tokenizer, device, batching)
            self.engine.expect(len(texts))

        def __call__(self):
            if self.engine is None:
                self.prepare()
            engine, self.engine = self.engine, None
            self.done.append(engine)
            return engine.run(texts, pairs)

        def finish(self) -> None:
            """Close the engines that ran (their tokenizer's process, if any: a few ms)."""
            while self.done:
                self.done.pop().close()

    runs = {
        "a": lambda: notebook_loop(model, tokenizer, texts, labels, device, pairs=pairs),
        "b": lambda: pipeline_loop(model, tokenizer, texts, device, pairs=pairs),
        "tokenizer": lambda: tokenizer(texts, pairs, truncation=True, max_length=512),
        "tokenizer_engine": engine_tokenization(tokenizer, texts, pairs, batching),
    }
    engine_runs = {name: EngineRun(*engine) for name, engine in engines.items()}
    for name, run in engine_runs.items():
        runs[name] = lambda run=run: run().predictions
    for name, used_model in floor_models.items():
        runs[name] = forward_floor(used_model, tokenizer, texts, pairs, device, batching)
    # CUDA context, kernels, allocator, CUDA graphs' capture, compilation: not what we time
    for warm in (*engines, *floor_models):
        if warm in args.skip:
            continue
        try:
            runs[warm]()
        except Exception as error:  # a variant that cannot run here is left out, not the call
            if warm.split("_")[-1] not in VARIANTS:
                raise
            print(f"{NAMES[warm]} left out: {type(error).__name__}: {error}"[:500], flush=True)
            del runs[warm], engines[warm]
    results = {}
    for name in [n for n in (*LOOPS, *FLOORS) if n in runs and n not in args.skip]:
        seconds, peaks, predictions = [], [], None
        for _ in range(args.repeats):
            if name in engine_runs:
                engine_runs[name].prepare()
            elapsed, output, peak = timed(device, runs[name])
            seconds.append(elapsed)
            peaks.append(peak)
            predictions = output if name in LOOPS else None
        results[name] = {
            "median_s": statistics.median(seconds),
            "runs_s": seconds,
            "gpu_peak_mb": max(peaks),
            "predictions": predictions,
        }
    timelines = {}
    if args.timeline:
        for name, (used_model, used_tokenizer, engine_class) in engines.items():
            if name not in args.skip:
                evented = EventedModel(used_model)
                run = EngineRun(evented, used_tokenizer, engine_class)
                run.prepare()
                timelines[name] = timeline(run, evented)
                run.prepare()
                timelines[name].update(main_thread_split(run))
                if engine_class is Engine:
                    timelines[name]["main_loop_alone_s"] = main_loop_alone(
                        run, used_tokenizer, texts, pairs, batching
                    )
                timelines[name]["syncs"] = host_syncs(runs[name])
                run.finish()
        for name, used_model in floor_models.items():
            if name not in args.skip:
                evented = EventedModel(used_model)
                run = forward_floor(evented, tokenizer, texts, pairs, device, batching)
                timelines[name] = timeline(run, evented)
                timelines[name]["syncs"] = host_syncs(runs[name])
    identical = {}
    for name, own in TRACED.items():  # one more run of each: the very same outputs?
        if name in runs and own in runs and not {name, own} & set(args.skip):
            traced_run, own_run = (engine_runs[n]() for n in (name, own))
            identical[name] = {
                field: bool(np.array_equal(getattr(traced_run, field), getattr(own_run, field)))
                for field in ("predictions", "probabilities")
            }
    for run in engine_runs.values():
        run.finish()
    references = {ref: results.get(ref, {}).get("predictions") for ref in ("a", "c")}
    for entry in results.values():
        predictions = entry.pop("predictions")
        for ref, reference in references.items():
            entry[f"agree_with_{ref}_pct"] = (
                100.0 * float(np.mean(predictions == reference))
                if predictions is not None and reference is not None
                else None
            )
        if predictions is not None and (labels != -1).any():
            scored = labels != -1
            entry["accuracy_pct"] = 100.0 * float(np.mean(predictions[scored] == labels[scored]))
    kind = "pairs" if pairs else "texts"
    return {
        "data": data_path,
        "n_texts": len(texts),
        "kind": kind,
        "results": results,
        "timelines": timelines,
        "identical": identical,
    }


def table(report: dict) -> str:
    results = report["results"]
    base_a = results.get("a", {}).get("median_s")
    base_b = results.get("b", {}).get("median_s")
    lines = [
        f"{report['data']}: {report['n_texts']} {report.get('kind', 'texts')}",
        f"| {'loop':28} | median s | x vs (a) | x vs (b) | GPU peak MiB | agree (a) % "
        "| agree (c) % | acc % |",
        f"|{'-' * 30}|---------:|---------:|---------:|-------------:|------------:|"
        "------------:|------:|",
    ]
    for name, entry in results.items():

        def ratio(base, entry=entry):
            return f"{base / entry['median_s']:8.1f}" if base else f"{'':8}"

        def pct(key, width, entry=entry):
            value = entry.get(key)
            return f"{'' if value is None else f'{value:.3f}':>{width}}"

        lines.append(
            f"| {NAMES[name]:28} | {entry['median_s']:8.3f} | {ratio(base_a)} | {ratio(base_b)} "
            f"| {entry['gpu_peak_mb']:12.0f} | {pct('agree_with_a_pct', 11)} "
            f"| {pct('agree_with_c_pct', 11)} | {pct('accuracy_pct', 5)[:5]:>5} |"
        )
    for name, same in report.get("identical", {}).items():
        lines.append(
            f"{NAMES[name]}: predictions bitwise equal to {NAMES[TRACED[name]]}'s: "
            f"{same['predictions']}, probabilities: {same['probabilities']}"
        )
    if report.get("timelines"):
        lines += [
            "",
            "GPU timeline of one more run, seconds on the GPU's clock; then, in a run after it,"
            " an engine's main thread: waiting for its tokenizer's thread, reading encodings,"
            " forward passes as the host sees them, the rest; its tokenization; and a run of its"
            " main loop alone, its chunks tokenized and read beforehand:",
            "| loop                         | total | in forward | before first | between "
            "| after last | passes | host waits | run | waited | convert | forward host | rest "
            "| tokenize | main loop alone |",
            f"|{'-' * 30}|------:|-----------:|-------------:|--------:|-----------:|-------:|"
            "-----------:|----:|-------:|--------:|-------------:|-----:|---------:|"
            "----------------:|",
        ]

        def seconds(value, width):
            return f"{'' if value is None else f'{value:.3f}':>{width}}"

        for name, t in report["timelines"].items():
            lines.append(
                f"| {NAMES[name]:28} | {t['total_s']:5.3f} | {t['forward_s']:10.3f} "
                f"| {t['before_s']:12.3f} | {t['between_s']:7.3f} | {t['after_s']:10.3f} "
                f"| {t['passes']:6d} | {t.get('syncs', -1):10d} | {seconds(t.get('run_s'), 3)} "
                f"| {seconds(t.get('waited_for_tokens_s'), 6)} "
                f"| {seconds(t.get('convert_s'), 7)} | {seconds(t.get('forward_host_s'), 12)} "
                f"| {seconds(t.get('rest_s'), 4)} | {seconds(t.get('tokenize_s'), 8)} "
                f"| {seconds(t.get('main_loop_alone_s'), 16)} |"
            )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model directory (or tokenizer for --twin)")
    parser.add_argument("--twin", action="store_true", help="DistilBERT-base twin, random weights")
    parser.add_argument("--data", nargs="+", required=True, help="parquet files")
    parser.add_argument(
        "--glue-task",
        default="sst2",
        choices=list(GLUE_TASKS),
        help="the files' GLUE task: its text columns (pairs for mnli, mrpc...) and labels",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="first N texts only (smoke tests)")
    parser.add_argument("--batch-tokens", type=int, default=Batching.batch_tokens)
    parser.add_argument("--max-batch-size", type=int, default=Batching.max_batch_size)
    parser.add_argument("--skip", nargs="*", default=[], help="loops to leave out, e.g. a b")
    parser.add_argument("--bf16-on-cpu", action="store_true", help="run (d) on CPU too")
    parser.add_argument("--timeline", action="store_true", help="where the GPU waited (CUDA)")
    parser.add_argument(
        "--variants", nargs="*", default=[], choices=VARIANTS, help="more engines: see above"
    )
    parser.add_argument("--engine-before", help="engine.py to time as variant 'before'")
    parser.add_argument(
        "--switch-interval",
        type=float,
        help="sys.setswitchinterval for the whole run, seconds (Python's default: 0.005)",
    )
    parser.add_argument("--json", help="write all figures to this file")
    args = parser.parse_args(argv)
    if args.timeline and not args.device.startswith("cuda"):
        parser.error("--timeline reads CUDA events: it needs --device cuda")
    if "graphs" in args.variants and not args.device.startswith("cuda"):
        parser.error("--variants graphs replays CUDA graphs: it needs --device cuda")
    if "before" in args.variants and not args.engine_before:
        parser.error("--variants before needs --engine-before FILE")
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    reports = []
    for data in args.data:
        report = benchmark(args, data)
        print(table(report), flush=True)
        reports.append(report)
    environment = {
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "model": args.model + (" (DistilBERT-base twin)" if args.twin else ""),
        "batch_tokens": args.batch_tokens,
        "max_batch_size": args.max_batch_size,
        "switch_interval_s": sys.getswitchinterval(),
    }
    print(json.dumps(environment))
    if args.json:
        Path(args.json).write_text(json.dumps({"environment": environment, "reports": reports}))


if __name__ == "__main__":
    main()
