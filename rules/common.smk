# The rules' helpers: the functions of glueperf/infra/plan.py for Snakemake (wildcards, `rules`,
# `expand`, `report()`), and the run's start-up (glueperf/infra/startup.py). Importable: the
# Snakefile puts scripts/ on the path.
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from glueperf import GlueperfError, results
from glueperf.infra import plan, startup
from glueperf.infra.job import JOB_COMMAND, job_params
from glueperf.infra.snakemake_internals import cancel_scheduler_timers, runs_jobs_here
from glueperf.infra.configfile import schema_error
from glueperf.plotting import FIGURES, figure_files
from glueperf.preflight import check_before_any_job

try:
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError as error:  # one line instead of the config and the whole schema
    raise WorkflowError(
        schema_error(error, workflow.overwrite_configfiles or ["config.yaml"])
    ) from None
plan.check_references(config)

# Names as the schema allows them: no '/' so that a name is one path component; a dtype one
# of glueperf.models.DTYPES.
NAME_PATTERN = "[A-Za-z0-9][A-Za-z0-9_.-]*"
DTYPE_PATTERN = plan.DTYPE_PATTERN
LIGHT_JOBS_FIRST = plan.LIGHT_JOBS_FIRST


def start_up(step, *args):
    """A step of the run's start-up; what it refuses stops Snakemake with its message alone."""
    try:
        step(*args)
    except GlueperfError as error:
        raise WorkflowError(str(error)) from None


# Wrong model paths, and classes that match no dataset's labels, before any job runs.
start_up(check_before_any_job, config)

# The config is sound: the run lock, results/ of this config, no stale Snakemake lock... (again
# at onstart, in the Snakefile).
start_up(
    startup.when_read,
    config,
    workflow.overwrite_configfiles,
    workflow.is_main_process,
    not workflow.deployment_settings.deployment_method,
)


# Where each evaluation's results go (glueperf/results.py).
METRICS_PATH, PREDICTIONS_PATH = results.METRICS_PATH, results.PREDICTIONS_PATH


def metrics_files(wildcards=None):
    """Every evaluation's metrics file: the aggregation's inputs."""
    return plan.metrics_files(config)


def agreement_files(wildcards=None):
    """The predictions that the aggregation compares with float32's."""
    return plan.agreement_files(config)


def final_outputs():
    """What `rule all` asks for; called once the stage files have defined their rules."""
    return [*rules.aggregate_metrics.output, *rules.plot_results.output]


def plot_outputs():
    """What plot_results writes, stem -> [results/plots/<stem>.png, then its vector files]
    for every figure (glueperf.plotting.figure_files), each PNG in the report under "1. Plots"
    with its own caption, report/plots/<stem>.rst."""
    outputs = {}
    files = figure_files(config["plots"]["vector_formats"])
    for stem, (png, *vectors) in files.items():
        caption = f"../report/plots/{stem}.rst"
        shown = report(png, caption=caption, category="1. Plots", labels={"plot": stem})
        outputs[stem] = [shown, *vectors]
    return outputs


def evaluations_here():
    """Whether this run evaluates on this host (asked at onstart): see startup.when_started."""
    return runs_jobs_here(workflow, "evaluate_model")


def where_results_are():
    return plan.where_results_are(final_outputs())


def prefetch_targets():
    return plan.prefetch_targets(config)


def display_labels(wildcards=None):
    return plan.display_labels(config)


def code_fingerprint(script):
    return plan.code_fingerprint(script)


# Input and params functions of a dataset's jobs ({dataset}).
def dataset_file(wildcards):
    return plan.dataset_file(config, wildcards.dataset)


def dataset_provenance(wildcards):
    return plan.dataset_provenance(config, wildcards.dataset)


def dataset_fingerprint(wildcards):
    return plan.dataset_fingerprint(config, wildcards.dataset)


def dataset_settings(wildcards):
    model = getattr(wildcards, "model", None)
    return plan.dataset_settings(config, wildcards.dataset, model)


# ... and of a model's jobs ({model}).
def model_files(wildcards):
    return plan.model_files(config, wildcards.model)


def model_provenance(wildcards):
    return plan.model_provenance(config, wildcards.model)


def model_fingerprint(wildcards):
    return plan.model_fingerprint(config, wildcards.model)


def model_spec(wildcards):
    return plan.model_spec(config, wildcards.model)


def evaluation_settings(wildcards):
    return plan.evaluation_settings(config, wildcards.model, wildcards.dtype)


def evaluation_threads(wildcards):
    return plan.evaluation_threads(config, wildcards.model)
