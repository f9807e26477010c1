"""Compare the evaluation engine with the notebook's loop and transformers.pipeline.

Runs, in one process, on the same model, tokenizer and texts:
  (a) the notebook's loop (bench/reference.py: notebook_loop)
  (b) transformers.pipeline("text-classification", batch_size=64)
  (c) the engine in float32      (d) the engine in bfloat16
and floors on the same data: the tokenizer alone (``tokenizer(texts)``), the engine's own
tokenization alone (its chunks, one after another, in one thread), and the GPU forward passes
alone on the engine's batches, already on the device. Prints a table per data file: median
seconds of --repeats runs, speed-up over (a) and (b), GPU peak MiB, and agreement with (a).
With --timeline (CUDA only), a second table says where the GPU waited in one more run of each
engine and forward floor: CUDA events around every forward pass, on the GPU's own clock.

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
    pad,
    plan_batches,
    tokenized_chunks,
)
from glueperf.measure import cuda_synchronize, gpu_peaks_mb, reset_gpu_peaks  # noqa: E402
from glueperf.tasks import GLUE_TASKS, dataset_spec  # noqa: E402
from glueperf.validation import load_dataset  # noqa: E402
from reference import notebook_loop, pipeline_loop  # noqa: E402

LOOPS = ("a", "b", "c", "c_traced", "d")
FLOORS = ("tokenizer", "tokenizer_engine", "forward", "forward_traced")
NAMES = {
    "a": "(a) notebook loop",
    "b": "(b) transformers.pipeline",
    "c": "(c) engine float32",
    "c_traced": "(c) engine, traced model",
    "d": "(d) engine bfloat16",
    "tokenizer": "floor: tokenizer alone",
    "tokenizer_engine": "floor: engine's tokenization",
    "forward": "floor: forward alone",
    "forward_traced": "floor: forward, traced model",
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

    def run():
        with torch.inference_mode():
            return [model(**inputs).logits.argmax(-1) for inputs in batches]

    return run


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


def engine_tokenization(tokenizer, texts, pairs, batching: Batching):
    """The engine's tokenization alone: its chunks in its order, one after another."""
    tokenize = ChunkTokenizer(tokenizer, batching.max_length)

    def run():
        return sum(
            len(ids) for _, ids, _, _ in tokenized_chunks(tokenize, texts, pairs, {"tokenize_s": 0})
        )

    return run


def traced(model, tokenizer, device, directory: Path):
    """The model as the pipeline evaluates it: traced by rule prepare_model's code, loaded by
    an evaluation's (glueperf/prepared.py)."""
    from glueperf.prepared import load_prepared, load_source, trace_source

    model.save_pretrained(directory / "model")
    tokenizer.save_pretrained(directory / "model")
    trace_source(load_source(str(directory / "model"), "float32"), device, directory / "prepared")
    loaded = load_prepared(directory / "prepared", "float32", device)
    if loaded is None:
        raise SystemExit("the model could not be traced: see the log above")
    return loaded[:2]


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
    # The engines (model, tokenizer) and the forward floors' models, by row.
    engines = {"c": (model, tokenizer)}
    floor_models = {"forward": model}
    if not {"c_traced", "forward_traced"} <= set(args.skip):
        import tempfile

        with tempfile.TemporaryDirectory() as directory:
            traced_model, traced_tokenizer = traced(model, tokenizer, device, Path(directory))
        engines["c_traced"] = (traced_model, traced_tokenizer)
        floor_models["forward_traced"] = traced_model
    if device.startswith("cuda") or args.bf16_on_cpu:
        import copy

        engines["d"] = (copy.deepcopy(model).to(torch.bfloat16), tokenizer)

    def engine_run(used_model, used_tokenizer):
        return lambda: Engine(used_model, used_tokenizer, device, batching).run(texts, pairs)

    runs = {
        "a": lambda: notebook_loop(model, tokenizer, texts, labels, device, pairs=pairs),
        "b": lambda: pipeline_loop(model, tokenizer, texts, device, pairs=pairs),
        "tokenizer": lambda: tokenizer(texts, pairs, truncation=True, max_length=512),
        "tokenizer_engine": engine_tokenization(tokenizer, texts, pairs, batching),
    }
    for name, (used_model, used_tokenizer) in engines.items():
        run = engine_run(used_model, used_tokenizer)
        runs[name] = lambda run=run: run().predictions
    for name, used_model in floor_models.items():
        runs[name] = forward_floor(used_model, tokenizer, texts, pairs, device, batching)
    # CUDA context, kernels, allocator: not what we time
    for warm in ("c", "c_traced", "d", "forward", "forward_traced"):
        if warm in runs and warm not in args.skip:
            runs[warm]()
    results = {}
    for name in [n for n in (*LOOPS, *FLOORS) if n in runs and n not in args.skip]:
        seconds, peaks, predictions = [], [], None
        for _ in range(args.repeats):
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
        for name, (used_model, used_tokenizer) in engines.items():
            if name not in args.skip:
                evented = EventedModel(used_model)
                timelines[name] = timeline(engine_run(evented, used_tokenizer), evented)
        for name, used_model in floor_models.items():
            if name not in args.skip:
                evented = EventedModel(used_model)
                run = forward_floor(evented, tokenizer, texts, pairs, device, batching)
                timelines[name] = timeline(run, evented)
    reference = results.get("a", {}).get("predictions")
    for entry in results.values():
        predictions = entry.pop("predictions")
        entry["agree_with_a_pct"] = (
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
    }


def table(report: dict) -> str:
    results = report["results"]
    base_a = results.get("a", {}).get("median_s")
    base_b = results.get("b", {}).get("median_s")
    lines = [
        f"{report['data']}: {report['n_texts']} {report.get('kind', 'texts')}",
        f"| {'loop':28} | median s | x vs (a) | x vs (b) | GPU peak MiB | agree (a) % | acc % |",
        f"|{'-' * 30}|---------:|---------:|---------:|-------------:|------------:|------:|",
    ]
    for name, entry in results.items():

        def ratio(base, entry=entry):
            return f"{base / entry['median_s']:8.1f}" if base else f"{'':8}"

        agree = entry.get("agree_with_a_pct")
        accuracy = entry.get("accuracy_pct")
        lines.append(
            f"| {NAMES[name]:28} | {entry['median_s']:8.3f} | {ratio(base_a)} | {ratio(base_b)} "
            f"| {entry['gpu_peak_mb']:12.0f} | {'' if agree is None else f'{agree:11.3f}':>11} "
            f"| {'' if accuracy is None else f'{accuracy:5.2f}':>5} |"
        )
    if report.get("timelines"):
        lines += [
            "",
            "GPU timeline of one more run, seconds on the GPU's clock:",
            "| loop                         | total | in forward | before first | between "
            "| after last | passes |",
            f"|{'-' * 30}|------:|-----------:|-------------:|--------:|-----------:|-------:|",
        ]
        for name, t in report["timelines"].items():
            lines.append(
                f"| {NAMES[name]:28} | {t['total_s']:5.3f} | {t['forward_s']:10.3f} "
                f"| {t['before_s']:12.3f} | {t['between_s']:7.3f} | {t['after_s']:10.3f} "
                f"| {t['passes']:6d} |"
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
        "--switch-interval",
        type=float,
        help="sys.setswitchinterval for the whole run, seconds (Python's default: 0.005)",
    )
    parser.add_argument("--json", help="write all figures to this file")
    args = parser.parse_args(argv)
    if args.timeline and not args.device.startswith("cuda"):
        parser.error("--timeline reads CUDA events: it needs --device cuda")
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
