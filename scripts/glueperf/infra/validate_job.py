"""Rule validate_dataset as a function of its job (glueperf/infra/job.py);
scripts/validate_dataset.py runs it, forked from the run's fork server when one is ready
(glueperf/infra/jobs_client.py, ``run_light_job``)."""


def validate_job(job):
    """Check one parquet file and describe it in a JSON summary."""
    from glueperf.outputs import read_json, write_json
    from glueperf.tasks import DatasetSpec
    from glueperf.validation import summarize

    params = job.params
    # No input file when the configured local file is missing: summarize names it.
    data = job.input.data or params.path
    summary = summarize(data, DatasetSpec(**params.dataset), params.sha256)
    summary["source"] = params.path
    if job.input.provenance:  # fetched from the Hub: which commit
        summary["commit"] = read_json(job.input.provenance)["commit"]
    write_json(summary, job.output.summary)
