"""glueperf.aggregate: one-row metrics files -> the report table model_performance.csv."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from glueperf import GlueperfError
from glueperf.aggregate import (
    COVERAGE,
    CROSS_TASK,
    GLUE_AVERAGE,
    agreement,
    glue_summary,
    is_cross_task,
    performance_table,
    read_metrics,
    read_performance_table,
)

REPORT_COLUMNS = [
    "Dataset",
    "Task",
    "Inference Time (seconds)",
    "Memory Usage (MB)",
    "Accuracy (%)",
]


def metrics_row(model: str, dataset: str, number: int, labeled: bool = True) -> dict:
    """A metrics row as evaluate_model writes it (a subset of its fields), distinct values."""
    return {
        "model": model,
        "dataset": dataset,
        "n_rows": 100 + number,
        "n_labeled": 100 + number if labeled else 0,
        "correct": 50 + number if labeled else math.nan,
        "accuracy_pct": 50.0 + number if labeled else math.nan,
        "mcc": 0.1 * number if labeled else math.nan,
        "inference_time_s": 1.5 + number,
        "peak_rss_mb": 400.0 + number,
        "device": "cpu",
    }


def write_rows(path, rows) -> str:
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


@pytest.fixture
def metrics_files(tmp_path):
    cases = [
        ("m1", "sst2", True),
        ("m1", "test", False),
        ("m2", "sst2", True),
        ("m2", "cola", True),
    ]
    rows = [metrics_row(m, d, i, labeled) for i, (m, d, labeled) in enumerate(cases)]
    paths = [
        write_rows(tmp_path / f"{m}-{d}.csv", [row])
        for (m, d, _), row in zip(cases, rows, strict=True)
    ]
    return paths, rows


def test_first_five_columns_are_the_reports(metrics_files):
    paths, _ = metrics_files
    table = performance_table(read_metrics(paths))
    assert list(table.columns[:5]) == REPORT_COLUMNS


def test_one_row_per_input_in_input_order_with_values_carried_over(metrics_files):
    paths, rows = metrics_files
    tasks = {"sst2": "Sentiment analysis", "cola": "Linguistic acceptability"}
    table = performance_table(read_metrics(paths), tasks)
    assert len(table) == len(paths)
    expected = pd.DataFrame(rows)
    assert table["Model"].tolist() == expected["model"].tolist()
    assert table["Dataset"].tolist() == expected["dataset"].tolist()
    # The Task label comes from the config (display only), "" for a dataset without one.
    assert table["Task"].tolist() == [tasks.get(d, "") for d in expected["dataset"]]
    assert table["Inference Time (seconds)"].tolist() == expected["inference_time_s"].tolist()
    assert table["Memory Usage (MB)"].tolist() == expected["peak_rss_mb"].tolist()
    pd.testing.assert_series_equal(
        table["Accuracy (%)"], expected["accuracy_pct"], check_names=False
    )


def test_no_field_is_lost_or_duplicated(metrics_files):
    paths, rows = metrics_files
    table = performance_table(read_metrics(paths))
    renamed = {"dataset", "task", "inference_time_s", "peak_rss_mb", "accuracy_pct", "model"}
    assert set(rows[0]) - renamed <= set(table.columns)
    assert not renamed & set(table.columns)
    assert len(set(table.columns)) == len(table.columns)
    assert table["mcc"].tolist()[2:] == pytest.approx([0.2, 0.3])


def test_unlabeled_accuracy_stays_empty(metrics_files, tmp_path):
    paths, _ = metrics_files
    table = performance_table(read_metrics(paths))
    assert math.isnan(table.loc[1, "Accuracy (%)"])
    table.to_csv(tmp_path / "out.csv", index=False)
    line = (tmp_path / "out.csv").read_text().splitlines()[2]  # header, m1/sst2, m1/test
    assert line.split(",")[4] == ""  # empty, not 0


# A metrics row with full-precision floats, as evaluate_model writes them, and what the table
# shows of each field.
UNROUNDED = {
    "inference_time_s": (7.3179497349999565, "7.318"),
    "startup_s": (2.815716505050659, "2.816"),
    "peak_rss_mb": (786.68359375, "786.7"),
    "gpu_peak_reserved_mb": (1004.000001, "1004.0"),
    "accuracy_pct": (89.3348623853211, "89.33"),
    "truncated_pct": (0.0049999, "0.0"),
    "score": (79.24775631645693, "79.25"),
    "score_ci_low": (75.11409277434376, "75.11"),
    "mcc": (0.38380110308209325, "0.3838"),
    "pearson": (-0.123456789, "-0.1235"),
    "throughput_eps": (96.56499487485671, "96.6"),
    "n_rows": (872, "872"),
    "batch_tokens": (16384, "16384"),
    "gpu_index": (3, "3"),
    "model_source": ("/models/m-1.5", "/models/m-1.5"),
}


def test_the_table_rounds_each_number_to_what_it_can_mean(tmp_path):
    row = {"model": "m", "dataset": "d", **{k: value for k, (value, _) in UNROUNDED.items()}}
    path = write_rows(tmp_path / "metrics.csv", [row])
    performance_table(read_metrics([path])).to_csv(tmp_path / "table.csv", index=False)
    # As a person reads the file: the CSV text, each column under its (renamed) header.
    header, line = (tmp_path / "table.csv").read_text().splitlines()
    written = dict(zip(header.split(","), line.split(","), strict=True))
    shown = {"inference_time_s": "Inference Time (seconds)", "peak_rss_mb": "Memory Usage (MB)"}
    shown |= {"accuracy_pct": "Accuracy (%)", "score": "Score"}
    for field, (_, expected) in UNROUNDED.items():
        assert written[shown.get(field, field)] == expected, field
    # The metrics file itself keeps every digit.
    assert read_metrics([path]).loc[0, "inference_time_s"] == 7.3179497349999565


@pytest.mark.parametrize("n_rows", [0, 2])
def test_a_metrics_file_must_hold_exactly_one_row(metrics_files, tmp_path, n_rows):
    paths, _ = metrics_files
    bad = tmp_path / "bad.csv"
    pd.DataFrame([metrics_row("m3", "x", i) for i in range(2)]).head(n_rows).to_csv(
        bad, index=False
    )
    with pytest.raises(GlueperfError) as caught:
        read_metrics([*paths, str(bad)])
    assert str(bad) in str(caught.value)
    assert f"found {n_rows}" in str(caught.value)


def test_no_metrics_files_is_an_error():
    with pytest.raises(GlueperfError, match="no metrics files"):
        read_metrics([])


@pytest.mark.parametrize("name", ["NA", "null", "None", "nan", "2e5", "007"])
def test_names_that_look_like_missing_values_or_numbers_stay_names(tmp_path, name):
    # The config schema allows these names; pandas' defaults would read them as NaN or numbers.
    path = write_rows(tmp_path / "m.csv", [metrics_row(name, name, 0)])
    table = performance_table(read_metrics([path]), {name: "N/A"})
    assert table.loc[0, ["Model", "Dataset", "Task"]].tolist() == [name, name, "N/A"]
    assert table.loc[0, "Accuracy (%)"] == 50.0  # numbers are still numbers


MATCHED = "by name: not_equivalent->not_equivalent, equivalent->equivalent"
CROSSED = "label_map: not_equivalent->not_entailment, equivalent->entailment"


def glue_table(rows) -> pd.DataFrame:
    """A performance table of (family, dataset, glue_task, score[, label_mapping]) rows, as
    performance_table makes it (cross_task from label_mapping)."""
    metrics = pd.DataFrame(
        [
            {
                "model": f"{family}-{dataset}",
                "dataset": dataset,
                "glue_task": task,
                "score": score,
                "label_mapping": mapping[0] if mapping else MATCHED,
            }
            for family, dataset, task, score, *mapping in rows
        ]
    )
    families = {f"{family}-{dataset}": family for family, dataset, *_ in rows}
    return performance_table(metrics, families=families)


def test_the_glue_summary_has_a_row_per_family_and_a_column_per_glue_dataset():
    table = glue_table(
        [
            ("bert", "sst2-validation", "sst2", 90.0),
            ("bert", "mnli-m", "mnli", 80.0),
            ("bert", "mnli-mm", "mnli", 82.0),
            ("bert", "cola-validation", "cola", 50.0),
            ("bert", "own-data", "", 10.0),  # not a GLUE dataset: not in the summary
            ("bert", "sst2-test", "sst2", math.nan),  # unlabeled: no score
            ("tiny", "sst2-validation", "sst2", 70.0),
            ("tiny", "rte-validation", "rte", 60.0),
        ]
    )
    summary = glue_summary(table)
    assert summary["Model"].tolist() == ["bert", "tiny"]
    # GLUE's task order, whatever the order of the config
    assert list(summary.columns) == [
        "Model",
        "CoLA (cola-validation)",
        "SST-2 (sst2-validation)",
        "MNLI (mnli-m)",
        "MNLI (mnli-mm)",
        "RTE (rte-validation)",
        GLUE_AVERAGE,
        COVERAGE,
    ]
    bert = summary.iloc[0]
    # MNLI counts once, as the mean of matched and mismatched: (50 + 90 + 81) / 3
    assert bert[GLUE_AVERAGE] == round((50 + 90 + 81) / 3, 1) and bert[COVERAGE] == "3 of 9"
    tiny = summary.iloc[1]
    assert tiny[GLUE_AVERAGE] == 65.0 and tiny[COVERAGE] == "2 of 9"
    assert math.isnan(tiny["CoLA (cola-validation)"])


def test_the_glue_average_counts_only_task_matched_evaluations():
    """Issue 22, item 5: the MRPC model scored on RTE through a label_map is no RTE score of
    it; it is neither averaged into its GLUE average nor shown as its RTE score."""
    table = glue_table(
        [
            ("minilm", "mrpc-validation", "mrpc", 80.0),
            ("minilm", "sst2-validation", "sst2", 90.0),
            ("minilm", "rte-validation", "rte", 40.0, CROSSED),
        ]
    )
    (row,) = glue_summary(table).to_dict("records")
    assert row == {
        "Model": "minilm",
        "SST-2 (sst2-validation)": 90.0,
        "MRPC (mrpc-validation)": 80.0,
        GLUE_AVERAGE: 85.0,  # not (80 + 90 + 40) / 3
        COVERAGE: "2 of 9",
    }


def test_a_family_keeps_the_task_matched_score_of_a_task_another_member_ran_cross_task():
    table = glue_table(
        [
            ("bert", "mrpc-validation", "mrpc", 80.0),
            ("bert", "rte-validation", "rte", 70.0),  # the RTE fine-tune
            ("bert", "rte-validation", "rte", 40.0, CROSSED),  # the MRPC fine-tune on RTE
        ]
    )
    (row,) = glue_summary(table).to_dict("records")
    assert row["RTE (rte-validation)"] == 70.0 and row[GLUE_AVERAGE] == 75.0


def test_a_model_run_on_one_task_has_no_glue_average_but_its_coverage():
    """One task's "average" would be that task's score, read as a GLUE score."""
    table = glue_table(
        [
            ("minilm-sst2", "sst2-validation", "sst2", 89.3),
            ("minilm-mrpc", "mrpc-validation", "mrpc", 79.2),
            ("minilm-mrpc", "rte-validation", "rte", 48.7, CROSSED),
        ]
    )
    summary = glue_summary(table)
    assert summary[COVERAGE].tolist() == ["1 of 9", "1 of 9"]
    assert summary[GLUE_AVERAGE].isna().all()
    assert "RTE (rte-validation)" not in summary.columns


def test_no_task_matched_glue_evaluation_gives_an_empty_summary(tmp_path):
    table = glue_table([("minilm", "rte-validation", "rte", 48.7, CROSSED)])
    summary = glue_summary(table)
    assert len(summary) == 0 and list(summary.columns) == ["Model", GLUE_AVERAGE, COVERAGE]
    summary.to_csv(tmp_path / "summary.csv", index=False)  # a header the plots can read
    assert (tmp_path / "summary.csv").read_text() == f"Model,{GLUE_AVERAGE},{COVERAGE}\n"


@pytest.mark.parametrize(
    ("mapping", "crossed"),
    [
        (CROSSED, True),
        ("label_map: NEGATIVE->unacceptable, POSITIVE->acceptable", True),
        (MATCHED, False),
        ("by id: LABEL_0->negative, LABEL_1->positive", False),
        ("", False),  # regression: no classes
        (math.nan, False),
    ],
)
def test_cross_task_is_a_label_map_mapping(mapping, crossed):
    assert is_cross_task(mapping) is crossed


def test_the_table_says_which_rows_are_cross_task_right_after_label_mapping(tmp_path):
    table = glue_table(
        [("m", "mrpc-validation", "mrpc", 80.0), ("m", "rte-validation", "rte", 40.0, CROSSED)]
    )
    columns = list(table.columns)
    assert columns[columns.index("label_mapping") + 1] == CROSS_TASK
    table.to_csv(tmp_path / "table.csv", index=False)
    again = read_performance_table(tmp_path / "table.csv")
    assert again[CROSS_TASK].tolist() == [False, True]


def test_a_model_without_a_family_is_its_own_row(metrics_files):
    paths, _ = metrics_files
    table = performance_table(read_metrics(paths), families={"m2": "bert-base"})
    assert table["family"].tolist() == ["m1", "m1", "bert-base", "bert-base"]


# --- agreement with float32 ----------------------------------------------------------------------


def classes(predictions) -> pd.DataFrame:
    return pd.DataFrame({"idx": range(len(predictions)), "prediction": predictions})


def scores(values) -> pd.DataFrame:
    return pd.DataFrame({"idx": range(len(values)), "score": values})


def compared(rows, predictions: dict) -> tuple[pd.DataFrame, list]:
    """agreement() of metrics rows (model, dtype, dataset, score) against hand-made predictions
    (model, dtype, dataset) -> table, and the predictions it read."""
    metrics = pd.DataFrame(rows, columns=["model", "dtype", "dataset", "score"])
    read = []

    def reader(*key):
        read.append(key)
        return predictions[key]

    return agreement(metrics, reader), read


def test_agreement_is_the_share_of_rows_predicted_alike_and_the_score_difference():
    rows = [("m", "float32", "d", 80.0), ("m", "bfloat16", "d", 77.5), ("m", "float16", "d", 80.0)]
    predictions = {
        ("m", "float32", "d"): classes([0, 1, 1, 0]),
        ("m", "bfloat16", "d"): classes([0, 1, 0, 0]),  # one row of four differs
        ("m", "float16", "d"): classes([0, 1, 1, 0]),
    }
    found, _ = compared(rows, predictions)
    assert found["agreement_pct"].tolist()[1:] == [75.0, 100.0]
    assert found["score_diff"].tolist()[1:] == [-2.5, 0.0]
    assert found.iloc[0].isna().all()  # float32 itself: nothing to compare
    assert found["max_abs_diff"].isna().all()  # classification


def test_regression_agreement_is_the_largest_difference_of_the_scores():
    rows = [("r", "bfloat16", "stsb", 88.0), ("r", "float32", "stsb", 88.25)]
    predictions = {
        ("r", "float32", "stsb"): scores([1.0, 2.5, 4.0]),
        ("r", "bfloat16", "stsb"): scores([1.0, 2.25, 4.125]),
    }
    found, _ = compared(rows, predictions)
    assert found.loc[0, "max_abs_diff"] == 0.25 and found.loc[0, "score_diff"] == -0.25
    assert math.isnan(found.loc[0, "agreement_pct"]) and found.iloc[1].isna().all()


def test_without_a_float32_sibling_nothing_is_compared_or_read():
    rows = [
        ("m", "bfloat16", "d", 80.0),
        ("m", "float32", "other", 70.0),
        ("n", "float32", "d", 1.0),
    ]
    found, read = compared(rows, {})
    assert found.isna().all().all() and read == []


def test_predictions_of_other_rows_are_refused_naming_the_evaluations():
    rows = [("m", "float32", "d", 80.0), ("m", "bfloat16", "d", 80.0)]
    predictions = {("m", "float32", "d"): classes([0, 1]), ("m", "bfloat16", "d"): classes([0])}
    with pytest.raises(GlueperfError, match=r"m \(bfloat16 against float32\) on d"):
        compared(rows, predictions)


def test_the_table_holds_the_agreement_columns_and_a_precision_is_never_averaged():
    rows = [
        {**metrics_row("m", "sst2", 1), "dtype": dtype, "glue_task": "sst2", "score": score}
        for dtype, score in (("float32", 90.0), ("bfloat16", 80.0))
    ]
    agreed = pd.DataFrame({"agreement_pct": [math.nan, 97.5]})
    agreed["max_abs_diff"], agreed["score_diff"] = math.nan, [math.nan, -10.0]
    table = performance_table(pd.DataFrame(rows), agreement=agreed)
    assert table["agreement_pct"].tolist()[1] == 97.5 and table["score_diff"].tolist()[1] == -10
    summary = glue_summary(table)
    assert summary["Model"].tolist() == ["m · float32", "m · bfloat16"]
    assert summary.iloc[:, 1].tolist() == [90.0, 80.0]
