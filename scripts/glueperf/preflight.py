"""Checks of the config's models against its datasets before any job runs.

A model path that is wrong, or a classifier whose classes cannot be matched to a dataset's
labels, used to pass start-up and fail each evaluation only after validation. Here they stop
the run at start-up, naming the config key, with the message the evaluation would give
(glueperf/labels.py says both). A Hub model is checked once it is fetched: by the start-up of
every later run, and in the run that fetches it by each of its evaluations, which checks its
own model and dataset before it loads the model or claims its device.

Snakemake runs the start-up checks on every invocation, no-op reruns included, so they read only
small files: each model's config.json, and the footer of a dataset file whose own label names
are needed (glueperf/parquet_footer.py); nothing heavy is imported (no numpy, pyarrow or pandas).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from glueperf import GlueperfError
from glueperf.checksums import model_files
from glueperf.fetch import dataset_location, is_hub_model, model_location
from glueperf.labels import ModelOutputs, check_model_fits
from glueperf.models import model_dir_config
from glueperf.parquet_footer import key_value_metadata
from glueperf.tasks import class_names, dataset_spec, file_class_names


def check_before_any_job(config: dict) -> None:
    """Every model of the config whose files are here (a local directory, or a Hub model
    fetched already) against every dataset it runs on; the first problem as a GlueperfError."""
    for model, entry in config["models"].items():
        check_label_maps_keys(config, model)
        fetched = Path(model_location(model, entry["source"])).is_dir()
        if is_hub_model(entry["source"]) and not fetched:
            continue  # not fetched yet: its evaluations check it
        check_model(config, model)


def check_model(config: dict, model: str) -> None:
    """One model's directory, and its classes against the labels of every dataset it runs on.
    A dataset whose label names cannot be known yet (a Hub file not fetched, a footer too large
    to read here) is left to its evaluation."""
    entry = config["models"][model]
    directory = model_location(model, entry["source"])
    try:
        outputs = ModelOutputs.of(model_dir_config(Path(directory)))
        model_files(directory)  # no symbolic link out of the directory
    except GlueperfError as error:
        raise GlueperfError(f"config key models.{model}.source: {error}") from None
    for dataset in datasets_of(config, model):
        dataset_entry = config["datasets"][dataset]
        spec = dataset_spec(dataset, dataset_entry, model, entry)
        path = dataset_location(dataset, dataset_entry["path"])
        known, file_names = file_label_names(path, spec.label_column)
        if not (known or spec.regression or spec.label_names_from_config):
            continue
        check_model_fits(
            (model, dataset),
            outputs,
            spec.regression,
            class_names(spec, file_names),
            path,
            spec.label_map,
            spec.label_map_key,
        )


def check_label_maps_keys(config: dict, model: str) -> None:
    """A model's label_maps name datasets that it runs on: any other would be ignored."""
    runs_on = datasets_of(config, model)
    for dataset in config["models"][model].get("label_maps") or {}:
        if dataset not in runs_on:
            raise GlueperfError(
                f"config key models.{model}.label_maps.{dataset}: model '{model}' does not run "
                f"on a dataset '{dataset}' (it runs on {runs_on}), so this label_map would be "
                "ignored"
            )


def datasets_of(config: dict, model: str) -> list[str]:
    return config["models"][model].get("datasets") or list(config["datasets"])


def file_label_names(path: str, label_column: str) -> tuple[bool, tuple[str, ...] | None]:
    """(whether the file could be read, its own ClassLabel names or None), from its footer."""
    try:
        info = os.stat(path)
    except OSError:
        return False, None
    return _footer_label_names(path, label_column, (info.st_size, info.st_mtime_ns, info.st_ino))


@cache  # each file once, however many models run on it, until it changes
def _footer_label_names(path: str, label_column: str, fingerprint) -> tuple[bool, tuple | None]:
    metadata = key_value_metadata(path)
    if metadata is None:
        return False, None
    return True, file_class_names(metadata.get(b"huggingface"), label_column)
