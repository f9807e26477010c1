"""Compare two runs of one experiment: one evaluation at a time against every GPU (issue 15).

    python bench/gpu_runs.py PREDICTIONS_A PREDICTIONS_B TABLE_A TABLE_B JOBS_A JOBS_B

A: the run with ``--resources gpu=1``, B: the run on every GPU. TABLE_*: the runs'
model_performance.csv; JOBS_*: their job timelines (bench/job_times.py --json). Prints, per
run, each evaluation's GPU and the seconds it held it (from the run's first claim), checks that
no two evaluations held one GPU at once, then whether predictions and quality figures are
identical between the runs, and the wall times with the speed-up.
"""

import json
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

QUALITY = ["Score", "Accuracy (%)", "n_rows", "n_tokens", "n_truncated"]


def held_spans(table: pd.DataFrame) -> pd.DataFrame:
    start = table["device_held_from"].min()
    spans = table[["Model", "Dataset", "gpu_index", "gpu_uuid"]].copy()
    spans["held_from_s"] = (table["device_held_from"] - start).round(2)
    spans["held_until_s"] = (table["device_held_until"] - start).round(2)
    spans["wait_s"] = table["device_wait_s"]
    spans["inference_s"] = table["Inference Time (seconds)"]
    spans["startup_s"] = table["startup_s"]
    return spans.sort_values("held_from_s")


def overlaps(spans: pd.DataFrame) -> list[str]:
    """Pairs of evaluations that held one GPU at the same time."""
    found = []
    for _, same_gpu in spans.groupby("gpu_uuid"):
        rows = same_gpu.sort_values("held_from_s").to_dict("records")
        for before, after in zip(rows, rows[1:], strict=False):
            if after["held_from_s"] < before["held_until_s"]:
                found.append(f"{before['Dataset']} and {after['Dataset']} on {after['gpu_uuid']}")
    return found


def main(pred_a, pred_b, table_a, table_b, jobs_a, jobs_b) -> None:
    walls = []
    tables = []
    for label, table_path, jobs_path in (("gpu=1", table_a, jobs_a), ("all GPUs", table_b, jobs_b)):
        table = pd.read_csv(table_path)
        tables.append(table)
        wall = json.loads(Path(jobs_path).read_text())["wall_s"]
        walls.append(wall)
        spans = held_spans(table)
        print(
            f"\n{label}: wall {wall:.2f} s, {len(table)} evaluations on GPUs "
            f"{sorted(table['gpu_index'].unique().tolist())}"
        )
        print(spans.to_string(index=False))
        shared = overlaps(spans)
        print("evaluations holding one GPU at once:", shared or "none")
    one, other = (t.sort_values(["Model", "Dataset"]).reset_index(drop=True) for t in tables)
    columns = [c for c in QUALITY if c in one.columns]
    print("\nquality figures identical between the runs:", one[columns].equals(other[columns]))
    for path in sorted(Path(pred_a).rglob("*.parquet")):
        twin = Path(pred_b) / path.relative_to(pred_a)
        same = pq.read_table(path).equals(pq.read_table(twin))
        print(f"predictions {path.relative_to(pred_a)} identical: {same}")
    print(
        f"\nwall gpu=1 {walls[0]:.2f} s, all GPUs {walls[1]:.2f} s, "
        f"speed-up {walls[0] / walls[1]:.2f}x"
    )


if __name__ == "__main__":
    main(*sys.argv[1:7])
