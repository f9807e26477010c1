"""Smoke test of bench/compare_loops.py on the CPU: it runs every loop and floor on small data,
prints its table and writes figures in which the engine agrees with the notebook loop."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO, SHARED, requires_shared, write_dataset

BENCH = REPO / "bench" / "compare_loops.py"


def run_bench(tmp_path, *args):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--device",
            "cpu",
            "--repeats",
            "2",
            "--json",
            str(out),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout, json.loads(out.read_text())


def test_compare_loops_runs_on_cpu(tmp_path, varied_model):
    data = write_dataset(tmp_path / "data.parquet", n=48)
    stdout, figures = run_bench(tmp_path, "--model", str(varied_model), "--data", str(data))
    for row in ("(a) notebook loop", "(b) transformers.pipeline", "(c) engine float32"):
        assert row in stdout
    assert "floor: tokenizer alone" in stdout and "floor: forward alone" in stdout
    results = figures["reports"][0]["results"]
    assert figures["reports"][0]["n_texts"] == 48
    assert results["c"]["agree_with_a_pct"] == 100.0
    assert results["b"]["agree_with_a_pct"] == 100.0
    assert all(len(entry["runs_s"]) == 2 for entry in results.values())


@requires_shared
def test_compare_loops_builds_the_distilbert_twin(tmp_path):
    data = SHARED / "data" / "glue" / "sst2" / "validation.parquet"
    model = SHARED / "models" / "minilm-sst2"
    args = ["--model", str(model), "--twin", "--data", str(data), "--limit", "24"]
    stdout, figures = run_bench(tmp_path, *args, "--skip", "b", "--bf16-on-cpu")
    assert "DistilBERT-base twin" in figures["environment"]["model"]
    results = figures["reports"][0]["results"]
    loops = {
        "a",
        "c",
        "c_traced",
        "d",
        "tokenizer",
        "tokenizer_engine",
        "forward",
        "forward_traced",
    }
    assert set(results) == loops
    assert results["c"]["agree_with_a_pct"] == 100.0
    # the engine with the model traced as the pipeline traces it predicts the same
    assert results["c_traced"]["agree_with_a_pct"] == 100.0


@requires_shared
def test_compare_loops_on_sentence_pairs(tmp_path):
    """MNLI's premise/hypothesis pairs, three classes, with the DistilBERT twin: every loop is
    given the pairs, and the engine agrees with the notebook loop and transformers.pipeline."""
    data = SHARED / "data" / "glue" / "mnli" / "validation_matched.parquet"
    model = SHARED / "models" / "minilm-sst2"
    args = ["--model", str(model), "--twin", "--glue-task", "mnli", "--limit", "40"]
    stdout, figures = run_bench(tmp_path, *args, "--data", str(data))
    report = figures["reports"][0]
    assert report["kind"] == "pairs" and "40 pairs" in stdout
    assert report["results"]["c"]["agree_with_a_pct"] == 100.0
    assert report["results"]["b"]["agree_with_a_pct"] == 100.0


@requires_shared
def test_tokenizer_scaling_times_the_engines_tokens_per_thread_count():
    """bench/tokenizer_scaling.py on MRPC's pairs: one row per thread count asked for, the
    first the speed-up's reference."""
    data = SHARED / "data" / "glue" / "mrpc" / "validation.parquet"
    model = SHARED / "models" / "minilm-mrpc"
    command = [sys.executable, str(REPO / "bench" / "tokenizer_scaling.py"), str(model), str(data)]
    result = subprocess.run(
        [*command, "--glue-task", "mrpc", "--threads", "1", "2", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines() if line[:3] == "|  "]
    assert [int(row[0]) for row in rows] == [1, 2]
    assert float(rows[0][2]) == 1.0 and all(float(row[3]) > 0 for row in rows)
