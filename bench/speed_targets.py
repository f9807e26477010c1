"""Issue 24's targets, from the figures that bench/gpu_session.sh leaves in its OUT directory.

    python bench/speed_targets.py OUT_DIR

Reads what is there (a part that did not run is left out of the table):
  jobs_glue_coresN.json, jobs_glue_cores1.json  the GLUE twins through the pipeline from empty
                                                (bench/job_times.py: wall seconds of the command)
  jobs_glue_cores{N,1}_<setting>[_r<round>].json  the same under each of GLUE_ENVS' settings
                                                (e.g. another commit's workflow), each round
                                                (GLUE_ROUNDS, GLUE_CORES1_ROUNDS): their median
  glue_engine.json, glue_notebook.json          the same experiment in one process
                                                (bench/glue_one_process.py: from interpreter start)
  jobs_default_cores1.json, notebook_default.json  the default experiment: pipeline and notebook
  twin_train_bf16.json                          bench/compare_loops.py on SST-2 train
  twin_train_traced.json                        the same, the engines against their traces
                                                (issue 23: what dropping TorchScript costs)
and prints one table: each comparison's seconds, their ratio, the target and whether it is met.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

# (label, numerator, denominator, target, whether the ratio must be at most the target)
GLUE_ROWS = (
    ("GLUE: pipeline --cores N / one process, engine", "pipeline_N", "ideal", 1.3, True),
    ("GLUE: pipeline --cores 1 / one process, engine", "pipeline_1", "ideal", 1.6, True),
    ("GLUE: one process, notebook loop / engine", "notebook", "ideal", None, True),
    ("GLUE: one process, notebook loop / pipeline --cores 1", "notebook", "pipeline_1", None, True),
)
BF16_ROWS = ("d", "d_checked", "d_graphs", "d_captured", "d_compile", "d_before", "d_threads")
# float32 engines against their forward floors (no target, for the record)
F32_ROWS = (
    ("c", "forward"),
    ("c_checked", "forward"),
    ("c_before", "forward"),
    ("c_threads", "forward"),
    ("c_traced", "forward_traced"),
)
# Issue 23: each engine on the transformers model against the same engine on its trace (the
# pipeline evaluates the transformers model since it dropped TorchScript; BENCHMARKS.md).
TRACED_ROWS = (("c", "c_traced", "float32"), ("d", "d_traced", "bfloat16"))


def read(directory: Path, name: str) -> dict | None:
    path = directory / name
    return json.loads(path.read_text()) if path.is_file() else None


def whole_runs(directory: Path) -> dict[str, float]:
    """Seconds of each whole run found, by name."""
    runs = {}
    for name, file, key in (
        ("pipeline_N", "jobs_glue_coresN.json", "wall_s"),
        ("pipeline_1", "jobs_glue_cores1.json", "wall_s"),
        ("ideal", "glue_engine.json", "total_s"),
        ("notebook", "glue_notebook.json", "total_s"),
        ("default_pipeline_1", "jobs_default_cores1.json", "wall_s"),
        ("default_notebook", "notebook_default.json", "total_s"),
    ):
        figures = read(directory, file)
        if figures and figures.get(key) is not None and not figures.get("exit"):
            runs[name] = figures[key]
    return runs


# A pipeline run of the glue part under one of GLUE_ENVS' settings, and its round.
TAGGED_RUN = re.compile(r"jobs_glue_cores(?P<cores>N|1)_(?P<setting>.+?)(?:_r\d+)?\.json")


def tagged_runs(directory: Path) -> dict[tuple[str, str], list[float]]:
    """Seconds of the GLUE pipeline runs made under a setting, by (cores: N or 1, setting), a
    run of each round; a run that failed left out."""
    runs: dict[tuple[str, str], list[float]] = {}
    for path in sorted(directory.glob("jobs_glue_cores*_*.json")):
        match = TAGGED_RUN.fullmatch(path.name)
        figures = read(directory, path.name)
        if match and figures.get("wall_s") is not None and not figures.get("exit"):
            runs.setdefault((match["cores"], match["setting"]), []).append(figures["wall_s"])
    return runs


def rows(directory: Path) -> list[tuple]:
    """(comparison, seconds, ratio, target, met) for every comparison whose figures exist."""
    runs, found = whole_runs(directory), []

    def add(label, numerator, denominator, target, at_most=True):
        ratio = numerator / denominator
        met = None if target is None else (ratio <= target if at_most else ratio >= target)
        found.append((label, f"{numerator:.2f} / {denominator:.2f}", ratio, target, met, at_most))

    for label, numerator, denominator, target, at_most in GLUE_ROWS:
        if numerator in runs and denominator in runs:
            add(label, runs[numerator], runs[denominator], target, at_most)
    if "ideal" in runs:
        for (cores, setting), seconds in tagged_runs(directory).items():
            target = next(row[3] for row in GLUE_ROWS if row[1] == f"pipeline_{cores}")
            label = f"GLUE: pipeline --cores {cores}, {setting}, median of {len(seconds)}"
            add(f"{label} / one process, engine", statistics.median(seconds), runs["ideal"], target)
    if "default_notebook" in runs and "default_pipeline_1" in runs:
        label = "default: notebook whole run / pipeline --cores 1"
        add(label, runs["default_notebook"], runs["default_pipeline_1"], 2.0, at_most=False)
    traced = read(directory, "twin_train_traced.json")
    if traced:
        results = traced["reports"][0]["results"]
        for row, trace, dtype in TRACED_ROWS:
            if row in results and trace in results:
                label = f"{dtype} SST-2 train: {row} (transformers model) / {trace}"
                add(label, results[row]["median_s"], results[trace]["median_s"], None)
    bf16 = read(directory, "twin_train_bf16.json")
    if bf16:
        results = bf16["reports"][0]["results"]
        for row, floor in F32_ROWS:
            if row in results and floor in results:
                label = f"float32 SST-2 train: {row} / {floor}"
                add(label, results[row]["median_s"], results[floor]["median_s"], None)
        floors = [
            results[f]["median_s"] for f in ("forward_bf16", "tokenizer_engine") if f in results
        ]
        if floors:
            floor = max(floors)
            for row in BF16_ROWS:
                if row in results:
                    label = f"bf16 SST-2 train: {row} / max(forward bf16, engine's tokenization)"
                    add(label, results[row]["median_s"], floor, 1.3 if row == "d" else None)
    return found


def table(found: list[tuple]) -> str:
    lines = ["| comparison | seconds | ratio | target | met |", "|---|---:|---:|---:|---|"]
    for label, seconds, ratio, target, met, at_most in found:
        wanted = "" if target is None else f"{'≤' if at_most else '≥'} {target}"
        verdict = "" if met is None else "yes" if met else "NO"
        lines.append(f"| {label} | {seconds} | {ratio:.2f} | {wanted} | {verdict} |")
    return "\n".join(lines)


def main() -> None:
    found = rows(Path(sys.argv[1]))
    print(table(found) if found else f"no figures for issue 24's targets in {sys.argv[1]}")


if __name__ == "__main__":
    main()
