rule validate_dataset:
    input:
        data=dataset_file,
        provenance=dataset_provenance,
    output:
        summary="results/validated/{dataset}.json",
    log:
        "results/logs/validate_dataset/{dataset}.log",
    priority: LIGHT_JOBS_FIRST
    conda:
        "../envs/evaluate.yaml"
    params:
        **job_params(
            "validate_dataset",
            path=lookup(dpath="datasets/{dataset}/path", within=config),
            dataset=dataset_settings,
            sha256=lookup(
                dpath="datasets/{dataset}/sha256", within=config, default=None
            ),
            fingerprint=dataset_fingerprint,
            code=code_fingerprint("validate_dataset.py"),
        ),
    shell:
        JOB_COMMAND
