"""Rule validate_dataset: check one parquet file and describe it in a JSON summary
(glueperf/infra/validate_job.py), forked from this run's fork server when one is ready."""

from glueperf.infra.job import job_from_command_line
from glueperf.infra.jobs_client import run_light_job
from glueperf.infra.validate_job import validate_job

if __name__ == "__main__":
    job = job_from_command_line()
    run_light_job(validate_job, job, job.log[0])
