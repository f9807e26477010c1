rule evaluate_model:
    input:
        summary="results/validated/{dataset}.json",
        data=dataset_file,
        model=model_files,
        model_provenance=model_provenance,
        code=code_files(
            "devices.py", "engine.py", "evaluation.py", "measure.py", "metrics.py"
        ),
    output:
        metrics=report(
            "results/metrics/{model}/{dataset}.csv",
            caption="../report/metrics.rst",
            category="3. Per-dataset metrics",
            subcategory="{model}",
            labels={"dataset": "{dataset}", "model": "{model}"},
        ),
        predictions="results/predictions/{model}/{dataset}.parquet",
    log:
        "results/logs/evaluate_model/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/evaluate_model/{model}/{dataset}.tsv"
    conda:
        "../envs/evaluate.yaml"
    threads: 8
    resources:
        gpu=1,
    params:
        model=model_spec,
        path=dataset_path,
        columns=dataset_columns,
        task=dataset_task,
        settings=evaluation_settings,
    script:
        "../scripts/evaluate_model.py"
