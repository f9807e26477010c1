rule aggregate_metrics:
    input:
        metrics=metrics_files,
        code=code_files("aggregate_metrics.py"),
    output:
        table=report(
            "results/model_performance.csv",
            caption="../report/model_performance.rst",
            category="2. Performance table",
            labels={"table": "all models and datasets"},
        ),
    log:
        "results/logs/aggregate_metrics.log",
    conda:
        "../envs/aggregate.yaml"
    params:
        labels=display_labels,
    script:
        "../scripts/aggregate_metrics.py"


rule summarize_glue:
    input:
        table=rules.aggregate_metrics.output.table,
        code=code_files("summarize_glue.py"),
    output:
        summary=report(
            "results/glue_summary.csv",
            caption="../report/glue_summary.rst",
            category="2. Performance table",
            labels={"table": "GLUE summary"},
        ),
    log:
        "results/logs/summarize_glue.log",
    conda:
        "../envs/aggregate.yaml"
    script:
        "../scripts/summarize_glue.py"
