"""Rule hash_model: the sha256 of a local model's files, once per model for all its evaluations'
provenance (glueperf/infra/hash_job.py), forked from this run's fork server when one is ready."""

from glueperf.infra.forkserver import run_light_job
from glueperf.infra.hash_job import hash_job

if __name__ == "__main__":
    run_light_job(hash_job, snakemake, snakemake.log[0])  # noqa: F821 (injected by Snakemake)
