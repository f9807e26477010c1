rule aggregate_metrics:
    input:
        metrics=metrics_files,
        code=code_files("aggregate.py"),
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
    script:
        "../scripts/aggregate_metrics.py"
