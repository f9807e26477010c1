# One job draws every figure (one process start and one matplotlib import, not one per plot);
# its outputs, one per figure, come from the PLOTS registry (common.smk: plot_outputs).
rule plot_results:
    input:
        table=rules.aggregate_metrics.output.table,
        summary=rules.aggregate_metrics.output.summary,
    output:
        **plot_outputs(),
    log:
        "results/logs/plot_results.log",
    conda:
        "../envs/plot.yaml"
    params:
        code=code_fingerprint("plot_results.py"),
    script:
        "../scripts/plot_results.py"
