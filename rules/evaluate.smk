rule hash_model:
    input:
        model=model_files,
    output:
        checksums="resources/checksums/{model}.json",
    log:
        "results/logs/hash_model/{model}.log",
    priority: LIGHT_JOBS_FIRST
    conda:
        "../envs/evaluate.yaml"
    params:
        **job_params(
            "hash_model",
            model=model_spec,
            model_fingerprint=model_fingerprint,
            code=code_fingerprint("hash_model.py"),
        ),
    shell:
        JOB_COMMAND


rule evaluate_model:
    input:
        summary=rules.validate_dataset.output.summary,
        data=dataset_file,
        model=model_files,
        model_provenance=model_provenance,
    output:
        metrics=report(
            METRICS_PATH,
            caption="../report/metrics.rst",
            category="3. Per-dataset metrics",
            subcategory="{model}",
            labels={"dataset": "{dataset}", "model": "{model}", "dtype": "{dtype}"},
        ),
        predictions=PREDICTIONS_PATH,
    log:
        "results/logs/evaluate_model/{model}/{dtype}/{dataset}.log",
    benchmark:
        "results/benchmarks/evaluate_model/{model}/{dtype}/{dataset}.tsv"
    conda:
        "../envs/evaluate.yaml"
    threads: evaluation_threads
    resources:
        gpu=1,
    params:
        **job_params(
            "evaluate_model",
            model=model_spec,
            path=lookup(dpath="datasets/{dataset}/path", within=config),
            dataset=dataset_settings,
            settings=evaluation_settings,
            model_fingerprint=model_fingerprint,
            code=code_fingerprint("evaluate_model.py"),
        ),
    shell:
        JOB_COMMAND
