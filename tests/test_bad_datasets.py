"""Bad datasets at the validator: hypothesis fuzzes frames (text, label and idx columns of every
kind) that must be accepted and counted right or refused with a DatasetError naming the file;
a directory, a column named twice and unsigned labels beyond int64 are refused. Each fault as
the pipeline reports it (file, column, rows, on the console and in the log) is in
test_bad_input_pipeline.py."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bad_input import ints, texts, write_table
from glueperf.validation import DatasetError, load_dataset, read_table, summarize, validate_table

# Texts with known visibility: (text, has something to read).
TEXT_SAMPLES = [
    ("good movie", True),
    ("電影", True),
    ("😀", True),
    ("x\u200by", True),
    ("", False),
    (" ", False),
    ("\t\n", False),
    ("\u200b", False),
    ("\xa0\u200d", False),
]


@st.composite
def text_columns(draw, n):
    kind = draw(st.sampled_from(["str"] * 6 + ["category", "int", "float", "bool", "null"]))
    if kind in ("str", "category"):
        visible = st.sampled_from([t for t in TEXT_SAMPLES if t[1]]) | st.builds(
            lambda s: (f"w{s}", True), st.text(st.characters(exclude_categories=["Cs"]))
        )
        # Half the columns hold only readable texts, so that many frames are good ones.
        samples = visible if draw(st.booleans()) else visible | st.sampled_from(TEXT_SAMPLES)
        values = draw(st.lists(samples, min_size=n, max_size=n))
        with_nulls = draw(st.integers(0, 3)) == 0
        nulls = draw(st.lists(st.booleans(), min_size=n, max_size=n)) if with_nulls else []
        texts = [None if nulls and nulls[i] else v for i, (v, _) in enumerate(values)]
        fine = all(v is not None and values[i][1] for i, v in enumerate(texts))
        series = pd.Series(texts, dtype="category" if kind == "category" else object)
        return series, fine
    return other_column(draw, kind, n), False


def other_column(draw, kind, n):
    if kind == "int":
        return pd.Series(draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n)), dtype="int64")
    if kind == "float":
        return pd.Series(
            draw(st.lists(st.sampled_from([0.0, 1.0, 0.5, float("nan")]), min_size=n, max_size=n)),
            dtype="float64",
        )
    if kind == "bool":
        return pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    if kind == "str":
        return pd.Series(draw(st.lists(st.sampled_from(["0", "1", "a"]), min_size=n, max_size=n)))
    return pd.Series([None] * n, dtype=object)  # "null"


@st.composite
def integer_columns(draw, n, low, high, unique=False):
    """(series, all values fine) for an integer column, maybe nullable, maybe unsigned."""
    kind = draw(st.sampled_from(["int64", "int64", "int32", "uint8", "Int64", "category"]))
    if kind == "uint8":
        low = max(low, 0)
    values = draw(st.lists(st.integers(low, high), min_size=n, max_size=n, unique=unique))
    if kind == "Int64" and n and draw(st.integers(0, 3)) == 0:
        values[draw(st.integers(0, n - 1))] = None
    fine = None not in values
    return pd.Series(values, dtype=kind), fine


@st.composite
def frames(draw):
    n = draw(st.integers(0, 6))
    columns, expect_ok = {}, n > 0
    if draw(st.integers(0, 9)):  # a text column, mostly
        columns["sentence"], fine = draw(text_columns(n))
        expect_ok &= fine
    else:
        expect_ok = False
    label_kind = draw(st.sampled_from(["int"] * 8 + ["float", "str", "bool", "null", "-"]))
    if label_kind == "int":
        low = draw(st.sampled_from([-1, -1, -1, -2]))
        columns["label"], fine = draw(integer_columns(n, low, 3))
        expect_ok &= fine and all(v >= -1 for v in columns["label"].dropna())
    elif label_kind != "-":
        columns["label"] = other_column(draw, label_kind, n)
        expect_ok = False
    else:
        expect_ok = False
    idx_kind = draw(st.sampled_from(["-"] * 3 + ["unique"] * 3 + ["any", "float", "str"]))
    if idx_kind in ("unique", "any"):
        unique = idx_kind == "unique"
        columns["idx"], fine = draw(integer_columns(n, 0, 50 if unique else 2, unique))
        expect_ok &= fine and not columns["idx"].dropna().duplicated().any()
    elif idx_kind != "-":
        columns["idx"] = other_column(draw, idx_kind, n)
        expect_ok = False
    if draw(st.booleans()):
        columns["extra"] = other_column(draw, draw(st.sampled_from(["int", "str", "null"])), n)
    order = draw(st.permutations(list(columns)))
    return pd.DataFrame({name: columns[name] for name in order}, index=range(n)), expect_ok


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_fuzzed_frames_are_accepted_and_counted_right_or_refused_with_a_dataset_error(case):
    frame, expect_ok = case
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "fuzz.parquet"
        frame.to_parquet(path, index=False)
        try:
            summary = summarize(path)
            event("accepted")
        except DatasetError as error:
            event("refused")
            assert str(path) in str(error)
            assert not expect_ok, f"refused a good frame: {error}\n{frame!r}"
            return
        assert expect_ok, f"accepted a bad frame:\n{frame!r}\n{frame.dtypes}"
        labels = frame["label"].astype("int64")
        assert summary["n_rows"] == len(frame)
        assert summary["n_labeled"] == int((labels != -1).sum())
        assert summary["label_counts"] == {
            str(k): int(v) for k, v in labels.value_counts().sort_index().items()
        }
        assert summary["has_idx"] == ("idx" in frame.columns)
        data = load_dataset(path)
        texts, got_labels, idx = data.texts, data.labels, data.idx
        assert texts == frame["sentence"].astype(object).tolist()
        assert got_labels.tolist() == labels.tolist()
        expected_idx = frame["idx"].astype("int64") if "idx" in frame else range(len(frame))
        assert idx.tolist() == list(expected_idx)


def test_a_directory_or_duplicate_column_names_are_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="is a directory"):
        read_table(tmp_path)
    table = pa.Table.from_arrays(
        [texts(2), texts(2), ints([0, 1])], ["sentence", "sentence", "label"]
    )
    with pytest.raises(DatasetError, match=r"\['sentence'\] occur more than once"):
        validate_table(table, "twice.parquet")
    pq.write_table(table, tmp_path / "twice.parquet")
    with pytest.raises(DatasetError, match="sentence"):  # pyarrow refuses it as it reads
        summarize(tmp_path / "twice.parquet")


def test_unsigned_labels_beyond_int64_are_refused_not_wrapped(tmp_path):
    path = write_table(
        tmp_path / "huge.parquet",
        sentence=texts(2),
        label=pa.array([1, 2**64 - 1], pa.uint64()),
    )
    with pytest.raises(DatasetError, match=r"column 'label'.*64-bit.*rows 1"):
        summarize(path)


def test_text_that_is_not_utf8_is_a_dataset_error_naming_its_rows(tmp_path):
    """pyarrow reads a string column's bytes unchecked; decoding them failed as an unexpected
    UnicodeDecodeError, which named neither the column nor the rows."""
    raw = pa.array([b"good movie", b"bad \xff\xfe", b"fine", b"\xc3"], pa.binary())
    sentence = pa.Array.from_buffers(pa.string(), len(raw), raw.buffers())
    path = write_table(tmp_path / "latin1.parquet", sentence=sentence, label=ints([0, 1, 0, 1]))
    for check in (summarize, load_dataset):
        with pytest.raises(DatasetError) as caught:
            check(path)
        message = str(caught.value)
        assert f"{path}, column 'sentence': text is not valid UTF-8" in message
        assert "b'bad \\xff\\xfe'" in message and message.endswith("(rows 1, 3)")
