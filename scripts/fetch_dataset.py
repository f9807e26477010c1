"""Rule fetch_dataset: download a Hub dataset file at a pinned commit into resources/datasets/."""

from pathlib import Path

from glueperf.fetch import fetch_dataset_file
from glueperf.infra.job import job_from_command_line
from glueperf.infra.script import run_script
from glueperf.outputs import write_json


def main(job):
    params = job.params
    provenance = fetch_dataset_file(params.url, params.revision, Path(job.output.data))
    write_json(provenance, job.output.provenance)


if __name__ == "__main__":
    job = job_from_command_line()
    run_script(lambda: main(job), job.log[0])
