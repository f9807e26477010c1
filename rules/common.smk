# Helpers for the stage files: config checks, target lists and input/params functions.
import ast
import functools
import os
from dataclasses import asdict
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from glueperf.configfile import schema_error

try:
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError as error:  # one line instead of the config and the whole schema
    files = workflow.overwrite_configfiles or ["config.yaml"]
    raise WorkflowError(schema_error(error, files)) from None

# The importable code behind each stage: a change to it reruns that stage (and what follows),
# like a change to the stage's script does. Importable: the Snakefile puts scripts/ on the path.
CODE_DIR = Path(workflow.basedir) / "scripts" / "glueperf"
from glueperf import GlueperfError
from glueperf.devices import host_gpus
from glueperf.checksums import model_files as local_model_files
from glueperf.fetch import dataset_location, is_hub_model, is_remote, model_location
from glueperf.forkserver import SNAKEMAKE_PID
from glueperf.metrics import check_dataset_metrics
from glueperf.plotting import ALL_PLOTS
from glueperf.preflight import check_before_any_job
from glueperf.snakemake_startup import hash_params_without_importing_pandas
from glueperf.tasks import dataset_spec, display_task

# Every run, no-op reruns included, would otherwise import pandas just to hash params.
hash_params_without_importing_pandas()

# The GPU-side jobs of this Snakemake process share one fork server, which ends with it.
os.environ[SNAKEMAKE_PID] = str(os.getpid())

# Names as the schema allows them: no '/' so that a name is one path component.
NAME_PATTERN = "[A-Za-z0-9][A-Za-z0-9_.-]*"


def check_references():
    """Every dataset a model names must be defined under `datasets`."""
    for model, spec in config["models"].items():
        for position, dataset in enumerate(spec.get("datasets", [])):
            if dataset not in config["datasets"]:
                raise WorkflowError(
                    f"config key models.{model}.datasets[{position}]: dataset '{dataset}' is "
                    f"not defined under `datasets` (defined: {sorted(config['datasets'])})"
                )


check_references()

# Wrong model paths, and classes that match no dataset's labels, before any job runs.
try:
    check_before_any_job(config)
except GlueperfError as error:
    raise WorkflowError(str(error)) from None


def model_config(model):
    """A model's config; a clear error for a name (from a target) that the config lacks."""
    if model not in config["models"]:
        raise WorkflowError(
            f"model '{model}' is not defined under `models` in the config "
            f"(defined: {sorted(config['models'])})"
        )
    return config["models"][model]


def dataset_config(dataset):
    """A dataset's config; a clear error for a name (from a target) that the config lacks."""
    if dataset not in config["datasets"]:
        raise WorkflowError(
            f"dataset '{dataset}' is not defined under `datasets` in the config "
            f"(defined: {sorted(config['datasets'])})"
        )
    return config["datasets"][dataset]


def datasets_of(model):
    return config["models"][model].get("datasets", list(config["datasets"]))


def evaluation_pairs():
    return [
        (model, dataset) for model in config["models"] for dataset in datasets_of(model)
    ]


def metrics_files(wildcards=None):
    """Every evaluation's metrics file: the aggregation's inputs."""
    return [
        expand(rules.evaluate_model.output.metrics, model=model, dataset=dataset)[0]
        for model, dataset in evaluation_pairs()
    ]


def final_outputs():
    """What `rule all` asks for; called once the stage files have defined their rules."""
    return [*rules.aggregate_metrics.output, *rules.plot_results.output]


def plot_outputs():
    """What plot_results writes, stem -> results/plots/<stem>.png for every figure (each bar
    chart of PLOTS, then the GLUE summary), each in the report under "1. Plots" with its own
    caption, report/plots/<stem>.rst. Made from the registry in glueperf/plotting.py, so that
    a new plot there is a new output here (and needs its caption file)."""
    return {
        stem: report(
            f"results/plots/{stem}.png",
            caption=f"../report/plots/{stem}.rst",
            category="1. Plots",
            labels={"plot": stem},
        )
        for stem in ALL_PLOTS
    }


def code_files(script):
    """The glueperf modules that scripts/<script> imports, directly or through one another: as
    inputs of its rule, so that a change to any of them reruns the rule (and what follows),
    like a change to the script itself. Derived from the imports, never kept by hand."""
    found, todo = set(), [CODE_DIR.parent / script]
    while todo:
        for path in glueperf_imports(todo.pop()):
            if path not in found:
                found.add(path)
                todo.append(path)
    return sorted(str(path) for path in found)


@functools.cache
def glueperf_imports(source):
    """The glueperf module files that the Python file ``source`` imports itself. Cached: every
    rule's scripts share most modules, and Snakemake parses the workflow on every run.
    """
    paths = []
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            package, *module = name.split(".")
            path = CODE_DIR.joinpath(*module or ["__init__"]).with_suffix(".py")
            if package == "glueperf" and path.is_file():
                paths.append(path)
    return paths


def dataset_file(wildcards):
    """The dataset's local parquet file: the config's path, or the fetched copy of a Hub file."""
    path = dataset_config(wildcards.dataset)["path"]
    if is_remote(path):
        return dataset_location(wildcards.dataset, path)
    # A missing file fails its own validation job, which names it, instead of the whole run:
    # with --keep-going the other datasets are still evaluated. So does a FIFO or a device
    # (/dev/zero), which Snakemake would otherwise open to checksum it.
    return path if Path(path).is_file() else []


def file_fingerprint(path):
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


def dataset_fingerprint(wildcards):
    """A local dataset file's fingerprint; none for a Hub file, whose fetched copy is only
    replaced by a refetch (newer than every result) and does not exist before the first run.
    """
    path = dataset_config(wildcards.dataset)["path"]
    return None if is_remote(path) else file_fingerprint(path)


def model_fingerprint(wildcards):
    """Fingerprints of the files a local model is loaded from (code included, which
    trust_remote_code may run); none for a fetched Hub model, as for Hub datasets."""
    if is_fetched(wildcards.model):
        return None
    files = local_model_files(model_dir(wildcards.model))
    return {f.name: file_fingerprint(f) for f in files} or None


def dataset_provenance(wildcards):
    if is_remote(dataset_config(wildcards.dataset)["path"]):
        return f"resources/provenance/datasets/{wildcards.dataset}.json"
    return []


def dataset_settings(wildcards):
    """How the dataset is read and scored (text columns, labels, metrics), as a params value:
    a change reruns its validation and evaluations, while display-only keys rerun neither. An
    evaluation's has the label_map that applies to its model: a change reruns just those.
    """
    name, model = wildcards.dataset, getattr(wildcards, "model", None)
    try:
        spec = dataset_spec(
            name, dataset_config(name), model, model and model_config(model)
        )
        check_dataset_metrics(name, spec.metrics, spec.regression)
    except GlueperfError as error:
        raise WorkflowError(str(error)) from error
    return asdict(spec)


def display_labels(wildcards=None):
    """What the table shows for people and no evaluation depends on: each dataset's Task label
    and each model's family (its row in the GLUE summary)."""
    return {
        "tasks": {
            name: display_task(entry) for name, entry in config["datasets"].items()
        },
        "families": {
            name: entry.get("family", name) for name, entry in config["models"].items()
        },
    }


def is_fetched(model):
    return is_hub_model(model_config(model)["source"])


def model_dir(model):
    """Where the model is loaded from: its fetched copy for a Hub id, else the directory."""
    return model_location(model, model_config(model)["source"])


def model_spec(wildcards):
    """What the metrics row records of the model, and where it is loaded from. A revision
    means nothing for a local directory, so none is recorded for one."""
    spec = model_config(wildcards.model)
    return {
        "source": spec["source"],
        "revision": spec["revision"] if is_fetched(wildcards.model) else None,
        "model_dir": model_dir(wildcards.model),
        "trust_remote_code": spec["trust_remote_code"],
    }


def model_files(wildcards):
    """The model's files as inputs, so that a refetch or a change reruns its evaluations."""
    if is_fetched(wildcards.model):
        return [model_dir(wildcards.model)]
    return [str(f) for f in local_model_files(model_dir(wildcards.model))]


def model_provenance(wildcards):
    if is_fetched(wildcards.model):
        return f"resources/provenance/models/{wildcards.model}.json"
    return []


def prefetch_targets():
    """Everything fetched from the Hub, for `snakemake prefetch` before an offline run."""
    models = [m for m in config["models"] if is_fetched(m)]
    datasets = [d for d, spec in config["datasets"].items() if is_remote(spec["path"])]
    return expand("resources/provenance/models/{model}.json", model=models) + expand(
        "resources/provenance/datasets/{dataset}.json", dataset=datasets
    )


def preparation_settings(wildcards):
    """What a prepared (traced) model depends on: the device kind, dtype and sentence length."""
    settings = evaluation_settings(wildcards)
    return {key: settings[key] for key in ("device", "dtype", "max_length")}


def evaluation_threads(wildcards):
    """Cores that an evaluation (or a model's tracing) takes. On a GPU the model runs there and
    the CPU only feeds it (tokenization uses every core either way): 4, so that `--cores 16`
    starts four jobs on a host with one GPU, the start-up of the waiting ones overlapping the
    running one. On the CPU the model itself computes with them: 8."""
    device = evaluation_settings(wildcards)["device"]
    on_gpu = device.startswith("cuda") or (device == "auto" and host_has_gpus())
    return 4 if on_gpu else 8


@functools.cache
def host_has_gpus():
    return host_gpus() != []  # None: GPUs that nvidia-smi cannot list


def evaluation_settings(wildcards):
    """Top-level `evaluation` with the model's own overrides on top."""
    overrides = model_config(wildcards.model).get("evaluation", {})
    return {**config["evaluation"], **overrides}


def where_results_are():
    """The closing message of a successful run."""
    lines = ["glueperf results:"]
    for path in final_outputs():
        kind = "plot:" if path.endswith(".png") else "table:"
        lines.append(f"  {kind:<8} {Path(path).resolve()}")
    lines.append(
        f"  per run: {Path('results/metrics').resolve()}/<model>/<dataset>.csv"
    )
    return "\n".join(lines)
