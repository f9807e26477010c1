# One job draws every figure (one process start and one matplotlib import, not one per plot), with
# a process per figure where --cores allows; its outputs, a PNG per figure and its vector files,
# come from the registry in glueperf/plotting.py (common.smk: plot_outputs). The formats are a
# param as well, so that dropping one reruns the job, which removes that format's files.
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
    threads: len(FIGURES)
    params:
        **job_params(
            "plot_results",
            code=code_fingerprint("plot_results.py"),
            vector_formats=config["plots"]["vector_formats"],
        ),
    shell:
        JOB_COMMAND
