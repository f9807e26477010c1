"""What the rules ask of the config: which jobs there are, and each job's inputs, params and
threads, as plain functions of the config (and a model or dataset name). rules/common.smk
wraps them for Snakemake (wildcards, ``rules``, ``expand``, ``report()``); the rule files
declare the rules.

A config error met here is a WorkflowError: Snakemake shows its message alone, at start-up.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import asdict
from pathlib import Path

from snakemake.exceptions import WorkflowError

from glueperf import GlueperfError
from glueperf.checksums import model_files as local_model_files
from glueperf.fetch import dataset_location, is_hub_model, is_remote, model_location
from glueperf.infra.forkclient import SERVER_MODULE
from glueperf.metrics import check_dataset_metrics
from glueperf.models import DTYPES
from glueperf.plotting import PLOTS_DIR
from glueperf.results import METRICS_PATH, PREDICTIONS_PATH, REFERENCE_DTYPE
from glueperf.tasks import dataset_spec, display_task

# The rules' scripts, and the package they import.
SCRIPTS = Path(__file__).resolve().parents[2]
# What the {dtype} wildcard of a result's path may be.
DTYPE_PATTERN = "|".join(DTYPES)
# The priority of the light jobs, validating a dataset and hashing a model (Snakemake's default
# is 0): with fewer cores than ready jobs, they all run before the first evaluation. A bad file
# then stops the run before any device time is spent, and with --cores 1 they run while the
# evaluations' fork server imports, instead of one before each evaluation.
LIGHT_JOBS_FIRST = 1


# --- the config's models and datasets --------------------------------------------------------


def check_references(config: dict) -> None:
    """Every dataset a model names must be defined under `datasets`."""
    for model, spec in config["models"].items():
        for position, dataset in enumerate(spec.get("datasets", [])):
            if dataset not in config["datasets"]:
                raise WorkflowError(
                    f"config key models.{model}.datasets[{position}]: dataset '{dataset}' is "
                    f"not defined under `datasets` (defined: {sorted(config['datasets'])})"
                )


def model_config(config: dict, model: str) -> dict:
    return config_entry(config, "models", model)


def dataset_config(config: dict, dataset: str) -> dict:
    return config_entry(config, "datasets", dataset)


def config_entry(config: dict, section: str, name: str) -> dict:
    """An entry of the config's `models` or `datasets`; a clear error for a name (from a
    target) that the config lacks."""
    if name not in config[section]:
        raise WorkflowError(
            f"{section[:-1]} '{name}' is not defined under `{section}` in the config "
            f"(defined: {sorted(config[section])})"
        )
    return config[section][name]


def datasets_of(config: dict, model: str) -> list[str]:
    return config["models"][model].get("datasets", list(config["datasets"]))


def evaluation_pairs(config: dict) -> list[tuple[str, str]]:
    """(model, dataset) of every evaluated pair, whatever its dtypes."""
    return [
        (model, dataset) for model in config["models"] for dataset in datasets_of(config, model)
    ]


def dtypes_of(config: dict, model: str) -> list[str]:
    """The precisions a model is evaluated in: its `evaluation.dtype`, one name or a list, in
    the config's order, each once."""
    dtype = evaluation_settings(config, model)["dtype"]
    return list(dict.fromkeys([dtype] if isinstance(dtype, str) else dtype))


def evaluations(config: dict) -> list[tuple[str, str, str]]:
    """(model, dtype, dataset) of every evaluation: each its own job."""
    return [
        (model, dtype, dataset)
        for model, dataset in evaluation_pairs(config)
        for dtype in dtypes_of(config, model)
    ]


def metrics_files(config: dict) -> list[str]:
    """Every evaluation's metrics file: the aggregation's inputs."""
    return [
        METRICS_PATH.format(model=model, dtype=dtype, dataset=dataset)
        for model, dtype, dataset in evaluations(config)
    ]


def agreement_files(config: dict) -> list[str]:
    """The predictions files that the aggregation compares, for the agreement of each
    evaluation in another dtype with its model's float32 evaluation on the same dataset:
    those of every pair evaluated in float32 and another dtype."""
    files = []
    for model, dataset in evaluation_pairs(config):
        dtypes = dtypes_of(config, model)
        if REFERENCE_DTYPE in dtypes and len(dtypes) > 1:
            files += [
                PREDICTIONS_PATH.format(model=model, dtype=dtype, dataset=dataset)
                for dtype in dtypes
            ]
    return files


def display_labels(config: dict) -> dict:
    """What the table shows for people and no evaluation depends on: each dataset's Task label
    and each model's family (its row in the GLUE summary)."""
    return {
        "tasks": {name: display_task(entry) for name, entry in config["datasets"].items()},
        "families": {name: entry.get("family", name) for name, entry in config["models"].items()},
    }


def prefetch_targets(config: dict) -> list[str]:
    """Everything fetched from the Hub, for `snakemake prefetch` before an offline run."""
    models = [m for m in config["models"] if is_fetched(config, m)]
    datasets = [d for d, spec in config["datasets"].items() if is_remote(spec["path"])]
    return [f"resources/provenance/models/{model}.json" for model in models] + [
        f"resources/provenance/datasets/{dataset}.json" for dataset in datasets
    ]


# --- a dataset's inputs and params -----------------------------------------------------------


def dataset_file(config: dict, dataset: str) -> str | list:
    """The dataset's local parquet file: the config's path, or the fetched copy of a Hub file."""
    path = dataset_config(config, dataset)["path"]
    if is_remote(path):
        return dataset_location(dataset, path)
    # A missing file fails its own validation job, which names it, instead of the whole run:
    # with --keep-going the other datasets are still evaluated. So does a FIFO or a device
    # (/dev/zero), which Snakemake would otherwise open to checksum it.
    return path if Path(path).is_file() else []


def dataset_provenance(config: dict, dataset: str) -> str | list:
    if is_remote(dataset_config(config, dataset)["path"]):
        return f"resources/provenance/datasets/{dataset}.json"
    return []


def file_fingerprint(path) -> list[int] | None:
    """Size, modification time (ns) and inode of a file. As a `params:` value this reruns a job
    whenever any of them changes: Snakemake itself reruns only for an input newer than the
    output, so a file moved over the input (with an older time) or rewritten and dated back
    (`touch -d`) went unnoticed. Cheap: nothing is read; validation records the sha256.
    """
    try:
        info = os.stat(path)
    except OSError:  # missing: its job names it
        return None
    return [info.st_size, info.st_mtime_ns, info.st_ino]


def dataset_fingerprint(config: dict, dataset: str) -> list[int] | None:
    """A local dataset file's fingerprint; none for a Hub file, whose fetched copy is only
    replaced by a refetch (newer than every result) and does not exist before the first run.
    """
    path = dataset_config(config, dataset)["path"]
    return None if is_remote(path) else file_fingerprint(path)


def dataset_settings(config: dict, dataset: str, model: str | None = None) -> dict:
    """How the dataset is read and scored (text columns, labels, metrics), as a params value:
    a change reruns its validation and evaluations, while display-only keys rerun neither. An
    evaluation's (``model`` given) has the label_map that applies to its model: a change reruns
    just those.
    """
    try:
        spec = dataset_spec(
            dataset, dataset_config(config, dataset), model, model and model_config(config, model)
        )
        check_dataset_metrics(dataset, spec.metrics, spec.regression)
    except GlueperfError as error:
        raise WorkflowError(str(error)) from error
    return asdict(spec)


# --- a model's inputs and params -------------------------------------------------------------


def is_fetched(config: dict, model: str) -> bool:
    return is_hub_model(model_config(config, model)["source"])


def model_dir(config: dict, model: str) -> str:
    """Where the model is loaded from: its fetched copy for a Hub id, else the directory."""
    return model_location(model, model_config(config, model)["source"])


def model_spec(config: dict, model: str) -> dict:
    """What the metrics row records of the model, and where it is loaded from. A revision
    means nothing for a local directory, so none is recorded for one."""
    spec = model_config(config, model)
    return {
        "source": spec["source"],
        "revision": spec["revision"] if is_fetched(config, model) else None,
        "model_dir": model_dir(config, model),
        "trust_remote_code": spec["trust_remote_code"],
    }


def model_files(config: dict, model: str) -> list[str]:
    """The model's files as inputs, so that a refetch or a change reruns its evaluations."""
    if is_fetched(config, model):
        return [model_dir(config, model)]
    return [str(f) for f in local_model_files(model_dir(config, model))]


def model_provenance(config: dict, model: str) -> str:
    """The record of the model's files that its evaluations put in their rows: a Hub model's
    fetch provenance (commit and sha256 of each file), or a local model's checksums, computed
    once per model by rule hash_model."""
    if is_fetched(config, model):
        return f"resources/provenance/models/{model}.json"
    return f"resources/checksums/{model}.json"


def model_fingerprint(config: dict, model: str) -> dict | None:
    """Fingerprints of the files a local model is loaded from (code included, which
    trust_remote_code may run); none for a fetched Hub model, as for Hub datasets."""
    if is_fetched(config, model):
        return None
    files = local_model_files(model_dir(config, model))
    return {f.name: file_fingerprint(f) for f in files} or None


def evaluation_settings(config: dict, model: str, dtype: str | None = None) -> dict:
    """Top-level `evaluation` with the model's own overrides on top (evaluation.latency and
    evaluation.energy are top-level only: every row's latency and energy are measured alike).
    For one evaluation (``dtype`` given), with that dtype alone: so that a dtype added to a
    list changes no other evaluation's params, and `float32` and `[float32]` are the same."""
    overrides = model_config(config, model).get("evaluation", {})
    settings = {**config["evaluation"], **overrides}
    if dtype is None:
        return settings
    listed = [settings["dtype"]] if isinstance(settings["dtype"], str) else settings["dtype"]
    if dtype not in listed:
        raise WorkflowError(
            f"dtype '{dtype}' is not one model '{model}' is evaluated in (its evaluation.dtype: "
            f"{', '.join(listed)})"
        )
    return {**settings, "dtype": dtype}


def evaluation_threads(config: dict, model: str) -> int:
    """Cores that an evaluation takes: `evaluation.threads` where the config pins them, else by
    device. On a GPU the model runs there and the CPU only feeds it (tokenization uses every
    core either way): 4, so that `--cores 16` starts four jobs on a host with one GPU, the
    start-up of the waiting ones overlapping the running one. On the CPU the model itself
    computes with them: 8. Snakemake caps them at --cores; the evaluation uses them for torch
    (glueperf/infra/evaluate_job.py: use_threads)."""
    settings = evaluation_settings(config, model)
    if settings.get("threads"):
        return settings["threads"]
    device = settings["device"]
    on_gpu = device.startswith("cuda") or (device == "auto" and host_has_gpus())
    return 4 if on_gpu else 8


@functools.cache
def host_has_gpus() -> bool:
    from glueperf.infra.devices import host_gpus

    return host_gpus() != []  # None: GPUs that nvidia-smi cannot list


# --- the code behind each rule ---------------------------------------------------------------


def code_fingerprint(script: str, scripts: Path = SCRIPTS) -> str:
    """A digest of ``scripts/<script>`` and the glueperf modules it imports, directly or
    through one another, as a `params:` value: a change to any of them reruns the rule (and
    what follows). Derived from the imports, never kept by hand; their contents, not their
    times, so that a module put back as it was reruns nothing.
    """
    digest = hashlib.sha256()
    for path in [scripts / script, *code_files(scripts / script, scripts / "glueperf")]:
        content = path.read_bytes()
        for part in (str(path.relative_to(scripts)).encode(), content):
            digest.update(len(part).to_bytes(8, "little") + part)
    return digest.hexdigest()[:16]


# Modules whose jobs run in the code of a module they do not import: a job forked from a fork
# server runs in the server's frame, which the job's own process starts by name.
RUNS_IN = {"glueperf.infra.jobs_client": SERVER_MODULE}


def code_files(script: Path, package: Path) -> list[Path]:
    """The modules of ``package`` that ``script`` imports, directly or through one another, and
    those that it runs in (``RUNS_IN``)."""
    runs_in = {
        module_file(package, client.split(".")[1:]): module_file(package, server.split(".")[1:])
        for client, server in RUNS_IN.items()
    }
    found, todo = set(), [script]
    while todo:
        path = todo.pop()
        for imported in [*package_imports(path, package), runs_in.get(path)]:
            if imported is not None and imported not in found:
                found.add(imported)
                todo.append(imported)
    return sorted(found)


# An import statement of a line of its own, at any indentation: ``from <module> import <names>``
# (in parentheses over several lines or on one line) or ``import <modules>``. Scanned, not
# parsed: Python's parser took 0.1-0.2 s of every Snakemake start for the rules' scripts.
IMPORT_STATEMENT = re.compile(
    r"^[ \t]*(?:from[ \t]+(?P<module>[\w.]+)[ \t]+import[ \t]+(?P<names>\([^)]*\)|[^\n]*)"
    r"|import[ \t]+(?P<modules>[^\n]*))",
    re.MULTILINE,
)


@functools.cache
def package_imports(source: Path, package: Path) -> list[Path]:
    """The files of ``package``'s modules that the Python file ``source`` imports itself, at
    any depth of its code, with the packages that hold them (importing glueperf.infra.devices
    runs glueperf/__init__.py and glueperf/infra/__init__.py too). Cached: every rule's scripts
    share most modules."""
    paths = []
    for name in imported_names(source.read_text()):
        top, *parts = name.split(".")
        if top == package.name:
            found = (module_file(package, parts[:n]) for n in range(len(parts) + 1))
            paths.extend(path for path in found if path is not None)
    return paths


def imported_names(code: str) -> list[str]:
    """The absolute names that ``code``'s import statements import: ``module.name`` for each
    name of a ``from module import``, each module of an ``import`` (relative imports left out).
    A line of a docstring that reads as an import counts too, which at worst reruns more."""
    names = []
    for statement in IMPORT_STATEMENT.finditer(code):
        listed = statement["names"] if statement["module"] else statement["modules"]
        listed = re.sub(r"#[^\n]*", "", listed).strip("() \t\n\\")
        items = [item.split()[0] for item in listed.split(",") if item.strip()]
        module = statement["module"]
        if module is None:
            names.extend(items)
        elif not module.startswith("."):
            names.extend(f"{module}.{item}" for item in items)
    return names


def module_file(package: Path, parts: list[str]) -> Path | None:
    """The file of module ``package.<parts>``: a .py file, or a package's __init__.py; None
    for a name that is no module (a function imported from one)."""
    base = package.joinpath(*parts)
    candidates = [base.with_suffix(".py")] if parts else []
    for path in [*candidates, base / "__init__.py"]:
        if path.is_file():
            return path
    return None


# --- the end of a run --------------------------------------------------------------------------


def where_results_are(final_outputs: list[str]) -> str:
    """The closing message of a successful run."""
    lines = ["glueperf results:"]
    for path in final_outputs:
        kind = "plot:" if path.startswith(PLOTS_DIR) else "table:"
        lines.append(f"  {kind:<8} {Path(path).resolve()}")
    per_run = METRICS_PATH.format(model="<model>", dtype="<dtype>", dataset="<dataset>")
    lines.append(f"  per run: {Path(per_run).resolve()}")
    return "\n".join(lines)
