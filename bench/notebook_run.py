"""The original notebook's whole run, end to end, in one process: its imports, one model load,
then its loop over each dataset (bench/reference.py: notebook_loop), for comparison with the
pipeline's whole run (bench/gpu_session.sh pipeline).

    python bench/notebook_run.py MODEL_DIR DATA.parquet [DATA.parquet ...] [--device cuda]

Prints one line per phase and the total, seconds since the interpreter started.
"""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402, F401 (the notebook imports it; it is part of its cost)
import psutil  # noqa: E402, F401
import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from glueperf.measure import cuda_synchronize  # noqa: E402
from glueperf.validation import load_dataset  # noqa: E402
from reference import notebook_loop  # noqa: E402


def since_start() -> float:
    return time.perf_counter() - STARTED


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("data", nargs="+")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    # The interpreter's own start before this module ran is not in perf_counter: add it, from
    # the kernel's record of the process start (psutil's create_time() was up to 1 s early).
    from glueperf.measure import job_age_s

    before = job_age_s() - since_start()
    print(f"imports done: {since_start() + before:.2f} s")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model).to(args.device)
    cuda_synchronize(args.device)
    print(f"model loaded: {since_start() + before:.2f} s")
    for path in args.data:
        data = load_dataset(path)
        start = time.perf_counter()
        notebook_loop(model, tokenizer, data.texts, data.labels, args.device)
        cuda_synchronize(args.device)
        print(
            f"{Path(path).parent.name}/{Path(path).stem}: {len(data.texts)} sentences, "
            f"loop {time.perf_counter() - start:.2f} s, at {since_start() + before:.2f} s"
        )
    print(f"notebook whole run: {since_start() + before:.2f} s")


if __name__ == "__main__":
    main()
