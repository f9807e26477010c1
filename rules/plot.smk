rule plot_metric:
    input:
        table="results/model_performance.csv",
        code=code_files("plotting.py"),
    output:
        plot="results/plots/{plot}.png",
    log:
        "results/logs/plot_metric/{plot}.log",
    conda:
        "../envs/plot.yaml"
    script:
        "../scripts/plot_metric.py"
