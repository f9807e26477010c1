"""Rule evaluate_model: one model on one dataset -> a one-row metrics CSV and predictions
(glueperf/infra/evaluate_job.py), in a process forked from this run's fork server
(glueperf/infra/forkserver.py)."""

from glueperf.infra.evaluate_job import evaluate_job, may_run_ahead, server_imports
from glueperf.infra.job import job_from_command_line
from glueperf.infra.jobs_client import run_job

if __name__ == "__main__":
    job = job_from_command_line()
    run_job(evaluate_job, job, job.log[0], server_imports, ahead=may_run_ahead)
