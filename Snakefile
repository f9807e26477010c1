# glueperf: how well, how fast and how leanly a Hugging Face text classifier runs on GLUE data.
# Entry point only: configuration, the stages' rule files, and the final targets.
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("9.0")

# Snakemake reads YAML leniently (of a key written twice the last one wins) and names no file that
# is not a mapping: every config file is read strictly first (scripts/glueperf/infra/configfile.py).
sys.path.insert(0, f"{workflow.basedir}/scripts")
from glueperf.infra.configfile import ConfigFileError, check_config_files

try:
    check_config_files(["config.yaml", *workflow.overwrite_configfiles])
except ConfigFileError as error:
    raise WorkflowError(str(error)) from None


# A config file given on the command line (--configfile) is the whole configuration, as a user
# means it: config.yaml is read only without one (Snakemake would otherwise merge the two, keep
# config.yaml's models and datasets, and say that config.yaml "is extended").
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


# `snakemake --report report.html` after a run: this text, the plots and tables with captions.
report: "report/workflow.rst"


include: "rules/common.smk"


wildcard_constraints:
    model=NAME_PATTERN,
    dtype=DTYPE_PATTERN,
    dataset=NAME_PATTERN,


include: "rules/fetch.smk"
include: "rules/validate.smk"
include: "rules/evaluate.smk"
include: "rules/aggregate.smk"
include: "rules/plot.smk"


# Rules that run where Snakemake runs, never on a cluster node (seconds of work each, and the
# fetches need the internet that a login node has; see profiles/slurm). A local run is not affected.
localrules:
    fetch_model,
    fetch_dataset,
    prefetch,
    validate_dataset,
    hash_model,
    aggregate_metrics,
    plot_results,


rule all:
    default_target: True
    input:
        final_outputs(),


onstart:
    start_up(
        startup.when_started,
        config,
        workflow.overwrite_configfiles,
        evaluations_here(),
    )


# Snakemake waits about a second for its scheduler's last timer before it exits: not at the end.
onsuccess:
    print(where_results_are())
    cancel_scheduler_timers()


onerror:
    cancel_scheduler_timers()
