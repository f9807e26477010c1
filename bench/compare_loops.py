"""Compare the evaluation engine with the notebook's loop and transformers.pipeline.

Runs, in one process, on the same model, tokenizer and texts:
  (a) the notebook's loop (glueperf.reference.notebook_loop)
  (b) transformers.pipeline("text-classification", batch_size=64)
  (c) the engine in float32      (d) the engine in bfloat16
and two floors on the same data: the tokenizer alone (``tokenizer(texts)``) and the GPU forward
passes alone on the engine's batches, already on the device. Prints a table per data file: median
seconds of --repeats runs, speed-up over (a) and (b), GPU peak MiB, and agreement with (a).

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

from glueperf.engine import Batching, Engine, pad, plan_batches  # noqa: E402
from glueperf.measure import cuda_synchronize, gpu_peaks_mb, reset_gpu_peaks  # noqa: E402
from glueperf.reference import notebook_loop, pipeline_loop  # noqa: E402
from glueperf.tasks import GLUE_TASKS, dataset_spec  # noqa: E402
from glueperf.validation import load_dataset  # noqa: E402

LOOPS = ("a", "b", "c", "c_traced", "d")
FLOORS = ("tokenizer", "forward", "forward_traced")
NAMES = {
    "a": "(a) notebook loop",
    "b": "(b) transformers.pipeline",
    "c": "(c) engine float32",
    "c_traced": "(c) engine, traced model",
    "d": "(d) engine bfloat16",
    "tokenizer": "floor: tokenizer alone",
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


def traced(model, tokenizer, device, directory: Path):
    """The model as the pipeline evaluates it: traced by rule prepare_model's code, loaded by
    an evaluation's (glueperf/prepared.py)."""
    from glueperf.prepared import load_prepared, prepare

    model.save_pretrained(directory / "model")
    tokenizer.save_pretrained(directory / "model")
    prepare(str(directory / "model"), "float32", device, directory / "prepared")
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
    model_bf16 = None
    batching = Batching(batch_tokens=args.batch_tokens, max_batch_size=args.max_batch_size)
    runs = {
        "a": lambda: notebook_loop(model, tokenizer, texts, labels, device, pairs=pairs),
        "b": lambda: pipeline_loop(model, tokenizer, texts, device, pairs=pairs),
        "c": lambda: Engine(model, tokenizer, device, batching).run(texts, pairs).predictions,
        "tokenizer": lambda: tokenizer(texts, pairs, truncation=True, max_length=512),
        "forward": forward_floor(model, tokenizer, texts, pairs, device, batching),
    }
    if not {"c_traced", "forward_traced"} <= set(args.skip):
        import tempfile

        with tempfile.TemporaryDirectory() as directory:
            traced_model, traced_tokenizer = traced(model, tokenizer, device, Path(directory))
        runs["c_traced"] = lambda: (
            Engine(traced_model, traced_tokenizer, device, batching).run(texts, pairs).predictions
        )
        runs["forward_traced"] = forward_floor(
            traced_model, tokenizer, texts, pairs, device, batching
        )
    if device.startswith("cuda") or args.bf16_on_cpu:
        import copy

        model_bf16 = copy.deepcopy(model).to(torch.bfloat16)
        runs["d"] = lambda: (
            Engine(model_bf16, tokenizer, device, batching).run(texts, pairs).predictions
        )
    # CUDA context, kernels, allocator: not what we time
    for warm in ("c", "c_traced", "d", "forward", "forward_traced"):
        if warm in runs:
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
    return {"data": data_path, "n_texts": len(texts), "kind": kind, "results": results}


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
    parser.add_argument("--json", help="write all figures to this file")
    args = parser.parse_args(argv)
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
    }
    print(json.dumps(environment))
    if args.json:
        Path(args.json).write_text(json.dumps({"environment": environment, "reports": reports}))


if __name__ == "__main__":
    main()
