"""Rule hash_model as a function of its job (glueperf/infra/job.py); scripts/hash_model.py runs it.

A local model's files are hashed once per model, not in each of its evaluations (DistilBERT's
268 MB take most of a second), and with no device held: every evaluation of the model records
these checksums (``model_weights_sha256``). A Hub model's are in its fetch provenance. Needs no
torch: the job is a light one (glueperf/infra/jobs_client.py, ``run_light_job``).
"""


def hash_job(job):
    """sha256 of each file of the model directory that its model is loaded from."""
    from glueperf.checksums import local_checksums
    from glueperf.outputs import write_json

    model_dir = job.params.model["model_dir"]
    write_json({"source": model_dir, "sha256": local_checksums(model_dir)}, job.output.checksums)
