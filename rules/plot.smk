rule plot_metric:
    input:
        table="results/model_performance.csv",
        code=code_files("plotting.py"),
    output:
        plot=report(
            "results/plots/{plot}.png",
            caption="../report/plot.rst",
            category="1. Plots",
            labels={"plot": "{plot}"},
        ),
    log:
        "results/logs/plot_metric/{plot}.log",
    conda:
        "../envs/plot.yaml"
    script:
        "../scripts/plot_metric.py"
