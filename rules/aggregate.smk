rule aggregate_metrics:
    input:
        metrics=metrics_files,
        code=code_files("aggregate.py"),
    output:
        table="results/model_performance.csv",
    log:
        "results/logs/aggregate_metrics.log",
    conda:
        "../envs/aggregate.yaml"
    script:
        "../scripts/aggregate_metrics.py"
