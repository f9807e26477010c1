"""The frame of every job's script: its log, its job lock, its errors, and lines for the console.

Every rule's script runs its work through ``run_script`` (the GPU-side jobs through the fork
server, glueperf/infra/forkserver.py, which calls it in the forked child).
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import redirect_stderr

from glueperf import GlueperfError
from glueperf.infra.devices import hold_job
from glueperf.infra.locks import LockError


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
    that the two never write the same log and outputs at once. A lock directory that cannot be
    used is one line too, on the console and at the end of the log.
    """
    close_stdin()
    global CONSOLE
    console = CONSOLE = sys.stderr
    try:
        job = hold_job(log_path, report=lambda message, _: print(message, file=console, flush=True))
    except LockError as error:
        message = f"glueperf error: {error}"
        print(message, file=console)
        with open(log_path, "a") as log_stream:  # not the job's alone: its lock failed
            print(message, file=log_stream)
        sys.exit(1)
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
