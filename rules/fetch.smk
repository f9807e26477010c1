rule fetch_model:
    output:
        model=directory("resources/models/{model}"),
        provenance="resources/provenance/models/{model}.json",
    log:
        "results/logs/fetch_model/{model}.log",
    conda:
        "../envs/fetch.yaml"
    params:
        **job_params(
            "fetch_model",
            source=lookup(dpath="models/{model}/source", within=config),
            revision=lookup(dpath="models/{model}/revision", within=config),
        ),
    shell:
        JOB_COMMAND


rule fetch_dataset:
    output:
        data="resources/datasets/{dataset}.parquet",
        provenance="resources/provenance/datasets/{dataset}.json",
    log:
        "results/logs/fetch_dataset/{dataset}.log",
    conda:
        "../envs/fetch.yaml"
    params:
        **job_params(
            "fetch_dataset",
            url=lookup(dpath="datasets/{dataset}/path", within=config),
            revision=lookup(dpath="datasets/{dataset}/revision", within=config),
        ),
    shell:
        JOB_COMMAND


rule prefetch:
    default_target: False
    input:
        prefetch_targets(),
