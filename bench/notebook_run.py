"""The original notebook's whole run, end to end, in one process: its imports, one model load,
then its loop over each dataset (bench/reference.py: notebook_loop), for comparison with the
pipeline's whole run (bench/gpu_session.sh pipeline).

    python bench/notebook_run.py MODEL_DIR DATA.parquet [DATA.parquet ...] [--device cuda] \
        [--json FILE]

Prints one line per phase and the total, seconds since the interpreter started; --json writes
them to FILE.
"""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402, F401 (the notebook imports it; it is part of its cost)
import psutil  # noqa: E402, F401
import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from interpreter_clock import since_start as since_interpreter_start  # noqa: E402

from glueperf.measure import cuda_synchronize  # noqa: E402
from glueperf.validation import load_dataset  # noqa: E402
from reference import notebook_loop  # noqa: E402


def since_start() -> float:
    return since_interpreter_start(STARTED)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("data", nargs="+")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    figures = {"imports_s": since_start(), "loops": []}
    print(f"imports done: {figures['imports_s']:.2f} s")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model).to(args.device)
    cuda_synchronize(args.device)
    figures["model_loaded_s"] = since_start()
    print(f"model loaded: {figures['model_loaded_s']:.2f} s")
    for path in args.data:
        data = load_dataset(path)
        start = time.perf_counter()
        notebook_loop(model, tokenizer, data.texts, data.labels, args.device)
        cuda_synchronize(args.device)
        name = f"{Path(path).parent.name}/{Path(path).stem}"
        loop = {"data": name, "rows": len(data.texts), "loop_s": time.perf_counter() - start}
        loop["at_s"] = since_start()
        figures["loops"].append(loop)
        print(f"{name}: {loop['rows']} sentences, loop {loop['loop_s']:.2f} s", end="")
        print(f", at {loop['at_s']:.2f} s")
    figures["total_s"] = since_start()
    print(f"notebook whole run: {figures['total_s']:.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
