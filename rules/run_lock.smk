# One run at a time per directory, no stale Snakemake lock, and one config's results per
# directory: side effects of reading the Snakefile, kept apart from the helpers in common.smk.
import sys

from snakemake.exceptions import WorkflowError

from glueperf import GlueperfError
from glueperf.infra.locks import hold_run_lock
from glueperf.infra.resultsdir import (
    ResultsOfAnotherConfig,
    check_results_config,
    config_files,
    record_results_config,
)
from glueperf.infra.snakemake_internals import (
    executes_jobs,
    makes_report,
    record_lock_owner,
    remove_stale_lock,
)


# Exactly one run executes jobs in a directory at a time: Snakemake's own lock lets runs started
# together through. Taken as the Snakefile is read, before Snakemake's lock, for the life of
# the process, by a command line that runs jobs (not -n, --lint, --report, --unlock...), and
# again at onstart for Snakemake used from Python (glueperf/infra/locks.py: hold_run_lock).
def hold_run_lock_or_stop():
    try:
        hold_run_lock()
    except GlueperfError as error:  # RunInProgress, or a lock file that cannot be trusted
        raise WorkflowError(str(error)) from None


# A run killed outright (SIGKILL, power loss) leaves Snakemake's lock behind, and every later
# run would stop at it: remove it when the run that took it is gone (see glueperf/infra/snakemake_internals.py).
if workflow.is_main_process:
    if executes_jobs():
        hold_run_lock_or_stop()
    stale_lock_note = remove_stale_lock()
    if stale_lock_note:
        print(stale_lock_note, file=sys.stderr)


# One directory holds the results of one config (glueperf/infra/resultsdir.py): a run or a report
# with other config files than those that made results/ stops here, before it overwrites them or
# reports on other models. A run that executes jobs then claims results/, also when it finds
# nothing to do (at onstart too, for Snakemake used from Python).
RUN_CONFIG_FILES = config_files(workflow.overwrite_configfiles)


def keep_results_of_one_config(report=False):
    try:
        check_results_config(RUN_CONFIG_FILES, report=report)
    except ResultsOfAnotherConfig as error:
        raise WorkflowError(str(error)) from None


if workflow.is_main_process and (executes_jobs() or makes_report()):
    keep_results_of_one_config(report=makes_report())
    if executes_jobs():
        record_results_config(RUN_CONFIG_FILES, config)


onstart:
    hold_run_lock_or_stop()  # held already when started from the command line
    record_lock_owner()
    keep_results_of_one_config()  # checked and recorded already from the command line
    record_results_config(RUN_CONFIG_FILES, config)
