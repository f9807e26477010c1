"""glueperf.validation: the summary of a dataset file, and one clear error per kind of bad file."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import make_sentences, write_dataset
from glueperf import GlueperfError
from glueperf.tasks import DatasetSpec
from glueperf.validation import DatasetError, load_dataset, summarize


def write_table(path, **columns) -> str:
    """A parquet file with exactly the given pyarrow arrays as columns."""
    pq.write_table(pa.table(columns), path)
    return str(path)


def sentences(n: int) -> pa.Array:
    return pa.array(make_sentences(n, seed=3), pa.string())


def labels(values) -> pa.Array:
    return pa.array(values, pa.int64())


def raises_dataset_error(
    path, column=None, rows=None, text_column="sentence", label_column="label"
):
    """Run summarize on a bad file; check the error names the file, column and rows."""
    with pytest.raises(DatasetError) as caught:
        summarize(path, DatasetSpec(text_columns=(text_column,), label_column=label_column))
    message = str(caught.value)
    assert str(path) in message
    if column is not None:
        assert f"'{column}'" in message
    if rows is not None:
        assert f"rows {', '.join(map(str, rows))}" in message
        assert list(caught.value.rows) == rows
    assert isinstance(caught.value, GlueperfError)  # scripts turn it into one clear line
    return message


# --- summarize ---------------------------------------------------------------------------------


def test_summarize_counts_rows_labels_and_hashes_the_file(tmp_path):
    values = [0, 1, 1, -1, 2, 1, -1, 0, 1]
    path = write_table(
        tmp_path / "d.parquet",
        sentence=sentences(len(values)),
        label=labels(values),
        idx=pa.array(np.arange(len(values)), pa.int32()),
    )
    summary = summarize(path)
    assert summary["n_rows"] == len(values)
    assert summary["n_labeled"] == sum(v != -1 for v in values)
    expected_counts = pd.Series(values).value_counts()
    assert summary["label_counts"] == {str(k): int(n) for k, n in expected_counts.items()}
    with open(path, "rb") as stream:
        assert summary["sha256"] == hashlib.sha256(stream.read()).hexdigest()
    assert summary["path"] == path
    assert summary["has_idx"] is True
    assert summary["text_columns"] == ["sentence"] and summary["label_column"] == "label"


def test_summarize_uses_the_configured_columns_and_works_without_idx(tmp_path):
    path = write_table(
        tmp_path / "d.parquet",
        text=sentences(4),
        target=labels([-1, -1, 3, 3]),
    )
    summary = summarize(path, DatasetSpec(text_columns=("text",), label_column="target"))
    assert summary["n_rows"] == 4
    assert summary["n_labeled"] == 2
    assert summary["label_counts"] == {"-1": 2, "3": 2}
    assert summary["has_idx"] is False


def test_summarize_of_an_unlabeled_file(tmp_path):
    path = write_dataset(tmp_path / "test.parquet", n=7, labeled=False)
    summary = summarize(path)
    assert summary["n_rows"] == 7
    assert summary["n_labeled"] == 0
    assert summary["label_counts"] == {"-1": 7}


def test_sha256_changes_with_content(tmp_path):
    first = summarize(write_dataset(tmp_path / "a.parquet", n=5, seed=0))
    second = summarize(write_dataset(tmp_path / "b.parquet", n=5, seed=1))
    assert first["sha256"] != second["sha256"]


def test_load_dataset_returns_texts_labels_and_idx_in_file_order(tmp_path):
    texts = make_sentences(6, seed=5)
    path = write_table(
        tmp_path / "d.parquet",
        sentence=pa.array(texts, pa.string()),
        label=labels([1, 0, -1, 1, 0, 0]),
        idx=pa.array([10, 3, 7, 0, 1, 2], pa.int32()),
    )
    data = load_dataset(path)
    assert data.texts == texts
    assert data.pairs is None
    assert data.labels.tolist() == [1, 0, -1, 1, 0, 0]
    assert data.idx.tolist() == [10, 3, 7, 0, 1, 2]


def test_load_dataset_numbers_rows_when_there_is_no_idx(tmp_path):
    path = write_table(tmp_path / "d.parquet", sentence=sentences(3), label=labels([0, 1, 0]))
    assert load_dataset(path).idx.tolist() == [0, 1, 2]


# --- each check raises DatasetError naming the file, the column and the rows ----------------


@pytest.mark.parametrize("missing", ["sentence", "label"])
def test_missing_column(tmp_path, missing):
    columns = {"sentence": sentences(3), "label": labels([0, 1, 0])}
    del columns[missing]
    path = write_table(tmp_path / "d.parquet", **columns)
    message = raises_dataset_error(path)
    assert f"'{missing}'" in message and "missing" in message


def test_missing_configured_column_is_named(tmp_path):
    path = write_dataset(tmp_path / "d.parquet", n=3)
    message = raises_dataset_error(path, text_column="text")
    assert "'text'" in message and "text_column" in message


def test_zero_rows(tmp_path):
    path = write_table(tmp_path / "d.parquet", sentence=sentences(0), label=labels([]))
    message = raises_dataset_error(path)
    assert "no rows" in message


def test_null_text(tmp_path):
    texts = make_sentences(6)
    texts[2] = texts[5] = None
    path = write_table(
        tmp_path / "d.parquet", sentence=pa.array(texts, pa.string()), label=labels([0] * 6)
    )
    message = raises_dataset_error(path, column="sentence", rows=[2, 5])
    assert "null" in message


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_empty_or_whitespace_text(tmp_path, blank):
    texts = make_sentences(5)
    texts[1] = blank
    path = write_table(
        tmp_path / "d.parquet", sentence=pa.array(texts, pa.string()), label=labels([0] * 5)
    )
    message = raises_dataset_error(path, column="sentence", rows=[1])
    assert "empty" in message


def test_non_string_text(tmp_path):
    path = write_table(
        tmp_path / "d.parquet", sentence=pa.array([1, 2, 3], pa.int64()), label=labels([0, 1, 0])
    )
    message = raises_dataset_error(path, column="sentence")
    assert "strings" in message and "int64" in message


@pytest.mark.parametrize(
    "array",
    [pa.array([0.0, 1.0, 1.0], pa.float64()), pa.array(["0", "1", "1"], pa.string())],
    ids=["float", "string"],
)
def test_non_integer_labels(tmp_path, array):
    path = write_table(tmp_path / "d.parquet", sentence=sentences(3), label=array)
    message = raises_dataset_error(path, column="label")
    assert "integers" in message and str(array.type) in message


def test_null_labels(tmp_path):
    path = write_table(
        tmp_path / "d.parquet", sentence=sentences(4), label=labels([0, None, 1, None])
    )
    message = raises_dataset_error(path, column="label", rows=[1, 3])
    assert "null" in message


def test_labels_below_minus_one(tmp_path):
    path = write_table(
        tmp_path / "d.parquet", sentence=sentences(5), label=labels([0, -2, 1, -1, -7])
    )
    message = raises_dataset_error(path, column="label", rows=[1, 4])
    assert "-2" in message and "-7" in message  # the offending values are shown


def test_duplicate_idx(tmp_path):
    path = write_table(
        tmp_path / "d.parquet",
        sentence=sentences(5),
        label=labels([0] * 5),
        idx=pa.array([0, 1, 2, 1, 0], pa.int32()),
    )
    message = raises_dataset_error(path, column="idx", rows=[0, 1, 3, 4])
    assert "unique" in message


def test_long_row_lists_are_shortened(tmp_path):
    texts = [""] * 25 + ["fine"]
    path = write_table(
        tmp_path / "d.parquet", sentence=pa.array(texts, pa.string()), label=labels([0] * 26)
    )
    message = raises_dataset_error(path, column="sentence")
    assert re.search(r"rows 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, \.\.\. and 15 more", message)


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "d.parquet"
    path.write_text("sentence,label\nhello,1\n")
    message = raises_dataset_error(path)
    assert "parquet" in message


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "d.parquet"
    message = raises_dataset_error(path)
    assert "not found" in message


def test_load_dataset_runs_the_same_checks(tmp_path):
    path = write_table(tmp_path / "d.parquet", sentence=sentences(3), label=labels([0, -3, 1]))
    with pytest.raises(DatasetError, match=r"column 'label'.*rows 1"):
        load_dataset(path)


def test_numbers_of_every_numeric_arrow_type_are_read_without_pandas():
    """Labels, ids and scores come out of the arrow buffers in their own numeric type, chunks
    and slices included, with pandas not importable: pyarrow 25's ``to_pandas_dtype()`` and
    ``to_numpy()`` import it, half a second of an evaluation's first read on the GPU hosts."""
    import subprocess
    import sys

    from conftest import REPO

    probe = f"""
import sys
sys.modules["pandas"] = None  # any import of pandas now fails
sys.path.insert(0, {str(REPO / "scripts")!r})
import numpy as np, pyarrow as pa
from glueperf.validation import numbers
for kind in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
             "float16", "float32", "float64"):
    values = np.array([3, 1, 2, 7, 5], dtype=kind)
    buffers = [None, pa.py_buffer(values)]
    arrow = pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), 5, buffers)
    column = pa.chunked_array([arrow.slice(0, 2), arrow.slice(2)])
    got = numbers(column)
    assert got.dtype == np.dtype(kind) and got.tolist() == values.tolist(), (kind, got)
print("ok")
"""
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
