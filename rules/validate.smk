rule validate_dataset:
    input:
        data=dataset_file,
        provenance=dataset_provenance,
        code=code_files("validate_dataset.py"),
    output:
        summary="results/validated/{dataset}.json",
    log:
        "results/logs/validate_dataset/{dataset}.log",
    conda:
        "../envs/validate.yaml"
    params:
        path=lookup(dpath="datasets/{dataset}/path", within=config),
        dataset=dataset_settings,
        sha256=lookup(dpath="datasets/{dataset}/sha256", within=config, default=None),
        fingerprint=dataset_fingerprint,
    script:
        "../scripts/validate_dataset.py"
