"""An evaluation's model loading, as a child of the fork server does it: the transformers model
against its TorchScript trace (BENCHMARKS.md, session 6: the trace's last advantage).

    python bench/load_times.py MODEL_DIR [--device cuda] [--dtype float32] [--repeats 5]

This process imports what the fork server imports (glueperf.infra.forkserver.PRELOAD and the
model's architecture module, as ``server_imports`` asks), without starting CUDA; the model is
traced once, in a child process of its own. Then each repeat forks a child per way, which
starts the device (as ``evaluate`` does after the claim) and loads the model:
  transformers  ``load_on_cpu`` (what an evaluation on a GPU does before it claims the GPU),
                then ``.to(device)`` (after the claim); on the CPU ``load_model`` after the claim
  torchscript   ``torch.jit.load`` of the trace onto the device (what rule prepare_model's
                traces cost an evaluation, the tracing itself not counted)
and runs one forward pass of the probe sentences (the first call's set-up). Prints the median
seconds of each step, and writes them with --json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from importlib import import_module
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "bench"))


def trace_in_child(model_dir: str, dtype: str, device: str, directory: Path) -> None:
    """The trace made in a process of its own (this one must not start CUDA before forking)."""
    child = os.fork()
    if child == 0:
        status = 1
        try:
            import torchscript
            from glueperf.models import load_model

            model, tokenizer, _ = load_model(model_dir, dtype, device)
            torchscript.trace(model, tokenizer, device, directory)
            status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(child, 0)
    if status:
        raise SystemExit("tracing failed: see above")


def one_load(way: str, model_dir: str, dtype: str, device: str, directory: Path) -> dict:
    """In a forked child: seconds of each step of one way of loading."""
    import torch

    import torchscript
    from glueperf.evaluation import start_device
    from glueperf.measure import cuda_synchronize
    from glueperf.models import load_model, load_on_cpu

    seconds = {}
    loaded = None
    if way == "transformers" and device != "cpu":
        loaded = load_on_cpu(model_dir, dtype)
        seconds["before_claim_s"] = loaded.load_s
    seconds["device_start_s"] = start_device(device)
    started = time.perf_counter()
    if loaded is not None:
        model = loaded.to(device)[0]
    elif way == "transformers":
        model = load_model(model_dir, dtype, device)[0]
    else:  # the trace, and the tokenizer from its tokenizer.json, as an evaluation loaded them
        from tokenizers import Tokenizer
        from transformers import AutoConfig

        Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
        model = torchscript.load(directory, AutoConfig.from_pretrained(model_dir), device)
    cuda_synchronize(device)
    seconds["load_s"] = time.perf_counter() - started
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    inputs = tokenizer(torchscript.PROBE_TEXTS, padding=True, return_tensors="pt")
    names = [name for name in ("input_ids", "attention_mask") if name in inputs]
    started = time.perf_counter()
    with torch.inference_mode():
        model(**{name: inputs[name].to(device) for name in names})
    cuda_synchronize(device)
    seconds["first_call_s"] = time.perf_counter() - started
    return seconds


def forked(function, *args) -> dict:
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        status = 1
        try:
            os.write(write, json.dumps(function(*args)).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read) as stream:
        text = stream.read()
    os.waitpid(child, 0)
    return json.loads(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    from glueperf.infra.forkserver import PRELOAD
    from glueperf.models import modeling_module

    started = time.perf_counter()
    for name in (*PRELOAD, modeling_module(args.model)):
        if name:
            import_module(name)
    print(f"the fork server's imports: {time.perf_counter() - started:.2f} s", flush=True)
    directory = Path(tempfile.mkdtemp())
    started = time.perf_counter()
    trace_in_child(args.model, args.dtype, args.device, directory)
    print(f"traced (in a child of its own) in {time.perf_counter() - started:.2f} s", flush=True)
    runs = {"transformers": [], "torchscript": []}
    for _ in range(args.repeats):  # alternated, each in a fresh child
        for way, found in runs.items():
            found.append(forked(one_load, way, args.model, args.dtype, args.device, directory))
    medians = {
        way: {step: statistics.median(run[step] for run in found) for step in found[0]}
        for way, found in runs.items()
    }
    print(f"{args.model}, {args.dtype} on {args.device}, median of {args.repeats} children:")
    for way, steps in medians.items():
        shown = ", ".join(f"{step} {value:.3f}" for step, value in steps.items())
        print(f"  {way:12} {shown}")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "medians": medians}, indent=1))


if __name__ == "__main__":
    main()
