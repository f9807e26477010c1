"""Rule hash_model: the sha256 of a local model's files, once per model for all its evaluations'
provenance (glueperf/infra/hash_job.py), forked from this run's fork server when one is ready."""

from glueperf.infra.hash_job import hash_job
from glueperf.infra.job import job_from_command_line
from glueperf.infra.jobs_client import run_light_job

if __name__ == "__main__":
    job = job_from_command_line()
    run_light_job(hash_job, job, job.log[0])
