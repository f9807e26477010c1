rule fetch_model:
    output:
        model=directory("resources/models/{model}"),
        provenance="resources/provenance/models/{model}.json",
    log:
        "results/logs/fetch_model/{model}.log",
    conda:
        "../envs/fetch.yaml"
    params:
        source=model_source,
        revision=model_revision,
    script:
        "../scripts/fetch_model.py"


rule fetch_dataset:
    output:
        data="resources/datasets/{dataset}.parquet",
        provenance="resources/provenance/datasets/{dataset}.json",
    log:
        "results/logs/fetch_dataset/{dataset}.log",
    conda:
        "../envs/fetch.yaml"
    params:
        url=dataset_path,
        revision=dataset_revision,
    script:
        "../scripts/fetch_dataset.py"


rule prefetch:
    default_target: False
    input:
        prefetch_targets(),
