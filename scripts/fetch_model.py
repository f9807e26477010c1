"""Rule fetch_model: download a Hub model at a pinned commit into resources/models/{model}."""

from pathlib import Path

from glueperf.fetch import fetch_model
from glueperf.infra.job import job_from_command_line
from glueperf.infra.script import run_script
from glueperf.outputs import write_json


def main(job):
    params = job.params
    provenance = fetch_model(params.source, params.revision, Path(job.output.model))
    write_json(provenance, job.output.provenance)


if __name__ == "__main__":
    job = job_from_command_line()
    run_script(lambda: main(job), job.log[0])
