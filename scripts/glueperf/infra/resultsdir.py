"""Which config produced results/: one directory holds the results of one config.

``results/model_performance.csv``, the GLUE summary and the plots hold the models and datasets of
the config that wrote them last. A run with another config (``--configfile mine.yaml`` after a
run of config.yaml, or the other way round) would silently replace them with its own. So every
run that executes jobs records its config files and the configuration itself in
``results/config.yaml``, and a run (or ``--report``) whose config files differ stops at start-up,
saying whose results are there and how to proceed (a run that left no results claims nothing:
the next run may use results/ whatever its config). The files are compared by name, not content:
editing your config between runs (a model added, a setting changed) is the usual way to work and
reruns what changed; a forgotten or different ``--configfile`` is the accident.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from glueperf import GlueperfError

RECORD = Path("results") / "config.yaml"
DEFAULT_CONFIG = "config.yaml"


class ResultsOfAnotherConfig(GlueperfError):
    """results/ was written by a run of other config files."""


def config_files(command_line_files) -> list[str]:
    """This run's config files as the user names them, relative to the working directory:
    the ``--configfile`` ones (each the whole configuration, see the Snakefile), else
    config.yaml."""
    files = [os.path.normpath(os.path.relpath(f)) for f in command_line_files]
    return files or [DEFAULT_CONFIG]


def configfile_option(files: list[str]) -> str:
    """The command-line option that selects ``files`` (none for config.yaml), with its space."""
    return "" if files == [DEFAULT_CONFIG] else " --configfile " + " ".join(files)


def recorded_files(record: Path = RECORD) -> list[str] | None:
    """The config files results/ was written with; None when nothing (readable) is recorded."""
    try:
        recorded = yaml.safe_load(record.read_text())
    except (OSError, yaml.YAMLError):
        return None
    files = recorded.get("config_files") if isinstance(recorded, dict) else None
    return [str(f) for f in files] if isinstance(files, list) else None


def holds_results(results: Path) -> bool:
    """Whether a run left results worth keeping: the table, or any evaluation's metrics (a run
    that failed before either, e.g. offline without its Hub model, claims nothing)."""
    return (results / "model_performance.csv").is_file() or any(
        (results / "metrics").rglob("*.csv")
    )


def check_results_config(files: list[str], report: bool = False, record: Path = RECORD) -> None:
    """Stop when results/ holds the results of other config files than ``files``."""
    recorded = recorded_files(record)
    if recorded is None or recorded == files or not holds_results(record.parent):
        return
    results, theirs, mine = record.parent, " ".join(recorded), " ".join(files)
    if report:
        raise ResultsOfAnotherConfig(
            f"{results}/ holds the results of {theirs} ({record} records it), not of {mine}: "
            f"make the report with the config of that run: "
            f"`.venv/bin/snakemake --report report.html{configfile_option(recorded)}`"
        )
    raise ResultsOfAnotherConfig(
        f"{results}/ holds the results of {theirs} ({record} records it); this run's config is "
        f"{mine}, and running it here would overwrite {results}/model_performance.csv and the "
        f"plots with its own. To keep both, run it in a directory of its "
        f"own (add `--directory DIR`; relative paths in the config are then read from DIR). "
        f"To replace them, move the old results away first (`mv {results} {results}-old`). "
        f"To go on with the old results: `.venv/bin/snakemake --cores 1"
        f"{configfile_option(recorded)}`."
    )


def record_results_config(files: list[str], config: dict, record: Path = RECORD) -> None:
    """Record in results/ the config files and the configuration (defaults filled in) of a run
    that executes jobs, for the next run's check and for people."""
    record.parent.mkdir(parents=True, exist_ok=True)
    text = (
        "# Written by glueperf at the start of each run: the config that produced results/.\n"
        "# A run with other config files stops instead of overwriting these results.\n"
        + yaml.safe_dump({"config_files": files, "config": config}, sort_keys=False)
    )
    for stale in record.parent.glob(f".{record.name}.*.tmp"):  # of a run killed while writing
        stale.unlink(missing_ok=True)
    temporary = record.with_name(f".{record.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, record)
