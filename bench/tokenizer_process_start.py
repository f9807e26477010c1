"""What the tokenizer's process costs a run before its first chunk (glueperf/tokenizer_process.py):
from the engine asking for a process to the first chunk's token ids, with the process spawned
then (its interpreter and imports on the run's path) and with one started ahead and ready, as
an evaluation starts it before loading its model (``start_tokenizer_early``); the engine's own
tokenization of the same chunk in this process beside them.

    python bench/tokenizer_process_start.py TOKENIZER_DIR DATA.parquet [--glue-task sst2] \
        [--repeats 10] [--json FILE]

The chunk is the engine's first: its FIRST_CHUNK_TEXTS longest texts. Prints a table: how, median
and shortest milliseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


def measure(tokenizer_dir: str, data: str, glue_task: str, repeats: int) -> dict[str, list]:
    """Seconds of each repeat, by how the first chunk was tokenized."""
    from tokenizer_scaling import engine_tokenizer

    from glueperf.engine import chunk_inputs, chunk_positions
    from glueperf.tokenizer_process import spare_ready, start_spare

    tokenize, read = engine_tokenizer(tokenizer_dir, data, glue_task)
    texts, pairs = read.texts, read.pairs
    first = chunk_inputs(next(chunk_positions(texts, pairs)), texts, pairs)

    def through_process(ahead: bool) -> float:
        if ahead:
            start_spare()
            spare_ready(timeout=60.0)
        began = time.perf_counter()
        process = tokenize.process()
        answers = process.chunks([first])
        next(answers)
        seconds = time.perf_counter() - began
        answers.close()  # left mid-run: the process is killed
        process.close()
        return seconds

    def in_this_process() -> float:
        began = time.perf_counter()
        tokenize.converted(None, tokenize.encode(*first), {})
        return time.perf_counter() - began

    runs = {
        "process spawned in the run": lambda: through_process(ahead=False),
        "process started ahead": lambda: through_process(ahead=True),
        "in this process (the engine's thread)": in_this_process,
    }
    seconds: dict[str, list] = {how: [] for how in runs}
    for _ in range(repeats):  # interleaved, so that a slower moment of the host hits them all
        for how, run in runs.items():
            seconds[how].append(run())
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tokenizer_dir")
    parser.add_argument("data")
    parser.add_argument("--glue-task", default="sst2")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", help="also write the seconds to this file")
    args = parser.parse_args()
    seconds = measure(args.tokenizer_dir, args.data, args.glue_task, args.repeats)
    print("| first chunk's ids | median ms | shortest ms |")
    print("|---|---:|---:|")
    for how, values in seconds.items():
        print(f"| {how} | {1000 * statistics.median(values):.1f} | {1000 * min(values):.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(seconds, indent=1))


if __name__ == "__main__":
    main()
