"""Writing results safely.

Every output is written to a temporary file beside its target and renamed into place, so a job
killed at any moment leaves either the whole file or none of it.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target):
    """Yield a temporary path next to ``target``; on success rename it to ``target``.

    A temporary left by a writer killed before its rename is removed here, when the job that
    writes ``target`` runs again (one job writes one target at a time, so none is in use).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        stale.unlink(missing_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    os.close(handle)
    try:
        yield Path(temporary)
        # mkstemp makes the file private (0600); results are for sharing, as plain files are.
        os.chmod(temporary, 0o666 & ~current_umask())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_csv(frame, target) -> None:
    with atomic_path(target) as path:
        frame.to_csv(path, index=False)


def write_row(row: dict, target) -> None:
    """One row as a CSV file, as pandas writes it (full precision, a missing value an empty
    cell), without importing pandas: the evaluation job need not pay for it."""
    import csv
    import math

    def cell(value):
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        return "" if missing else value

    with atomic_path(target) as path, open(path, "w", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(row)
        writer.writerow(cell(value) for value in row.values())


def read_json(path):
    """A JSON file's data; None for no path (an optional input left empty)."""
    return json.loads(Path(path).read_text()) if path else None


def write_json(data, target) -> None:
    with atomic_path(target) as path:
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
