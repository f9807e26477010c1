"""Checks that a GLUE-style parquet file can be evaluated, before any model is loaded."""

from __future__ import annotations

import os
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from glueperf import NO_LABEL, GlueperfError, one_line
from glueperf.checksums import sha256_file
from glueperf.tasks import DatasetSpec, class_names, file_class_names

IDX_COLUMN = "idx"
# How many offending rows an error message lists before it says "and N more".
ROWS_SHOWN = 10
INT64_MAX = np.iinfo(np.int64).max
# Regression scores are loaded, predicted and written in float32: validation checks them in it.
SCORE_DTYPE = np.float32
SCORE_MAX = float(np.finfo(SCORE_DTYPE).max)  # for messages
# Characters that show nothing: a text made only of these and whitespace counts as empty.
INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"))
# Unicode categories that show nothing either: control (Cc) and format (Cf) characters.
SHOW_NOTHING = {"Cc", "Cf"}


class DatasetError(GlueperfError):
    """A dataset file that cannot be evaluated; the message names the file, column and rows."""

    def __init__(self, path, message, column=None, rows=None):
        where = f"{path}"
        if column is not None:
            where += f", column '{column}'"
        text = f"{where}: {message}"
        if rows is not None and len(rows):
            text += f" (rows {describe_rows(rows)})"
        super().__init__(text)
        self.path, self.column, self.rows = str(path), column, rows


def describe_rows(rows) -> str:
    """'3, 7, 12' or '3, 7, 12, ... and 40 more' for 0-based row numbers."""
    rows = [int(r) for r in rows]
    shown = ", ".join(str(r) for r in rows[:ROWS_SHOWN])
    if len(rows) > ROWS_SHOWN:
        shown += f", ... and {len(rows) - ROWS_SHOWN} more"
    return shown


def read_table(path, columns=None) -> pa.Table:
    """Read a local parquet file or raise DatasetError. A Hub file (hf://) is read from its
    fetched copy (rules/fetch.smk), never from the network."""
    if Path(path).is_dir():
        raise DatasetError(path, "is a directory, not a parquet file")
    if not Path(path).exists():
        raise DatasetError(path, "file not found (check the dataset's `path` in the config)")
    if not Path(path).is_file():  # opened, a FIFO would wait and /dev/zero never end
        raise DatasetError(path, f"is a {_file_kind(path)}, not a regular parquet file")
    try:
        # ParquetFile, not pq.read_table: that goes through pyarrow.dataset, which imports
        # pandas (a quarter of a second of every job's start-up for nothing).
        with pq.ParquetFile(path) as parquet:
            _check_unique_names(parquet.schema_arrow.names, path)
            return parquet.read(columns=columns)
    except (pa.ArrowException, OSError) as error:
        raise DatasetError(path, f"not a readable parquet file ({one_line(error)})") from error


def _file_kind(path) -> str:
    mode = os.stat(path).st_mode
    kinds = [
        (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "special file")


def _check_unique_names(names: list[str], path) -> None:
    """Checked before the data is read: pyarrow's own error for a name that occurs twice
    ("Multiple matches for FieldRef") does not say that the file is at fault."""
    duplicated = sorted({c for c in names if names.count(c) > 1})
    if duplicated:
        raise DatasetError(
            path, f"column name(s) {duplicated} occur more than once", column=duplicated[0]
        )


@dataclass
class Dataset:
    """A validated dataset file, in file order: first texts, second texts of a pair (None for
    single texts), labels (int64 class ids, or float32 scores for regression; -1 = no label)."""

    texts: list[str]
    pairs: list[str] | None
    labels: np.ndarray
    idx: np.ndarray
    label_names: tuple[str, ...] | None


def load_dataset(path, spec: DatasetSpec | None = None) -> Dataset:
    """A dataset file after every check in ``validate_table``."""
    spec = spec or DatasetSpec()
    table = validate_table(read_table(path), path, spec)
    first, *second = (table.column(c).to_pylist() for c in spec.text_columns)
    labels = numbers(table.column(spec.label_column))
    labels = labels.astype(SCORE_DTYPE if spec.regression else np.int64)
    if IDX_COLUMN in table.column_names:
        idx = numbers(table.column(IDX_COLUMN)).astype(np.int64)
    else:
        idx = np.arange(table.num_rows, dtype=np.int64)
    return Dataset(first, second[0] if second else None, labels, idx, label_names(table, spec))


def file_label_names(table: pa.Table, label_column: str) -> tuple[str, ...] | None:
    """The ClassLabel names that the Hub's parquet files carry in their ``huggingface`` schema
    metadata (as the ``datasets`` library writes them), or None."""
    return file_class_names((table.schema.metadata or {}).get(b"huggingface"), label_column)


def label_names(table: pa.Table, spec: DatasetSpec) -> tuple[str, ...] | None:
    """The dataset's class names in id order: the config's, else the file's own, else the GLUE
    task's; None for regression or when nothing names them."""
    return class_names(spec, file_label_names(table, spec.label_column))


def validate_table(table: pa.Table, path, spec: DatasetSpec | None = None) -> pa.Table:
    """Raise DatasetError for the first problem found; return the table ready to use (its
    dictionary-encoded columns, as pandas writes categoricals, decoded)."""
    spec = spec or DatasetSpec()
    _check_unique_names(table.column_names, path)
    required = [*spec.text_columns, spec.label_column]
    missing = [c for c in required if c not in table.column_names]
    if missing:
        kind = "a sentence pair" if spec.is_pair else "single sentences"
        raise DatasetError(
            path,
            f"required column(s) {missing} missing for {kind} ({', '.join(required)}); the file "
            f"has {table.column_names}. Set text_columns / label_column for this dataset in the "
            "config, or the right glue_task.",
        )
    table = _decode_dictionaries(table)
    if table.num_rows == 0:
        raise DatasetError(path, "no rows")
    for column in spec.text_columns:
        _check_texts(table.column(column), path, column)
    if spec.regression:
        _check_scores(table.column(spec.label_column), path, spec.label_column)
    else:
        names = label_names(table, spec)
        _check_labels(table.column(spec.label_column), path, spec.label_column, names)
    if IDX_COLUMN in table.column_names:
        _check_idx(table.column(IDX_COLUMN), path)
    return table


def _decode_dictionaries(table: pa.Table) -> pa.Table:
    for position, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            column = table.column(position).cast(field.type.value_type)
            table = table.set_column(position, field.name, column)
    return table


def _first_values(column: pa.ChunkedArray) -> str:
    return f"first values {column.slice(0, 3).to_pylist()}"


def _visible(text: str) -> bool:
    """Anything left once whitespace, invisible characters (zero-width space...) and control
    characters (\\x00, \\x1b...) are gone."""
    left = text.translate(INVISIBLE).strip()
    if left.isprintable():  # the common case, decided in C
        return bool(left)
    return any(not c.isspace() and unicodedata.category(c) not in SHOW_NOTHING for c in left)


def _check_texts(column: pa.ChunkedArray, path, name: str) -> None:
    kind = column.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or _is_string_view(kind)):
        raise DatasetError(
            path, f"text must be strings, found type {kind} ({_first_values(column)})", column=name
        )
    try:
        texts = column.to_pylist()
    except UnicodeDecodeError as error:
        bad_rows = _not_utf8_rows(column)
        raise DatasetError(
            path,
            f"text is not valid UTF-8 ({error.reason} in {_bytes_shown(column, bad_rows[0])})",
            column=name,
            rows=bad_rows,
        ) from None
    null_rows = [i for i, text in enumerate(texts) if text is None]
    if null_rows:
        raise DatasetError(path, "text is null", column=name, rows=null_rows)
    empty_rows = [i for i, text in enumerate(texts) if not _visible(text)]
    if empty_rows:
        shown = sorted({repr(texts[i]) for i in empty_rows})[:ROWS_SHOWN]
        raise DatasetError(
            path,
            f"text is empty or only whitespace / invisible characters ({', '.join(shown)})",
            column=name,
            rows=empty_rows,
        )


def _not_utf8_rows(column: pa.ChunkedArray) -> list[int]:
    """The rows of a string column whose bytes are not UTF-8 (pyarrow reads them unchecked)."""
    as_bytes = column.cast(pa.large_binary()).to_pylist()
    rows = []
    for row, value in enumerate(as_bytes):
        try:
            value is None or value.decode("utf-8")
        except UnicodeDecodeError:
            rows.append(row)
    return rows


def _bytes_shown(column: pa.ChunkedArray, row: int) -> str:
    value = column.cast(pa.large_binary())[row].as_py()
    return f"{value[:40]!r}" + ("..." if len(value) > 40 else "")


def _is_string_view(kind: pa.DataType) -> bool:
    return getattr(pa.types, "is_string_view", lambda _: False)(kind)


ARROW_FLOAT_NAMES = {"halffloat": "float16", "float": "float32", "double": "float64"}


def numbers(column: pa.ChunkedArray) -> np.ndarray:
    """A column of numbers as a numpy array, nulls as NaN. Not pyarrow's ``to_numpy()``: that
    imports pandas where it is installed, more than half a second of every job's start-up."""
    kind = column.type
    if column.null_count or not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        return np.array(column.to_pylist(), dtype=np.float64 if column.null_count else None)
    # Not kind.to_pandas_dtype(): pyarrow 25 imports pandas there (0.5-0.7 s of every job's
    # first read on the GPU hosts). Arrow names integers as numpy does, floats its own way.
    dtype = np.dtype(ARROW_FLOAT_NAMES.get(str(kind), str(kind)))
    parts = [
        np.frombuffer(chunk.buffers()[1], dtype=dtype)[chunk.offset : chunk.offset + len(chunk)]
        for chunk in column.chunks
        if len(chunk)
    ]
    return np.concatenate(parts) if parts else np.empty(0, dtype)


def _check_integers(column: pa.ChunkedArray, path, name: str, what: str) -> np.ndarray:
    """Integer type, no nulls, within int64; the values as an int64 array. (pyarrow and numpy
    only: the validation job need not import pandas, which costs every job a second.)"""
    if not pa.types.is_integer(column.type):
        raise DatasetError(
            path,
            f"{what} must be integers, found type {column.type} ({_first_values(column)})",
            column=name,
        )
    if column.null_count:
        null_rows = np.flatnonzero(column.is_null().to_pylist())
        raise DatasetError(path, f"{name} is null", column=name, rows=null_rows)
    values = numbers(column)
    too_large = np.flatnonzero(values > INT64_MAX) if values.dtype == np.uint64 else []
    if len(too_large):
        raise DatasetError(
            path, f"{what} beyond the 64-bit integer range", column=name, rows=too_large
        )
    return values.astype(np.int64)


def distinct(values, rows) -> list:
    """The first few distinct values at ``rows``, sorted, for an error message."""
    return sorted(set(np.asarray(values)[rows].tolist()))[:ROWS_SHOWN]


def _check_labels(column: pa.ChunkedArray, path, name: str, names=None) -> None:
    if pa.types.is_floating(column.type):
        raise DatasetError(
            path,
            f"labels of a classification dataset must be integers (class ids), found type "
            f"{column.type} ({_first_values(column)}); for scores set `regression: true` (or "
            "glue_task: stsb)",
            column=name,
        )
    values = _check_integers(column, path, name, "labels (-1 = no label)")
    bad_rows = np.flatnonzero(values < NO_LABEL)
    if len(bad_rows):
        raise DatasetError(
            path,
            f"labels must be class ids >= 0 or -1 for no label, found {distinct(values, bad_rows)}",
            column=name,
            rows=bad_rows,
        )
    if names is not None:
        outside = np.flatnonzero(values >= len(names))
        if len(outside):
            raise DatasetError(
                path,
                f"labels {distinct(values, outside)} are not among the {len(names)} classes "
                f"{list(names)} (ids 0..{len(names) - 1})",
                column=name,
                rows=outside,
            )


def _check_scores(column: pa.ChunkedArray, path, name: str) -> None:
    """Regression targets: numbers, none missing or NaN (-1 = no label, as in GLUE test files)."""
    if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
        raise DatasetError(
            path,
            f"scores of a regression dataset must be numbers, found type {column.type} "
            f"({_first_values(column)})",
            column=name,
        )
    values = numbers(column).astype(np.float64)
    missing = np.flatnonzero(~np.isfinite(values))
    if len(missing):
        shown = sorted({repr(float(v)) for v in values[missing]})
        raise DatasetError(
            path,
            f"score is missing, NaN or infinite ({', '.join(shown)})",
            column=name,
            rows=missing,
        )
    # Checked in the type they are used in: 1e39 is a finite float64 but infinite in float32.
    with np.errstate(over="ignore"):
        beyond = np.flatnonzero(np.isinf(values.astype(SCORE_DTYPE)))
    if len(beyond):
        shown = ", ".join(repr(float(v)) for v in distinct(values, beyond))
        raise DatasetError(
            path,
            f"score {shown} beyond the range of {np.dtype(SCORE_DTYPE).name}, the type scores are "
            f"evaluated in (-{SCORE_MAX:.8g} to {SCORE_MAX:.8g})",
            column=name,
            rows=beyond,
        )


def _check_idx(column: pa.ChunkedArray, path) -> None:
    values = _check_integers(column, path, IDX_COLUMN, "idx")
    unique, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    duplicate_rows = np.flatnonzero(counts[inverse] > 1)
    if len(duplicate_rows):
        raise DatasetError(
            path,
            f"idx values are not unique ({distinct(values, duplicate_rows)} occur more than once)",
            column=IDX_COLUMN,
            rows=duplicate_rows,
        )


def summarize(path, spec: DatasetSpec | None = None, expected_sha256=None) -> dict:
    """Validate a dataset file and describe it (the content of results/validated/{dataset}.json)."""
    spec = spec or DatasetSpec()
    table = read_table(path)
    checksum = sha256_file(path)
    if expected_sha256 and checksum != expected_sha256:
        raise DatasetError(
            path,
            f"sha256 is {checksum}, but the config expects {expected_sha256}: "
            "the file is not the one the config pins",
        )
    table = validate_table(table, path, spec)
    labels = numbers(table.column(spec.label_column))
    labeled = labels != NO_LABEL
    summary = {
        "path": str(path),
        "sha256": checksum,
        "text_columns": list(spec.text_columns),
        "label_column": spec.label_column,
        "regression": spec.regression,
        "n_rows": table.num_rows,
        "n_labeled": int(labeled.sum()),
        "has_idx": IDX_COLUMN in table.column_names,
        "checks_passed": [
            "readable parquet",
            "required columns present",
            "at least one row",
            "text: non-null, non-empty UTF-8 strings",
            "scores: finite numbers in float32, -1 = no label"
            if spec.regression
            else "labels: integer class ids of the dataset's classes, -1 = no label",
            "idx: unique integers (when present)",
        ],
    }
    if spec.regression:
        scores = labels[labeled].astype(np.float64)
        summary["score_range"] = [float(scores.min()), float(scores.max())] if len(scores) else []
    else:
        values, counts = np.unique(labels, return_counts=True)
        summary["label_counts"] = {str(v): int(n) for v, n in zip(values, counts, strict=True)}
        names = label_names(table, spec)
        summary["label_names"] = list(names) if names else None
        summary["label_names_from"] = _label_names_origin(table, spec, names)
    return summary


def _label_names_origin(table, spec: DatasetSpec, names) -> str:
    if names is None:
        return ""
    if spec.label_names_from_config:
        return "config"
    return "file" if file_label_names(table, spec.label_column) else f"glue task {spec.glue_task}"
