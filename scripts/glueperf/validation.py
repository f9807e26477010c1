"""Checks that a GLUE-style parquet file can be evaluated, before any model is loaded."""

from __future__ import annotations

import os
import stat
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from glueperf import GlueperfError
from glueperf.fetch import OFFLINE_ADVICE, is_remote, sha256_file

NO_LABEL = -1
IDX_COLUMN = "idx"
# How many offending rows an error message lists before it says "and N more".
ROWS_SHOWN = 10
INT64_MAX = np.iinfo(np.int64).max
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


def sha256_of(path) -> str | None:
    """The file's sha256, or None for a remote path (hashed once fetched, by fetch_dataset)."""
    return None if is_remote(path) else sha256_file(path)


def read_table(path, columns=None) -> pa.Table:
    """Read a parquet file (local or any fsspec URL such as hf://) or raise DatasetError."""
    if is_remote(path):
        return _read_remote_table(path, columns)
    if Path(path).is_dir():
        raise DatasetError(path, "is a directory, not a parquet file")
    if not Path(path).exists():
        raise DatasetError(path, "file not found (check the dataset's `path` in the config)")
    if not Path(path).is_file():  # opened, a FIFO would wait and /dev/zero never end
        raise DatasetError(path, f"is a {_file_kind(path)}, not a regular parquet file")
    try:
        _check_unique_names(pq.read_schema(path).names, path)
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as error:
        raise DatasetError(path, f"not a readable parquet file ({_one_line(error)})") from error


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


def _read_remote_table(path, columns=None) -> pa.Table:
    """A URL: its file-system errors are told apart from the Hub or server being unreachable."""
    import fsspec

    try:
        with fsspec.open(path, "rb") as stream:
            _check_unique_names(pq.ParquetFile(stream).schema_arrow.names, path)
            stream.seek(0)
            return pq.read_table(stream, columns=columns)
    except FileNotFoundError as error:
        raise DatasetError(path, f"file not found on the server ({_one_line(error)})") from error
    except pa.ArrowException as error:
        raise DatasetError(path, f"not a readable parquet file ({_one_line(error)})") from error
    except Exception as error:  # the transport's own errors (httpx2, aiohttp, Hub client)
        raise DatasetError(
            path,
            f"could not be read ({type(error).__name__}: {_one_line(error)}). {OFFLINE_ADVICE}",
        ) from error


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def load_dataset(path, text_column="sentence", label_column="label"):
    """Texts, labels and idx of a dataset file, after every check in ``validate_table``."""
    table = validate_table(read_table(path), path, text_column, label_column)
    texts = table.column(text_column).to_pylist()
    labels = table.column(label_column).to_numpy().astype(np.int64)
    if IDX_COLUMN in table.column_names:
        idx = table.column(IDX_COLUMN).to_numpy().astype(np.int64)
    else:
        idx = np.arange(len(texts), dtype=np.int64)
    return texts, labels, idx


def validate_table(table: pa.Table, path, text_column: str, label_column: str) -> pa.Table:
    """Raise DatasetError for the first problem found; return the table ready to use (its
    dictionary-encoded columns, as pandas writes categoricals, decoded)."""
    _check_unique_names(table.column_names, path)
    missing = [c for c in (text_column, label_column) if c not in table.column_names]
    if missing:
        raise DatasetError(
            path,
            f"required column(s) {missing} missing; the file has {table.column_names}. "
            "Set text_column / label_column for this dataset in the config.",
        )
    table = _decode_dictionaries(table)
    if table.num_rows == 0:
        raise DatasetError(path, "no rows")
    _check_texts(table.column(text_column), path, text_column)
    _check_labels(table.column(label_column), path, label_column)
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
    texts = column.to_pylist()
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


def _is_string_view(kind: pa.DataType) -> bool:
    return getattr(pa.types, "is_string_view", lambda _: False)(kind)


def _check_integers(column: pa.ChunkedArray, path, name: str, what: str) -> pd.Series:
    """Integer type, no nulls, within int64; the values as a Series."""
    if not pa.types.is_integer(column.type):
        raise DatasetError(
            path,
            f"{what} must be integers, found type {column.type} ({_first_values(column)})",
            column=name,
        )
    values = column.to_pandas()
    null_rows = np.flatnonzero(values.isna().to_numpy())
    if len(null_rows):
        raise DatasetError(path, f"{name} is null", column=name, rows=null_rows)
    too_large = np.flatnonzero((values > INT64_MAX).to_numpy())
    if len(too_large):
        raise DatasetError(
            path, f"{what} beyond the 64-bit integer range", column=name, rows=too_large
        )
    return values


def distinct(values, rows) -> list:
    """The first few distinct values at ``rows``, sorted, for an error message."""
    return sorted(set(values.iloc[rows].tolist()))[:ROWS_SHOWN]


def _check_labels(column: pa.ChunkedArray, path, name: str) -> None:
    values = _check_integers(column, path, name, "labels (-1 = no label)")
    bad_rows = np.flatnonzero((values < NO_LABEL).to_numpy())
    if len(bad_rows):
        raise DatasetError(
            path,
            f"labels must be class ids >= 0 or -1 for no label, found {distinct(values, bad_rows)}",
            column=name,
            rows=bad_rows,
        )


def _check_idx(column: pa.ChunkedArray, path) -> None:
    values = _check_integers(column, path, IDX_COLUMN, "idx")
    duplicate_rows = np.flatnonzero(values.duplicated(keep=False).to_numpy())
    if len(duplicate_rows):
        raise DatasetError(
            path,
            f"idx values are not unique ({distinct(values, duplicate_rows)} occur more than once)",
            column=IDX_COLUMN,
            rows=duplicate_rows,
        )


def summarize(path, text_column="sentence", label_column="label", expected_sha256=None) -> dict:
    """Validate a dataset file and describe it (the content of results/validated/{dataset}.json)."""
    table = read_table(path)
    checksum = sha256_of(path)
    if expected_sha256 and checksum != expected_sha256:
        raise DatasetError(
            path,
            f"sha256 is {checksum}, but the config expects {expected_sha256}: "
            "the file is not the one the config pins",
        )
    table = validate_table(table, path, text_column, label_column)
    labels = pd.Series(table.column(label_column).to_numpy())
    counts = labels.value_counts().sort_index()
    return {
        "path": str(path),
        "sha256": checksum,
        "text_column": text_column,
        "label_column": label_column,
        "n_rows": table.num_rows,
        "n_labeled": int((labels != NO_LABEL).sum()),
        "label_counts": {str(label): int(n) for label, n in counts.items()},
        "has_idx": IDX_COLUMN in table.column_names,
        "checks_passed": [
            "readable parquet",
            "required columns present",
            "at least one row",
            "text: non-null, non-empty strings",
            "labels: integers, -1 = no label",
            "idx: unique integers (when present)",
        ],
    }
