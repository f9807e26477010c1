"""Rule aggregate_metrics as a function of its job (glueperf/infra/job.py);
scripts/aggregate_metrics.py runs it, forked from this run's results server when there is one
(glueperf/infra/forkserver.py, ``run_post_job``). pandas is imported inside the function: the
job's own process, which only asks the server for a child, imports none of it."""

# The note of the table page's rows of evaluations scored through a label_map.
CROSS_TASK_NOTE = "cross-task evaluations, classes matched through a label_map"


def aggregate_job(job):
    """Merge the one-row metrics files into model_performance.csv, with each other dtype's
    agreement with float32 from the predictions files, and summarize its GLUE tasks into
    glue_summary.csv; each also as an HTML page for the report."""
    from glueperf.aggregate import (
        CROSS_TASK,
        agreement,
        glue_summary,
        performance_table,
        read_metrics,
        read_predictions,
    )
    from glueperf.outputs import write_csv
    from glueperf.report_tables import write_html_table

    labels = job.params.labels
    output = job.output
    metrics = read_metrics(job.input.metrics)
    table = performance_table(
        metrics, labels["tasks"], labels["families"], agreement(metrics, read_predictions)
    )
    write_csv(table, output.table)
    write_csv(glue_summary(table), output.summary)
    write_html_table(
        output.table,
        output.table_page,
        "model_performance.csv",
        note="One row per model and dataset, as in the CSV file; its caption says what each "
        "column means.",
        flagged=(CROSS_TASK, CROSS_TASK_NOTE),
    )
    write_html_table(
        output.summary,
        output.summary_page,
        "glue_summary.csv",
        note="Official score x 100 of each task-matched GLUE evaluation, as in the CSV file; "
        "no row: no GLUE task was scored by a model trained for it.",
    )
