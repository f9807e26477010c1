# glueperf: how well, how fast and how leanly a Hugging Face text classifier runs on GLUE data.
# Entry point only: configuration, the stages' rule files, and the final targets.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/validate.smk"
include: "rules/evaluate.smk"
include: "rules/aggregate.smk"
include: "rules/plot.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
