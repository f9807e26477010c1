"""Rule evaluate_model: one model on one dataset -> a one-row metrics CSV and predictions
(glueperf/infra/evaluate_job.py), in a process forked from this run's fork server
(glueperf/infra/forkserver.py)."""

from glueperf.infra.evaluate_job import evaluate_job, server_imports
from glueperf.infra.forkserver import run_job

if __name__ == "__main__":
    run_job(evaluate_job, snakemake, snakemake.log[0], server_imports)  # noqa: F821 (injected)
