"""Where an evaluation's fixed cost on a GPU goes: what a fresh process pays once (CUDA's
context, cuBLAS) against what each model pays (its move to the GPU, its warm-up batch), timed
in one process over several models, as the pipeline's evaluations would run them one after
another in a process that stays (bench/gpu_session.sh warmup; issue 24).

    python bench/warmup_probe.py MODEL_DIR [MODEL_DIR ...] [--dtype float32] [--data PARQUET]
        [--stand-in] [--json FILE]

For each model: its loading on the CPU, its move to the GPU, the first warm-up batch and a
second one (what is left once the kernels are loaded); with --data, the engine over that
file's texts twice (the first run loads the kernels of full-size batches that the warm-up's
tiny batch did not use, inside what an evaluation measures). A model after the first finds CUDA,
cuBLAS and the kernels of its architecture ready, as it would in a process that stays. Prints a
table, with CUDA_MODULE_LOADING (LAZY, CUDA's default: a kernel is loaded on its first launch;
EAGER: every kernel as CUDA starts), the GPU memory in use once CUDA has started (the context's,
with the kernels loaded by then) and the process's peak RSS; --json writes the figures. With
--stand-in, a one-layer stand-in of the first model is warmed up first, as an evaluation's early
start does before its claim (glueperf/evaluation.py: warm_up_stand_in): what is left of the
first model's warm-up is what the held device still pays.
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
from glueperf.evaluation import (  # noqa: E402
    StandIn,
    read_data,
    start_device,
    warm_up,
    warm_up_stand_in,
)
from glueperf.measure import MIB, PhaseTimer, kernel_peak_rss_bytes  # noqa: E402
from glueperf.models import load_on_cpu  # noqa: E402

# Each model's phases, as the table heads them.
PHASES = {
    "cpu_load_s": "CPU load s",
    "move_s": "move s",
    "warmup_first_s": "warm-up 1st s",
    "warmup_second_s": "warm-up 2nd s",
    "inference_first_s": "inference 1st s",
    "inference_second_s": "inference 2nd s",
}


def gpu_used_mb(device: str) -> float | None:
    """The device's memory in use (all processes'), MiB; None on the CPU."""
    if not device.startswith("cuda"):
        return None
    free, total = torch.cuda.mem_get_info(device)
    return round((total - free) / MIB, 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--data", help="a parquet file whose texts each model runs on twice")
    parser.add_argument(
        "--stand-in",
        action="store_true",
        help="first warm up a one-layer stand-in of the first model, as an evaluation's early "
        "start does before its claim",
    )
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    figures = {"imports_s": time.perf_counter() - STARTED}
    figures["cuda_start_s"] = start_device(args.device)
    figures["gpu_used_mb"] = gpu_used_mb(args.device)
    data = read_data(args.data).data if args.data else None
    process = PhaseTimer(args.device)
    with process.phase("blas_handle_s"):
        if args.device.startswith("cuda"):
            torch.cuda.current_blas_handle()
    if args.stand_in:
        with process.phase("stand_in_s"):
            warm_up_stand_in(StandIn(args.models[0], args.dtype), args.device)
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
        for name in ("inference_first_s", "inference_second_s") if data else ():
            with timer.phase(name):
                engine.run(data.texts, data.pairs)
        rows.append({"model": Path(directory).name, **timer.seconds})
    figures["models"] = rows
    figures["module_loading"] = os.environ.get("CUDA_MODULE_LOADING", "LAZY (default)")
    peak = kernel_peak_rss_bytes()
    figures["peak_rss_mb"] = None if peak is None else round(peak / MIB, 1)
    stand_in = f"{figures['stand_in_s']:.3f} s" if "stand_in_s" in figures else "not asked"
    print(
        f"CUDA_MODULE_LOADING {figures['module_loading']}: imports {figures['imports_s']:.3f} s, "
        f"CUDA start {figures['cuda_start_s']:.3f} s, cuBLAS handle "
        f"{figures['blas_handle_s']:.3f} s, stand-in warm-up "
        f"{stand_in}, GPU memory in use after the start "
        f"{figures['gpu_used_mb']} MiB, peak RSS {figures['peak_rss_mb']} MiB"
    )
    phases = [phase for phase in PHASES if phase in rows[0]]
    print("| model | " + " | ".join(PHASES[phase] for phase in phases) + " |")
    print("|---|" + "---:|" * len(phases))
    for row in rows:
        print(f"| {row['model']} | " + " | ".join(f"{row[p]:.3f}" for p in phases) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
