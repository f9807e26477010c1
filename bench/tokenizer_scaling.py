"""How the engine's tokenization scales with cores: the engine's own chunks, in its order
(glueperf.engine.tokenized_chunks), each thread count in a fresh process (the Rust tokenizer
sizes its thread pool once, from RAYON_NUM_THREADS).

    python bench/tokenizer_scaling.py TOKENIZER_DIR DATA.parquet [--glue-task sst2] \
        [--threads 1 2 4 8 16] [--repeats 3]

Prints a table: threads, median seconds, speed-up over the first row, tokens per second.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


def engine_tokenizer(tokenizer_dir: str, data: str, glue_task: str):
    """The engine's tokenizer (``ChunkTokenizer``, at the engine's default max_length) of
    ``tokenizer_dir``'s tokenizer.json, without importing transformers, and the dataset."""
    from tokenizers import Tokenizer

    from glueperf.engine import Batching, ChunkTokenizer
    from glueperf.tasks import dataset_spec
    from glueperf.validation import load_dataset

    # What ChunkTokenizer reads of a transformers tokenizer.
    backend = Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json"))
    tokenizer = SimpleNamespace(
        backend_tokenizer=backend,
        pad_token_id=0,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    loaded = load_dataset(data, dataset_spec("bench", {"path": data, "glue_task": glue_task}))
    return ChunkTokenizer(tokenizer, Batching.max_length), loaded


def measure(tokenizer_dir: str, data: str, glue_task: str, repeats: int) -> dict:
    """In this process: seconds of each repeat of the engine's tokenization, and its tokens."""
    from glueperf.engine import tokenized_chunks

    tokenize, loaded = engine_tokenizer(tokenizer_dir, data, glue_task)
    seconds, tokens = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        chunks = tokenized_chunks(tokenize, loaded.texts, loaded.pairs, {"tokenize_s": 0.0})
        tokens = sum(len(chunk.ids) for chunk, _ in chunks)
        seconds.append(time.perf_counter() - start)
    return {"seconds": seconds, "tokens": tokens, "texts": len(loaded.texts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tokenizer", help="directory with tokenizer.json")
    parser.add_argument("data", help="parquet file")
    parser.add_argument("--glue-task", default="sst2")
    parser.add_argument("--threads", type=int, nargs="+")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.tokenizer, args.data, args.glue_task, args.repeats)))
        return
    cores = os.cpu_count() or 1
    counts = args.threads or sorted(
        {*(2**i for i in range(cores.bit_length()) if 2**i <= cores), cores}
    )
    print(f"{args.data}, engine's tokenization ({cores} cores on this host)")
    print("| threads | median s | speed-up | tokens/s |")
    print("|--------:|---------:|---------:|---------:|")
    first = None
    for count in counts:
        child = subprocess.run(
            [sys.executable, __file__, args.tokenizer, args.data, "--child"]
            + ["--glue-task", args.glue_task, "--repeats", str(args.repeats)],
            env={**os.environ, "RAYON_NUM_THREADS": str(count), "TOKENIZERS_PARALLELISM": "true"},
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(child.stdout.strip().splitlines()[-1])
        median = statistics.median(result["seconds"])
        first = first or median
        rate = result["tokens"] / median
        print(f"| {count:7d} | {median:8.3f} | {first / median:8.2f} | {rate:8.0f} |")


if __name__ == "__main__":
    main()
