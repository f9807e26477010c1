"""Rule prepare_model: trace a model once, for evaluations that load it fast
(glueperf/infra/prepare_job.py), in a process forked from this run's fork server
(glueperf/infra/forkserver.py)."""

from glueperf.infra.forkserver import run_job
from glueperf.infra.prepare_job import prepare_job

if __name__ == "__main__":
    run_job(prepare_job, snakemake, snakemake.log[0])  # noqa: F821 (injected by Snakemake)
