"""Rule evaluate_model: one model on one dataset -> a one-row metrics CSV and predictions."""

import pandas as pd
import torch

from glueperf.engine import Batching
from glueperf.evaluation import evaluate
from glueperf.outputs import run_script, write_csv, write_parquet


def main(snakemake):
    params, settings = snakemake.params, snakemake.params.settings
    torch.set_num_threads(snakemake.threads)
    row, predictions = evaluate(
        model_name=snakemake.wildcards.model,
        model_source=params.model["source"],
        model_revision=params.model["revision"],
        dataset_name=snakemake.wildcards.dataset,
        dataset_path=params.path,
        task=params.task,
        text_column=params.columns["text"],
        label_column=params.columns["label"],
        device=settings["device"],
        dtype=settings["dtype"],
        batching=Batching(
            batch_tokens=settings["batch_tokens"],
            max_batch_size=settings["max_batch_size"],
            max_length=settings["max_length"],
        ),
    )
    # Predictions first: the metrics file is the rule's sign that the job finished.
    write_parquet(predictions, snakemake.output.predictions)
    write_csv(pd.DataFrame([row]), snakemake.output.metrics)


if __name__ == "__main__":
    run_script(lambda: main(snakemake), snakemake.log[0])  # noqa: F821 (injected by Snakemake)
