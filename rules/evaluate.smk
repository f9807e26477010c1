rule evaluate_model:
    input:
        summary="results/validated/{dataset}.json",
        data=dataset_file,
        model=model_files,
        code=code_files("engine.py", "evaluation.py", "measure.py", "metrics.py"),
    output:
        metrics="results/metrics/{model}/{dataset}.csv",
        predictions="results/predictions/{model}/{dataset}.parquet",
    params:
        model=model_spec,
        path=dataset_path,
        columns=dataset_columns,
        task=dataset_task,
        settings=evaluation_settings,
    log:
        "results/logs/evaluate_model/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/evaluate_model/{model}/{dataset}.tsv"
    threads: 8
    resources:
        gpu=1,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../scripts/evaluate_model.py"
