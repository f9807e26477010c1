"""Where an evaluation's fixed cost on a GPU goes: what a fresh process pays once (CUDA's
context, cuBLAS) against what each model pays (its move to the GPU, its warm-up batch), timed
in one process over several models, as the pipeline's evaluations would run them one after
another in a process that stays (bench/gpu_session.sh warmup; issue 24).

    python bench/warmup_probe.py MODEL_DIR [MODEL_DIR ...] [--dtype float32] [--json FILE]

For each model: its loading on the CPU, its move to the GPU, the first warm-up batch and a
second one (what is left once the kernels are loaded). A model after the first finds CUDA,
cuBLAS and the kernels of its architecture ready, as it would in a process that stays. Prints a
table, with CUDA_MODULE_LOADING (LAZY, CUDA's default: a kernel is loaded on its first launch;
EAGER: every kernel as CUDA starts) and the process's peak RSS; --json writes the figures.
--device cpu runs it on the CPU (a smoke test).
"""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from glueperf.engine import Batching, Engine  # noqa: E402
from glueperf.evaluation import start_device, warm_up  # noqa: E402
from glueperf.measure import MIB, PhaseTimer, kernel_peak_rss_bytes  # noqa: E402
from glueperf.models import load_on_cpu  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    figures = {"imports_s": time.perf_counter() - STARTED}
    figures["cuda_start_s"] = start_device(args.device)
    process = PhaseTimer(args.device)
    with process.phase("blas_handle_s"):
        if args.device.startswith("cuda"):
            torch.cuda.current_blas_handle()
    figures.update(process.seconds)
    rows = []
    for directory in args.models:
        timer = PhaseTimer(args.device)
        with timer.phase("cpu_load_s"):
            loaded = load_on_cpu(directory, args.dtype)
        with timer.phase("move_s"):
            model, tokenizer, _ = loaded.to(args.device)
        engine = Engine(model, tokenizer, args.device, Batching())
        for name in ("warmup_first_s", "warmup_second_s"):
            with timer.phase(name):
                warm_up(engine, pairs=False)
        rows.append({"model": Path(directory).name, **timer.seconds})
    figures["models"] = rows
    figures["module_loading"] = os.environ.get("CUDA_MODULE_LOADING", "LAZY (default)")
    peak = kernel_peak_rss_bytes()
    figures["peak_rss_mb"] = None if peak is None else round(peak / MIB, 1)
    print(
        f"CUDA_MODULE_LOADING {figures['module_loading']}: imports {figures['imports_s']:.3f} s, "
        f"CUDA start {figures['cuda_start_s']:.3f} s, cuBLAS handle "
        f"{figures['blas_handle_s']:.3f} s, peak RSS {figures['peak_rss_mb']} MiB"
    )
    print("| model | CPU load s | move s | warm-up 1st s | warm-up 2nd s |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['model']} | {row['cpu_load_s']:.3f} | {row['move_s']:.3f} | "
            f"{row['warmup_first_s']:.3f} | {row['warmup_second_s']:.3f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
