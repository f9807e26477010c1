"""Rule plot_results as a function of its job (glueperf/infra/job.py); scripts/plot_results.py
runs it, forked from this run's results server when there is one (glueperf/infra/forkserver.py,
``run_post_job``). matplotlib and pandas are imported inside the function: the job's own process,
which only asks the server for a child, imports neither."""


def plot_job(job):
    """Every figure, drawn by the job's threads (processes forked from this one): the bar
    charts of the performance table (score, accuracy, time, memory, throughput, latency,
    energy), the trade-offs and the GLUE summary, each as a PNG and in the vector formats of the
    config (the rule's outputs say which)."""
    from glueperf.aggregate import read_glue_summary, read_performance_table
    from glueperf.plotting import plot_all

    table = read_performance_table(job.input.table)
    summary = read_glue_summary(job.input.summary)
    plot_all(table, summary, dict(job.output.items()), workers=job.threads)
