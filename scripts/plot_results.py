"""Rule plot_results: every figure in one process (glueperf/infra/plot_job.py), forked from this
run's results server when there is one."""

from glueperf.infra.forkclient import run_post_job
from glueperf.infra.job import job_from_command_line
from glueperf.infra.plot_job import plot_job

if __name__ == "__main__":
    job = job_from_command_line()
    run_post_job(plot_job, job, job.log[0])
