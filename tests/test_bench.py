"""Smoke test of bench/compare_loops.py on the CPU: it runs every loop and floor on small data,
prints its table and writes figures in which the engine agrees with the notebook loop."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import REPO, SHARED, build_tiny_model, make_sentences, requires_shared, write_dataset

BENCH = REPO / "bench" / "compare_loops.py"
sys.path.insert(0, str(REPO / "bench"))


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
    """Every loop and floor, and the variants the CPU can run: transformers' own padding check,
    and another engine module (here the engine itself) for a before/after."""
    data = write_dataset(tmp_path / "data.parquet", n=48)
    engine = REPO / "scripts" / "glueperf" / "engine.py"
    variants = ["--variants", "checked", "before", "--engine-before", str(engine)]
    args = ["--model", str(varied_model), "--data", str(data), "--bf16-on-cpu", *variants]
    stdout, figures = run_bench(tmp_path, *args)
    for row in ("(a) notebook loop", "(b) transformers.pipeline", "(c) engine float32"):
        assert row in stdout
    assert "floor: tokenizer alone" in stdout and "floor: forward alone" in stdout
    results = figures["reports"][0]["results"]
    assert figures["reports"][0]["n_texts"] == 48
    assert results["c"]["agree_with_a_pct"] == 100.0
    assert results["b"]["agree_with_a_pct"] == 100.0
    for row in ("c_checked", "c_before"):
        assert results[row]["agree_with_c_pct"] == 100.0, row
    assert {"d", "d_checked", "d_before", "forward_bf16"} <= set(results)
    assert all(len(entry["runs_s"]) == 2 for entry in results.values())


def test_bucket_padding_of_the_cuda_graphs_variant_keeps_predictions(varied_model):
    """Variant graphs pads each batch to a bucket of shapes (rows and columns more, masked):
    run eagerly (the CPU has no CUDA graphs), float32 predictions are the engine's own."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from compare_loops import Graphed
    from glueperf.engine import Batching, Engine

    tokenizer = AutoTokenizer.from_pretrained(varied_model)
    model = AutoModelForSequenceClassification.from_pretrained(varied_model).eval()
    texts, pairs = make_sentences(120, seed=5), make_sentences(120, seed=6)
    batching = Batching(batch_tokens=160)
    for second in (None, pairs):
        expected = Engine(model, tokenizer, "cpu", batching).run(texts, second)
        graphed = Graphed(model, tokenizer.pad_token_id, capture=False)
        got = Engine(graphed, tokenizer, "cpu", batching).run(texts, second)
        assert np.array_equal(got.predictions, expected.predictions)
        assert np.allclose(got.probabilities, expected.probabilities, atol=1e-5)
        assert 1 < len(graphed.buckets) < expected.n_batches


def test_captured_variant_runs_a_buckets_first_batch_as_it_comes_and_starts_anew(varied_model):
    """Variant captured: a bucket gets its graph from its second batch on, its first batch runs
    unpadded as the engine gives it, and every run captures anew (what an evaluation pays)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from compare_loops import CapturingEngine, Graphed
    from glueperf.engine import Batching, Engine

    tokenizer = AutoTokenizer.from_pretrained(varied_model)
    model = AutoModelForSequenceClassification.from_pretrained(varied_model).eval()
    texts = make_sentences(120, seed=7)
    batching = Batching(batch_tokens=160)
    expected = Engine(model, tokenizer, "cpu", batching).run(texts)
    graphed = Graphed(model, tokenizer.pad_token_id, capture=False, from_use=2)
    engine = CapturingEngine(graphed, tokenizer, "cpu", batching)
    for _ in range(2):
        got = engine.run(texts)
        assert np.array_equal(got.predictions, expected.predictions)
        assert sum(graphed.uses.values()) == expected.n_batches  # counted anew in each run
        assert set(graphed.buckets) == {key for key, n in graphed.uses.items() if n >= 2}
        assert 0 < len(graphed.buckets) < len(graphed.uses)


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
        "d_traced",
        "tokenizer",
        "tokenizer_engine",
        "forward",
        "forward_traced",
        "forward_bf16",
    }
    assert set(results) == loops
    assert results["c"]["agree_with_a_pct"] == 100.0
    # the engine with the model traced as the pipeline traced it predicts the very same
    assert results["c_traced"]["agree_with_a_pct"] == 100.0
    identical = figures["reports"][0]["identical"]
    assert identical["c_traced"] == {"predictions": True, "probabilities": True}
    assert set(identical) == {"c_traced", "d_traced"}
    assert "(c) engine, traced model: predictions bitwise equal" in stdout


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_a_trace_predicts_exactly_what_its_model_predicts(tmp_path, varied_model, kind):
    """bench/torchscript.py, the traces the pipeline evaluated until it dropped TorchScript:
    on padded batches of sentence pairs, predictions and probabilities (scores) bit for bit
    the transformers model's, which the pipeline now evaluates (float32 predictions unchanged)."""
    from glueperf.engine import Batching, Engine
    from glueperf.models import load_model
    from torchscript import trace

    source = varied_model
    if kind == "regressor":
        source = build_tiny_model(tmp_path / "regressor", num_labels=1, initializer_range=0.5)
    model, tokenizer, _ = load_model(str(source), "float32", "cpu")
    traced = trace(model, tokenizer, "cpu", tmp_path / "traced")
    texts, pairs = make_sentences(300, seed=5), make_sentences(300, seed=6)
    batching = Batching(batch_tokens=256)
    got = Engine(traced, tokenizer, "cpu", batching).run(texts, pairs)
    expected = Engine(model, tokenizer, "cpu", batching).run(texts, pairs)
    assert got.n_batches > 2 and got.padded_tokens > got.token_counts.sum()  # padded batches
    assert np.array_equal(got.predictions, expected.predictions)
    assert np.array_equal(got.probabilities, expected.probabilities, equal_nan=True)
    if kind == "classifier":
        assert len(set(expected.predictions.tolist())) == 2


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


@requires_shared
def test_tokenizer_process_start_times_the_first_chunk_three_ways(tmp_path):
    """bench/tokenizer_process_start.py on MRPC's pairs: a row for the process spawned in the
    run, one for the process started ahead, one in this process, each repeat recorded."""
    data = SHARED / "data" / "glue" / "mrpc" / "validation.parquet"
    model = SHARED / "models" / "minilm-mrpc"
    out = tmp_path / "start.json"
    command = [sys.executable, str(REPO / "bench" / "tokenizer_process_start.py"), str(model)]
    result = subprocess.run(
        [*command, str(data), "--glue-task", "mrpc", "--repeats", "2", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines()[2:]]
    assert [row[0].strip().split()[0] for row in rows] == ["process", "process", "in"]
    seconds = json.loads(out.read_text())
    assert len(seconds) == 3 and all(len(v) == 2 and min(v) > 0 for v in seconds.values())


@pytest.fixture(scope="module")
def glue_like_run(tmp_path_factory, varied_model):
    """A config of two models (a classifier on single texts and on pairs, a regressor on pairs)
    and the predictions the pipeline's jobs write for it: each dataset evaluated as rule
    evaluate_model does."""
    from glueperf.evaluation import ModelHandle, Settings, evaluate, read_data, write_predictions
    from glueperf.tasks import dataset_spec

    base = tmp_path_factory.mktemp("glue_like")
    regressor = build_tiny_model(base / "regressor", num_labels=1, initializer_range=0.5)
    first, second = make_sentences(40, seed=1), make_sentences(40, seed=2)
    datasets = {
        "single": {"path": str(write_dataset(base / "single.parquet", n=50))},
        "pairs": {
            "path": str(write_dataset(base / "pairs.parquet", n=40, sentence2=second)),
            "text_columns": ["sentence", "sentence2"],
        },
        "scores": {
            "path": str(
                write_dataset(base / "scores.parquet", n=40, sentence1=first, sentence2=second)
            ),
            "glue_task": "stsb",
        },
    }
    pq.write_table(  # STS-B's labels are scores
        pq.read_table(datasets["scores"]["path"]).set_column(
            1, "label", pa.array(np.linspace(0, 5, 40), pa.float32())
        ),
        datasets["scores"]["path"],
    )
    models = {
        "classifier": {"source": str(varied_model), "datasets": ["single", "pairs"]},
        "regressor": {"source": str(regressor), "datasets": ["scores"]},
    }
    config = {"models": models, "datasets": datasets, "evaluation": {"device": "cpu"}}
    (base / "config.yaml").write_text(yaml.safe_dump(config))
    predictions = base / "predictions"
    for name, model in models.items():
        for dataset in model["datasets"]:
            spec = dataset_spec(dataset, datasets[dataset])
            evaluation = evaluate(
                read_data(datasets[dataset]["path"], spec),
                ModelHandle(model["source"]),
                Settings(device="cpu"),
            )
            write_predictions(
                evaluation.predictions, predictions / name / "float32" / f"{dataset}.parquet"
            )
    return base / "config.yaml", predictions


def run_glue_one_process(config, predictions, tmp_path, loop):
    out = tmp_path / f"{loop}.json"
    command = [sys.executable, str(REPO / "bench" / "glue_one_process.py"), str(config)]
    command += ["--loop", loop, "--compare", str(predictions), "--json", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    return result, json.loads(out.read_text()) if out.exists() else None


def test_glue_one_process_runs_a_config_and_equals_the_pipelines_predictions(
    glue_like_run, tmp_path
):
    """The ideal (one process, the engine) on each model's datasets: timed from the
    interpreter's start, predictions equal to the pipeline's files; the notebook's loop beside
    it agrees on every class."""
    config, predictions = glue_like_run
    result, figures = run_glue_one_process(config, predictions, tmp_path, "engine")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [m["model"] for m in figures["models"]] == ["classifier", "regressor"]
    runs = [d["dataset"] for m in figures["models"] for d in m["datasets"]]
    assert runs == ["single", "pairs", "scores"]
    assert [c["match"] for c in figures["compare"]] == [True, True, True]
    assert figures["compare"][0]["equal"] and figures["compare"][1]["equal"]  # classes, exactly
    last = figures["models"][-1]["datasets"][-1]["at_s"]
    assert 0 < figures["imports_s"] < last <= figures["total_s"]
    assert f"whole run (engine loop): {figures['total_s']:.2f} s" in result.stdout
    result, figures = run_glue_one_process(config, predictions, tmp_path, "notebook")
    assert result.returncode == 0, result.stdout + result.stderr
    agreement = [c.get("agree_pct") for c in figures["compare"]]
    assert agreement[:2] == [100.0, 100.0]  # classes; the scores' rounding may differ
    assert figures["compare"][2]["max_abs_diff"] < 1e-4


def test_snakemake_floor_times_the_pipelines_job_graph_doing_nothing(glue_like_run, tmp_path):
    """bench/snakemake_floor.py runs, with each --cores, as many jobs of each rule as the
    pipeline plans for the config (its dry run's job stats), each doing nothing but writing its
    outputs, and prints their wall seconds beside the ideal's; with --shell, also as shell jobs
    (no Python started per job), with --script as Snakemake `script:`s."""
    config, _ = glue_like_run
    out = tmp_path / "floor.json"
    command = [sys.executable, str(REPO / "bench" / "snakemake_floor.py"), str(config)]
    command += ["--cores", "1", "2", "--repeats", "1", "--ideal", "10", "--json", str(out)]
    command += ["--shell", "--script"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(out.read_text())
    dry = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(config)]
        + ["-s", str(REPO / "Snakefile"), "-d", str(tmp_path / "dry")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    stats = dry.stdout.split("Job stats:")[1].split("total")[0]
    planned = {
        rule: int(count)
        for rule, count in (line.split() for line in stats.splitlines()[3:] if line.strip())
    }
    assert planned.pop("all") == 1
    assert figures["rules"] == planned and figures["jobs"] == sum(planned.values())
    for runs in ("runs", "runs_shell", "runs_script"):
        for cores in ("1", "2"):
            (wall,) = figures[runs][cores]
            assert 0 < wall < 300
            assert f"| {cores} | {wall:.2f} | {wall:.2f} | {wall + 10:.2f} |" in result.stdout
    assert "shell commands" in result.stdout


def test_glue_one_process_names_predictions_that_differ(glue_like_run, tmp_path):
    from glue_one_process import compare

    _, predictions = glue_like_run
    single = predictions / "classifier" / "float32" / "single.parquet"
    expected = pq.read_table(single).column("prediction")
    outputs = expected.to_numpy().copy()
    found = compare({("classifier", "float32", "single"): (outputs, False)}, predictions)
    assert found[0]["equal"] and found[0]["match"] and found[0]["agree_pct"] == 100.0
    outputs[3] = 1 - outputs[3]
    found = compare({("classifier", "float32", "single"): (outputs, False)}, predictions)
    assert not found[0]["match"] and found[0]["agree_pct"] == 100.0 * 49 / 50
    found = compare({("classifier", "float32", "missing"): (outputs, False)}, predictions)
    assert not found[0]["match"] and found[0]["missing"]
    regressor = predictions / "regressor" / "float32" / "scores.parquet"
    scores = pq.read_table(regressor).column("score").to_numpy()
    found = compare({("regressor", "float32", "scores"): (scores + 1e-3, True)}, predictions)
    assert not found[0]["match"] and found[0]["max_abs_diff"] == pytest.approx(1e-3, rel=1e-3)


def test_latency_bench_runs_on_cpu(tmp_path, varied_model, capsys):
    """bench/latency_bench.py on a tiny model: each dtype and kind asked for, the single-request
    path agreeing with the offline pass, its floor and transformers' pipeline beside it, and the
    energy left empty on a CPU with the reason."""
    from latency_bench import main

    data = write_dataset(tmp_path / "data.parquet", n=48)
    out = tmp_path / "latency.json"
    args = ["--model", str(varied_model), "--data", str(data), "--device", "cpu"]
    main([*args, "--dtypes", "float32", "bfloat16", "--requests", "20", "--json", str(out)])
    cases = json.loads(out.read_text())["cases"]
    assert [(c["dtype"], c["kind"]) for c in cases] == [
        (dtype, kind) for dtype in ("float32", "bfloat16") for kind in ("transformers", "traced")
    ]
    for case in cases:
        assert case["requests"] == 20 and case["p50_ms"] <= case["max_ms"]
        assert case["bare_p50_ms"] > 0 and case["p50 / bare"] > 0
        assert case["energy_passes"] == 0 and "not the cpu's" in case["energy_note"]
        assert ("pipeline_p50_ms" in case) == (case["kind"] == "transformers")
    assert all(c["agree_with_offline_pct"] == 100.0 for c in cases if c["dtype"] == "float32")
    stdout = capsys.readouterr().out
    assert "| transformers | float32 | 20 |" in stdout and "target p50 / bare <= 1.5" in stdout


def test_speed_targets_reads_the_sessions_figures(tmp_path):
    """bench/speed_targets.py: issue 24's ratios from the files the GPU session writes; a part
    that did not run, or a pipeline run that failed, is left out."""
    from speed_targets import rows, table

    def write(name, figures):
        (tmp_path / name).write_text(json.dumps(figures))

    write("jobs_glue_coresN.json", {"wall_s": 26.0, "exit": 0})
    write("jobs_glue_cores1.json", {"wall_s": 40.0, "exit": 0})
    write("glue_engine.json", {"total_s": 20.0})
    write("jobs_default_cores1.json", {"wall_s": 17.0, "exit": 1})  # failed: not compared
    write("notebook_default.json", {"total_s": 27.0})
    results = {"d": 0.9, "forward_bf16": 0.3, "tokenizer_engine": 0.6, "d_graphs": 0.7}
    results |= {"c": 2.2, "forward": 2.0}
    reports = [{"results": {k: {"median_s": v} for k, v in results.items()}}]
    write("twin_train_bf16.json", {"reports": reports})
    traced = {"c": 2.2, "c_traced": 2.0, "d": 0.9, "d_traced": 1.0}
    traced_reports = [{"results": {k: {"median_s": v} for k, v in traced.items()}}]
    write("twin_train_traced.json", {"reports": traced_reports})
    found = {label: (ratio, met) for label, _, ratio, _, met, _ in rows(tmp_path)}
    assert found["float32 SST-2 train: c (transformers model) / c_traced"] == (
        pytest.approx(1.1),
        None,
    )
    assert found["bfloat16 SST-2 train: d (transformers model) / d_traced"][0] == 0.9
    assert found["GLUE: pipeline --cores N / one process, engine"] == (1.3, True)
    assert found["GLUE: pipeline --cores 1 / one process, engine"] == (2.0, False)
    bf16 = "bf16 SST-2 train: d / max(forward bf16, engine's tokenization)"
    assert found[bf16] == (pytest.approx(1.5), False)
    assert found["bf16 SST-2 train: d_graphs / max(forward bf16, engine's tokenization)"][1] is None
    assert found["float32 SST-2 train: c / forward"] == (pytest.approx(1.1), None)
    assert not any(label.startswith("default") for label in found)
    assert (
        "| GLUE: pipeline --cores 1 / one process, engine | 40.00 / 20.00 | 2.00 | ≤ 1.6 | NO |"
        in (table(rows(tmp_path)))
    )


def test_speed_targets_compares_each_settings_runs_by_their_median(tmp_path):
    """GLUE_ENVS' settings (another commit's workflow against this one's), each in rounds: one
    row per setting and --cores, the median of its runs that did not fail."""
    from speed_targets import rows

    def write(name, figures):
        (tmp_path / name).write_text(json.dumps(figures))

    write("glue_engine.json", {"total_s": 20.0})
    new, old = "GLUE_SNAKEFILE=Snakefile", "GLUE_SNAKEFILE=.carry-old-Snakefile"
    write(f"jobs_glue_cores1_{new}_r0.json", {"wall_s": 30.0, "exit": 0})
    write(f"jobs_glue_cores1_{new}_r1.json", {"wall_s": 34.0, "exit": 0})
    write(f"jobs_glue_cores1_{new}_r2.json", {"wall_s": 31.0, "exit": 0})
    write(f"jobs_glue_cores1_{old}_r0.json", {"wall_s": 36.0, "exit": 0})
    write(f"jobs_glue_cores1_{old}_r1.json", {"wall_s": 20.0, "exit": 1})  # failed: left out
    write(f"jobs_glue_coresN_{new}.json", {"wall_s": 27.0, "exit": 0})
    found = {label: (seconds, met) for label, seconds, _, _, met, _ in rows(tmp_path)}
    assert found == {
        f"GLUE: pipeline --cores 1, {new}, median of 3 / one process, engine": (
            "31.00 / 20.00",
            True,
        ),
        f"GLUE: pipeline --cores 1, {old}, median of 1 / one process, engine": (
            "36.00 / 20.00",
            False,
        ),
        f"GLUE: pipeline --cores N, {new}, median of 1 / one process, engine": (
            "27.00 / 20.00",
            False,
        ),
    }


def test_warmup_probe_splits_the_fixed_cost_per_model_and_names_its_kernel_loading(
    tmp_path, varied_model, tiny_model, monkeypatch, capsys
):
    """bench/warmup_probe.py on the CPU: a row per model, in the order given, with each phase
    timed; the process's figures with the CUDA_MODULE_LOADING it ran under and its peak RSS."""
    from warmup_probe import main

    monkeypatch.setenv("CUDA_MODULE_LOADING", "EAGER")
    out = tmp_path / "warmup.json"
    assert main([str(varied_model), str(tiny_model), "--device", "cpu", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert [row["model"] for row in figures["models"]] == [varied_model.name, tiny_model.name]
    phases = ("cpu_load_s", "move_s", "warmup_first_s", "warmup_second_s")
    assert all(row[phase] >= 0 for row in figures["models"] for phase in phases)
    assert figures["module_loading"] == "EAGER" and figures["cuda_start_s"] == 0.0
    assert figures["peak_rss_mb"] > 0
    assert "CUDA_MODULE_LOADING EAGER:" in capsys.readouterr().out


def test_warmup_probe_warms_a_stand_in_first_and_times_passes_over_data(
    tmp_path, varied_model, tiny_model, capsys
):
    """--stand-in: a stand-in of the first model is warmed up first, and timed; --data: each
    model runs over the file's texts twice, both timed."""
    from warmup_probe import main

    data = write_dataset(tmp_path / "d.parquet", n=30)
    out = tmp_path / "warmup.json"
    models = [str(varied_model), str(tiny_model)]
    assert (
        main([*models, "--device", "cpu", "--stand-in", "--data", str(data), "--json", str(out)])
        == 0
    )
    figures = json.loads(out.read_text())
    assert figures["stand_in_s"] > 0
    passes = ("inference_first_s", "inference_second_s")
    assert all(row[phase] > 0 for row in figures["models"] for phase in passes)
    printed = capsys.readouterr().out
    assert "inference 1st s" in printed and "stand-in warm-up not asked" not in printed


def test_the_main_threads_split_and_its_loop_alone_time_an_engine_as_it_predicts(varied_model):
    """bench/compare_loops.py's main-thread figures (``--timeline``), on the CPU with the
    engine's overlap on: the split adds up to the run, and the loop alone gets its chunks
    tokenized beforehand (no tokenizer call while it runs), predicts the same and leaves the
    engine as it was."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from compare_loops import main_loop_alone, main_thread_split
    from glueperf import engine as module

    tokenizer = AutoTokenizer.from_pretrained(varied_model)
    model = AutoModelForSequenceClassification.from_pretrained(varied_model).eval()
    engine = module.Engine(model, tokenizer, "cpu", module.Batching(), overlap=True)
    texts = make_sentences(300)
    expected = engine.run(texts).predictions

    split = main_thread_split(lambda: engine.run(texts))
    parts = ("waited_for_tokens_s", "convert_s", "forward_host_s", "rest_s")
    assert sum(split[part] for part in parts) == pytest.approx(split["run_s"])
    assert split["convert_s"] > 0 and split["forward_host_s"] > 0 and split["tokenize_s"] > 0

    encode, calls, runs = module.ChunkTokenizer.encode, [], []

    def counted(self, *args):
        calls.append(len(args[0]))
        return encode(self, *args)

    def run():
        before = len(calls)
        runs.append(engine.run(texts).predictions)
        return len(calls) - before

    module.ChunkTokenizer.encode = counted
    try:
        seconds = main_loop_alone(
            lambda: runs.append(run()), tokenizer, texts, None, module.Batching()
        )
    finally:
        module.ChunkTokenizer.encode = encode
    assert seconds > 0 and sum(calls) == len(texts)  # every text encoded once, beforehand
    np.testing.assert_array_equal(runs[0], expected)
    assert runs[1] == 0  # no tokenizer call during the run
    assert module.encoded_chunks.__module__ == "glueperf.engine"
    assert engine.run(texts[:5]).predictions.shape == (5,)
