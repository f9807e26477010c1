"""Writing results safely, and the common frame of the pipeline's scripts.

Every output is written to a temporary file beside its target and renamed into place, so a job
killed at any moment leaves either the whole file or none of it.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import sys
import tempfile
from contextlib import contextmanager, redirect_stderr
from pathlib import Path

from glueperf import GlueperfError
from glueperf.infra.devices import hold_job


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


def run_script(main, log_path) -> None:
    """Run a script's ``main()`` with stderr in the rule's log and input errors made clear.

    A GlueperfError (bad data, model or config) becomes one line naming what is wrong, in the log
    and on the console, and exit status 1. Any other exception is written to the log with its
    traceback (Snakemake points at the log, so the log must hold it), summed up in one line on the
    console, and exits with status 1 too. Standard input is /dev/null: nothing a script runs
    (transformers asking whether to run a model's code, say) can wait for or read an answer.

    First, before its log is opened, the job is locked for the life of the process
    (``glueperf.infra.devices.hold_job``): while the same job still runs in another process, left
    behind by a Snakemake run that was killed, this one waits, saying so on the console, so
    that the two never write the same log and outputs at once.
    """
    close_stdin()
    global CONSOLE
    console = CONSOLE = sys.stderr
    job = hold_job(log_path, report=lambda message, _: print(message, file=console, flush=True))
    with open(log_path, "w") as log_stream, redirect_stderr(log_stream):
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=log_stream,
            force=True,
        )
        # Warnings (many rows truncated, pickled weights) go to the console too, not only into
        # a log nobody opens after a successful run.
        to_console = logging.StreamHandler(console)
        to_console.setFormatter(logging.Formatter("glueperf warning: %(message)s"))
        to_console.addFilter(lambda record: record.levelno == logging.WARNING)
        logging.getLogger("glueperf").addHandler(to_console)
        if job.wait_s:
            tell(f"glueperf: waited {job.wait_s:.1f} s for an earlier run of this job to end")
        try:
            main()
        except GlueperfError as error:
            message = f"glueperf error: {error}"
            logging.getLogger("glueperf").error(message)
            print(message, file=console)
            sys.exit(1)
        except Exception as error:
            logging.getLogger("glueperf").exception("unexpected error, traceback follows")
            log_stream.flush()
            print(
                f"glueperf: unexpected error {type(error).__name__}: {error} "
                f"(traceback in {log_path})",
                file=console,
            )
            sys.exit(1)


def close_stdin() -> None:
    """Point standard input, for this process and any it starts, at /dev/null."""
    with open(os.devnull) as null:
        os.dup2(null.fileno(), 0)
    sys.stdin = open(os.devnull)  # noqa: SIM115 (kept open for the process's life)


# Where run_script found stderr before it sent stderr to the log: the console of Snakemake.
CONSOLE = None


def tell(message: str, console: bool = True) -> None:
    """A line in the job's log, and also on the console (Snakemake's output) when ``console``;
    for what a user waits on, like a device that another evaluation holds."""
    # INFO: the console line is printed here, not by run_script's handler of warnings.
    logging.getLogger("glueperf").info(message.removeprefix("glueperf: "))
    if console and CONSOLE is not None and CONSOLE is not sys.stderr:
        print(message, file=CONSOLE, flush=True)
