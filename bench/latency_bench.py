"""Issue 21 on a GPU: glueperf's single-request latency against its floor and transformers'
pipeline, and the GPU energy of the offline pass, per dtype and per model kind.

    python bench/latency_bench.py --model MODEL_DIR --data sst2/validation.parquet \
        [--twin] [--dtypes float32 bfloat16 float16] [--kinds transformers traced] \
        [--requests 500] [--device cuda] [--json FILE]

For each dtype and each kind of model (the transformers model as glueperf.models loads it; the
model traced as the pipeline traced it until it dropped TorchScript, bench/torchscript.py), in one
process, on the same seeded sample of rows (glueperf.latency.sample_rows):
  glueperf    glueperf.latency.measure_latency: text in, class id on the host, one request at a
              time (tokenization and the copy to the device included): p50, p90, p99, max
  bare        the model's forward pass alone on each sampled sentence, tokenized beforehand and
              already on the device, the device synchronized after it: p50 (the floor)
  pipeline    transformers.pipeline("text-classification") called once per sentence, each call
              timed (transformers kind only): p50, p99; and "evaluate": one pipeline call over all
              the sampled sentences at batch size 1, its seconds / sentences, the latency that
              Hugging Face evaluate's evaluator reports
and the offline pass of the whole file (glueperf's engine, as an evaluation runs it) with its
GPU energy (glueperf.energy: joules, J per 1,000 rows, mean watts, passes, the counter's update
period). Targets (issue 21): glueperf p50 / bare p50 <= 1.5, glueperf p99 / p50 <= 2.
--twin evaluates the DistilBERT-base twin (random weights, --model's tokenizer; see
bench/compare_loops.py) instead of --model.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from glueperf.energy import open_meter  # noqa: E402
from glueperf.engine import Batching, Engine  # noqa: E402
from glueperf.latency import LatencySettings, measure_latency, summarize  # noqa: E402
from glueperf.measure import cuda_synchronize  # noqa: E402
from glueperf.models import DTYPES, load_model, token_limit  # noqa: E402
from glueperf.tasks import GLUE_TASKS, dataset_spec  # noqa: E402
from glueperf.validation import load_dataset  # noqa: E402
from reference import pipeline_inputs, text_classification  # noqa: E402
from torchscript import trace  # noqa: E402

KINDS = ("transformers", "traced")
TARGETS = {"p50 / bare": 1.5, "p99 / p50": 2.0}
WARMUP = 10


def load(model_dir: str, kind: str, dtype: str, device: str, scratch: Path):
    """(model, tokenizer) as an evaluation has them, or None where the model cannot be traced."""
    model, tokenizer, _ = load_model(model_dir, dtype, device)
    if kind == "transformers":
        return model, tokenizer
    try:
        return trace(model, tokenizer, device, scratch / f"traced-{dtype}"), tokenizer
    except Exception as error:  # an architecture TorchScript cannot trace
        print(f"tracing failed: {type(error).__name__}: {error}", flush=True)
        return None


def timed_each(run, inputs, device) -> list[float]:
    """Milliseconds of ``run(item)`` for each item, the device synchronized after each."""
    times = []
    for item in inputs:
        start = time.perf_counter()
        run(item)
        cuda_synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return times


def bare_forward(engine: Engine, sentences, pairs, device) -> list[float]:
    """Milliseconds of the forward pass alone on each sentence, tokenized and on the device."""
    inputs = []
    for i, text in enumerate(sentences):
        ids, types = engine.tokenize.one(text, None if pairs is None else pairs[i])
        tensors = {"input_ids": torch.tensor([ids], device=device)}
        if types is not None:
            tensors["token_type_ids"] = torch.tensor([types], device=device)
        inputs.append(tensors)
    with torch.inference_mode():
        timed_each(lambda tensors: engine.model(**tensors), inputs[:WARMUP], device)
        return timed_each(lambda tensors: engine.model(**tensors), inputs, device)


def pipeline_times(model, tokenizer, sentences, pairs, device) -> dict:
    """transformers.pipeline at batch size 1: each call timed; and one call over all of them
    (as Hugging Face evaluate times it: its seconds / sentences)."""
    classify = text_classification(model, tokenizer, device)
    inputs = pipeline_inputs(sentences, pairs)
    timed_each(lambda item: classify(item, truncation=True), inputs[:WARMUP], device)
    each = timed_each(lambda item: classify(item, truncation=True), inputs, device)
    start = time.perf_counter()
    classify(inputs, batch_size=1, truncation=True)
    cuda_synchronize(device)
    figures = summarize(each)
    return {
        "pipeline_p50_ms": figures["p50_ms"],
        "pipeline_p99_ms": figures["p99_ms"],
        "evaluate_mean_ms": (time.perf_counter() - start) * 1000 / len(inputs),
    }


def one_case(args, model_dir: str, kind: str, dtype: str, data, scratch: Path) -> dict | None:
    device = args.device
    loaded = load(model_dir, kind, dtype, device, scratch)
    if loaded is None:
        print(f"{kind} {dtype}: the model could not be traced (see the log above)", flush=True)
        return None
    model, tokenizer = loaded
    limit = token_limit(model, tokenizer, Batching.max_length)
    engine = Engine(model, tokenizer, device, Batching(max_length=min(Batching.max_length, limit)))
    engine.run(data.texts[:64], None if data.pairs is None else data.pairs[:64])  # warm-up
    passes_s = []

    def offline_pass():
        start = time.perf_counter()
        predictions = engine.run(data.texts, data.pairs).predictions
        cuda_synchronize(device)
        passes_s.append(time.perf_counter() - start)
        return predictions

    offline, energy = open_meter(device).measure(offline_pass, len(data.texts))
    settings = LatencySettings(
        requests=args.requests, max_seconds=1e9, warmup=WARMUP, seed=args.seed
    )
    latency = measure_latency(engine, data.texts, data.pairs, settings)
    rows = latency.rows.tolist()
    sentences = [data.texts[i] for i in rows]
    pairs = None if data.pairs is None else [data.pairs[i] for i in rows]
    bare = summarize(bare_forward(engine, sentences, pairs, device))
    case = {
        "kind": kind,
        "dtype": dtype,
        "requests": latency.requests,
        "p50_ms": latency.p50_ms,
        "p90_ms": latency.p90_ms,
        "p99_ms": latency.p99_ms,
        "max_ms": latency.max_ms,
        "latency_phase_s": latency.phase_s,
        "latency_note": latency.note,
        "bare_p50_ms": bare["p50_ms"],
        "agree_with_offline_pct": 100.0
        * float(np.mean(latency.predictions == offline[latency.rows])),
        "offline_s": passes_s[0],  # the first pass, as an evaluation times it
        "energy_j": energy.energy_j,
        "energy_j_per_1k": energy.energy_j_per_1k,
        "mean_power_w": energy.mean_power_w,
        "energy_passes": energy.passes,
        "energy_window_s": energy.window_s,
        "energy_update_ms": energy.update_s * 1000,
        "energy_note": energy.note,
    }
    if kind == "transformers" and not args.no_pipeline:
        case |= pipeline_times(model, tokenizer, sentences, pairs, device)
    case["p50 / bare"] = case["p50_ms"] / case["bare_p50_ms"]
    case["p99 / p50"] = case["p99_ms"] / case["p50_ms"]
    if "pipeline_p50_ms" in case:
        case["pipeline p50 / p50"] = case["pipeline_p50_ms"] / case["p50_ms"]
    return case


def twin_dir(tokenizer_dir: str, scratch: Path) -> str:
    """The DistilBERT-base twin saved as a model directory (as bench/save_twin.py saves it)."""
    from compare_loops import load as load_twin

    model, tokenizer = load_twin(tokenizer_dir, twin=True, device="cpu")
    model.save_pretrained(scratch / "twin")
    tokenizer.save_pretrained(scratch / "twin")
    return str(scratch / "twin")


def cell(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(cases: list[dict]) -> str:
    columns = [
        ("kind", "kind", 0),
        ("dtype", "dtype", 0),
        ("n", "requests", 0),
        ("p50 ms", "p50_ms", 3),
        ("p90 ms", "p90_ms", 3),
        ("p99 ms", "p99_ms", 3),
        ("max ms", "max_ms", 3),
        ("bare p50 ms", "bare_p50_ms", 3),
        ("p50/bare", "p50 / bare", 2),
        ("p99/p50", "p99 / p50", 2),
        ("pipeline p50 ms", "pipeline_p50_ms", 3),
        ("pipeline p99 ms", "pipeline_p99_ms", 3),
        ("evaluate ms", "evaluate_mean_ms", 3),
        ("agree %", "agree_with_offline_pct", 2),
        ("offline s", "offline_s", 3),
        ("J", "energy_j", 2),
        ("J/1k", "energy_j_per_1k", 3),
        ("W", "mean_power_w", 1),
        ("passes", "energy_passes", 0),
        ("window s", "energy_window_s", 3),
        ("update ms", "energy_update_ms", 1),
    ]
    lines = [
        "| " + " | ".join(name for name, _, _ in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for case in cases:
        lines.append("| " + " | ".join(cell(case.get(k), d) for _, k, d in columns) + " |")
    notes = {c["energy_note"] for c in cases if c["energy_note"]}
    notes |= {c["latency_note"] for c in cases if c["latency_note"]}
    lines += [f"note: {note}" for note in sorted(notes)]
    for name, target in TARGETS.items():
        for case in cases:
            ratio = case[name]
            met = "met" if ratio <= target else ("NO" if ratio == ratio else "no figure")
            lines.append(
                f"target {name} <= {target}: {case['kind']} {case['dtype']}: {cell(ratio)} {met}"
            )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model directory (or tokenizer for --twin)")
    parser.add_argument("--twin", action="store_true", help="DistilBERT-base twin, random weights")
    parser.add_argument("--data", required=True, help="a parquet file, e.g. SST-2 validation")
    parser.add_argument("--glue-task", default="sst2", choices=list(GLUE_TASKS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=DTYPES)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--requests", type=int, default=500, help="sampled rows timed, at most")
    parser.add_argument("--seed", type=int, default=LatencySettings.seed)
    parser.add_argument("--no-pipeline", action="store_true", help="leave transformers' out")
    parser.add_argument("--json", help="write all figures to this file")
    args = parser.parse_args(argv)
    spec = dataset_spec("bench", {"path": args.data, "glue_task": args.glue_task})
    data = load_dataset(args.data, spec)
    cases = []
    with tempfile.TemporaryDirectory() as directory:
        scratch = Path(directory)
        model_dir = twin_dir(args.model, scratch) if args.twin else args.model
        for dtype in args.dtypes:
            for kind in args.kinds:
                case = one_case(args, model_dir, kind, dtype, data, scratch)
                if case is not None:
                    cases.append(case)
                    print(f"{kind} {dtype}: p50 {case['p50_ms']:.3f} ms", flush=True)
                if args.device.startswith("cuda"):  # the case's model is gone: its memory too
                    torch.cuda.empty_cache()
    print(table(cases))
    environment = {
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "model": args.model + (" (DistilBERT-base twin)" if args.twin else ""),
        "data": args.data,
        "rows": len(data.texts),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(environment))
    if args.json:
        Path(args.json).write_text(json.dumps({"environment": environment, "cases": cases}))


if __name__ == "__main__":
    main()
