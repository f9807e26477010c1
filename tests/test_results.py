"""glueperf.results: every column of the results defined once, in order, with its unit, meaning and
rounding; the metrics row assembled from typed groups and checked; docs/columns.md generated from
the definitions."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from glueperf import results
from glueperf.aggregate import COUNT_COLUMNS, NAME_COLUMNS, performance_table
from glueperf.metrics import METRICS, task_scores


def filled(kind: type[results.Group], **values) -> results.Group:
    """A group with a stand-in value in every column (as a producer fills it)."""
    stand_in = {results.NAME: "x", results.TEXT: "", results.COUNT: 1, results.FLAG: False}
    made = {c.name: stand_in.get(c.kind, 1.5) for c in kind.columns()}
    return kind(**{**made, **values})


def every_row_group() -> list[results.Group]:
    return [filled(kind) for kind in results.ROW_GROUPS]


def test_every_column_is_defined_once_with_a_unit_kind_and_meaning():
    names = [col.name for kind in results.GROUPS for col in kind.columns()]
    assert len(names) == len(set(names)) == len(results.COLUMNS)
    assert list(results.COLUMNS) == names  # the files' order is the groups' order
    for col in results.COLUMNS.values():
        assert col.kind in results.KINDS and col.meaning.strip(), col
        if col.decimals is not None:
            assert col.kind == results.NUMBER and col.unit, col


def test_a_second_definition_of_a_column_is_refused(monkeypatch):
    @results.group("Twice")
    class Again(results.Group):
        score: float = results.column("x 100", "the score again")

    monkeypatch.setattr(results, "GROUPS", (*results.GROUPS, Again))
    with pytest.raises(ValueError, match="column score is defined twice"):
        results._columns()


def test_the_row_is_every_row_group_once_in_order():
    row = results.metrics_row(*reversed(every_row_group()))  # given in any order
    assert list(row) == list(results.ROW_COLUMNS)
    assert list(row)[:4] == ["model", "dtype", "dataset", "glue_task"]
    table_only = {c.name for c in results.COLUMNS.values() if not c.in_row}
    assert table_only == {"cross_task", "task", "family", *results.Agreement.names()}
    assert not table_only & set(row)


def test_a_group_missing_twice_or_not_of_the_row_is_refused():
    groups = every_row_group()
    with pytest.raises(TypeError, match="lacks the groups Latency"):
        results.metrics_row(*[g for g in groups if not isinstance(g, results.Latency)])
    with pytest.raises(TypeError, match="Energy is given twice"):
        results.metrics_row(*groups, filled(results.Energy))
    with pytest.raises(TypeError, match="Agreement is not a group of the metrics row"):
        results.metrics_row(*groups, filled(results.Agreement))


def test_a_producer_missing_a_field_or_giving_an_unknown_one_fails():
    complete = {c.name: 1.0 for c in results.Timing.columns()}
    with pytest.raises(TypeError, match="startup_s"):
        results.Timing(**{k: v for k, v in complete.items() if k != "startup_s"})
    with pytest.raises(TypeError, match="start_s"):
        results.Timing(**complete, start_s=1.0)
    with pytest.raises(TypeError):  # by name only: no column taken for another by position
        results.Memory(1.0, 2.0, 3.0)


def old_decimals(name: str) -> int | None:
    """What model_performance.csv kept of each column before the columns were defined here:
    by name, else by unit suffix (the rule the definitions must keep)."""
    if name in ("score", "score_ci_low", "score_ci_high"):
        return 2
    if name in ("mcc", "macro_f1", "f1", "pearson", "spearman"):
        return 4
    for suffix, places in {"_s": 3, "_mb": 1, "_pct": 2, "_eps": 1}.items():
        if name.endswith(suffix):
            return places
    return None


# The columns that came with latency, energy and agreement, and their decimals.
NEW_DECIMALS = {
    **dict.fromkeys(("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_max_ms"), 2),
    **{"energy_j": 2, "energy_j_per_1k": 2, "mean_power_w": 1, "max_abs_diff": 4},
    **{"score_diff": 2},
}


def test_the_decimals_of_every_column_are_those_the_table_kept():
    for name in results.COLUMNS:
        expected = NEW_DECIMALS.get(name, old_decimals(name))
        assert results.decimals(name) == expected, name
    assert results.decimals("not_a_column") is None


def test_the_table_rounds_by_the_definitions():
    row = {"model": "m", "dataset": "d", "latency_p99_ms": 12.34567, "mean_power_w": 301.26}
    row |= {"energy_j": 1.23456, "made_up_s": 1.23456}  # a column defined nowhere: as it is
    table = performance_table(pd.DataFrame([row]))
    assert table.loc[0, ["latency_p99_ms", "mean_power_w", "energy_j"]].tolist() == [
        12.35,
        301.3,
        1.23,
    ]
    assert table.loc[0, "made_up_s"] == 1.23456
    assert list(table.columns)[-1] == "made_up_s"  # unknown columns last


def test_the_tables_first_columns_and_names_come_from_the_definitions():
    table = performance_table(pd.DataFrame([{"model": "m", "dtype": "bfloat16", "dataset": "d"}]))
    assert list(table.columns) == [
        *("Dataset", "Task", "Model", "dtype"),  # the first columns, as named in the table
        *("cross_task", "family", "agreement_pct", "max_abs_diff", "score_diff"),
    ]
    assert results.table_name("inference_time_s") == "Inference Time (seconds)"
    assert results.table_name("peak_rss_mb") == "Memory Usage (MB)"
    assert "model" in NAME_COLUMNS and "n_rows" in COUNT_COLUMNS and "gpu_index" in COUNT_COLUMNS


def test_every_metric_has_a_quality_column_and_task_scores_fills_the_group():
    assert {name for name in METRICS if name != "accuracy"} <= set(results.Quality.names())
    labels = np.array([0, 1, 1, 0, 1])
    quality = results.Quality(**task_scores(labels, labels, ("mcc",), 2))
    assert quality.mcc == 1.0 and math.isnan(quality.pearson)
    scores = np.linspace(0, 5, 5)
    quality = results.Quality(**task_scores(scores, scores, ("pearson", "spearman"), None))
    assert quality.score == pytest.approx(100.0) and math.isnan(quality.accuracy_pct)


def test_a_models_precisions_are_told_apart_only_where_it_has_several():
    assert results.evaluation_labels(["a", "b"], ["float32", "bfloat16"]) == ["a", "b"]
    assert results.evaluation_labels(["a", "a", "b"], ["float32", "bfloat16", "float32"]) == [
        "a · float32",
        "a · bfloat16",
        "b · float32",
    ]


def test_groups_carry_their_units():
    assert {c.unit for c in results.Latency.columns() if c.name.endswith("_ms")} == {"ms"}
    assert {c.unit for c in results.Memory.columns()} == {"MiB"}
    assert [f.name for f in fields(results.Energy)][:3] == [
        "energy_j",
        "energy_j_per_1k",
        "mean_power_w",
    ]
    assert results.COLUMNS["mean_power_w"].unit == "W"


def test_the_column_reference_is_generated_from_the_definitions():
    committed = (REPO / results.DOCS_FILE).read_text(encoding="utf-8")
    assert committed == results.column_reference(), (
        f"{results.DOCS_FILE} differs from the columns defined in scripts/glueperf/results.py: "
        f"run `{results.DOCS_COMMAND}` and commit it"
    )


def test_the_column_reference_lists_every_column_with_its_unit_and_meaning():
    reference = results.column_reference()
    for col in results.COLUMNS.values():
        (line,) = [line for line in reference.splitlines() if line.startswith(f"| `{col.name}`")]
        assert col.meaning in line and (col.unit in line)
    for title in {kind.title for kind in results.GROUPS}:
        assert f"\n## {title}\n" in reference
