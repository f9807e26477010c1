# One job: the performance table and the GLUE summary made of it (one process start, not two),
# each also as an HTML page that the report shows in the page (it offers a CSV as a download).
# The predictions of models evaluated in float32 and another dtype are read too: the table
# says how far the other dtype's predictions agree with float32's.
# Its inputs grow with the experiment (a file per evaluation): past about 2,000 evaluations its
# job's description no longer fits a shell command and goes in a file (docs/internals.md, "How a
# rule runs its script").
rule aggregate_metrics:
    input:
        metrics=metrics_files,
        predictions=agreement_files,
    output:
        table=report(
            "results/model_performance.csv",
            caption="../report/model_performance.rst",
            category="2. Performance table",
            labels={"table": "all models and datasets", "view": "the CSV file"},
        ),
        summary=report(
            "results/glue_summary.csv",
            caption="../report/glue_summary.rst",
            category="2. Performance table",
            labels={"table": "GLUE summary", "view": "the CSV file"},
        ),
        table_page=report(
            "results/model_performance.html",
            caption="../report/model_performance.rst",
            category="2. Performance table",
            labels={"table": "all models and datasets", "view": "a table"},
        ),
        summary_page=report(
            "results/glue_summary.html",
            caption="../report/glue_summary.rst",
            category="2. Performance table",
            labels={"table": "GLUE summary", "view": "a table"},
        ),
    log:
        "results/logs/aggregate_metrics.log",
    conda:
        "../envs/aggregate.yaml"
    params:
        **job_params(
            "aggregate_metrics",
            labels=display_labels,
            code=code_fingerprint("aggregate_metrics.py"),
        ),
    shell:
        JOB_COMMAND
