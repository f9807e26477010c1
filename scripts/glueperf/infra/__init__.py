"""The run infrastructure: how the pipeline's jobs run, apart from what they compute.

The fork server, the locks (devices, jobs, runs), the frame of every job's script, the start-up
of a Snakemake run (strict config files, one config's results per directory, Snakemake's
internals) and the rules' input functions. The domain modules one level up (tasks, models,
engine, evaluation, metrics, aggregation, plots ...) never import this package: imports run one
way, from here to them.
"""
