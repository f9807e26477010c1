"""Time glueperf.metrics.task_scores, bootstrap included, on synthetic data of QQP's size.

Prints one line per case: rows, official metric(s), classes, the fastest of --repeats runs in
wall-clock seconds and in CPU seconds of this process (steadier when other work shares the
cores), and the score with its interval (so a broken case shows). Not a test: timings depend on
the machine and on what else runs on it.

    python bench/metrics_speed.py --repeats 5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from glueperf.metrics import task_scores  # noqa: E402


def classification_case(rng, n: int, n_classes: int):
    labels = rng.integers(0, n_classes, n)
    outputs = np.where(rng.random(n) < 0.8, labels, rng.integers(0, n_classes, n))
    return labels, outputs


def regression_case(rng, n: int):
    # STS-B-like: gold scores on a grid of 0.2 in [0, 5] (many ties), float32 model outputs.
    gold = np.round(rng.uniform(0, 5, n) * 5) / 5
    outputs = (gold + rng.normal(0, 0.8, n)).astype(np.float32)
    return gold, outputs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    cases = [
        (40_430, ("f1", "accuracy"), 2, classification_case(rng, 40_430, 2)),
        (40_430, ("mcc",), 2, classification_case(rng, 40_430, 2)),
        (40_430, ("accuracy",), 3, classification_case(rng, 40_430, 3)),
        (40_000, ("pearson",), None, regression_case(rng, 40_000)),
        (40_000, ("spearman",), None, regression_case(rng, 40_000)),
        (40_000, ("pearson", "spearman"), None, regression_case(rng, 40_000)),
    ]
    print(
        f"{'rows':>7}  {'metric':<18} {'classes':>7}  {'seconds':>8}  {'cpu s':>6}  "
        "score [95 % interval]"
    )
    for rows, official, n_classes, (labels, outputs) in cases:
        times, cpu_times = [], []
        for _ in range(args.repeats):
            start, cpu_start = time.perf_counter(), time.process_time()
            row = task_scores(labels, outputs, official, n_classes, n_resamples=args.resamples)
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
        print(
            f"{rows:>7}  {row['metric']:<18} {n_classes or '-':>7}  {min(times):>8.3f}  "
            f"{min(cpu_times):>6.3f}  "
            f"{row['score']:.2f} [{row['score_ci_low']:.2f}, {row['score_ci_high']:.2f}]"
        )


if __name__ == "__main__":
    main()
