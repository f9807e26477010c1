"""Rule validate_dataset: check one parquet file and describe it in a JSON summary
(glueperf/infra/validate_job.py), forked from this run's fork server when one is ready."""

from glueperf.infra.forkserver import run_light_job
from glueperf.infra.validate_job import validate_job

if __name__ == "__main__":
    run_light_job(validate_job, snakemake, snakemake.log[0])  # noqa: F821 (injected by Snakemake)
