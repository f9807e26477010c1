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
        path=dataset_path,
        dataset=dataset_settings,
        sha256=dataset_checksum,
        fingerprint=dataset_fingerprint,
    script:
        "../scripts/validate_dataset.py"
