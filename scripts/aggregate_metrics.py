"""Rule aggregate_metrics: merge the one-row metrics files into model_performance.csv, with
each other dtype's agreement with float32 from the predictions files, and summarize its GLUE
tasks into glue_summary.csv; each also as an HTML page for the report."""

from glueperf.aggregate import (
    CROSS_TASK,
    agreement,
    glue_summary,
    performance_table,
    read_metrics,
    read_predictions,
)
from glueperf.infra.script import run_script
from glueperf.outputs import write_csv
from glueperf.report_tables import write_html_table

CROSS_TASK_ROWS = (CROSS_TASK, "cross-task evaluations, classes matched through a label_map")


def main(snakemake):
    labels = snakemake.params.labels
    output = snakemake.output
    metrics = read_metrics(snakemake.input.metrics)
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
        flagged=CROSS_TASK_ROWS,
    )
    write_html_table(
        output.summary,
        output.summary_page,
        "glue_summary.csv",
        note="Official score x 100 of each task-matched GLUE evaluation, as in the CSV file; "
        "no row: no GLUE task was scored by a model trained for it.",
    )


if __name__ == "__main__":
    run_script(lambda: main(snakemake), snakemake.log[0])  # noqa: F821 (injected by Snakemake)
