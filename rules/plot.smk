rule plot_metric:
    input:
        table=rules.aggregate_metrics.output.table,
        code=code_files("plot_metric.py"),
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


rule plot_glue_summary:
    input:
        summary=rules.summarize_glue.output.summary,
        code=code_files("plot_glue_summary.py"),
    output:
        plot=report(
            "results/plots/glue_summary.png",
            caption="../report/glue_summary.rst",
            category="1. Plots",
            labels={"plot": "glue_summary"},
        ),
    log:
        "results/logs/plot_glue_summary.log",
    conda:
        "../envs/plot.yaml"
    script:
        "../scripts/plot_glue_summary.py"
