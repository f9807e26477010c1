"""The Hub unreachable: loading a Hub model or reading a Hub dataset file fails within seconds
with one line that names it and says how to run offline (HF_HUB_OFFLINE); a Hub model already
in the cache still loads. In the pipeline: test_bad_input_pipeline.py."""

from __future__ import annotations

import json
import subprocess
import sys

from bad_input import offline_hub_env
from conftest import REPO

HUB_PROBE = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from glueperf import GlueperfError
from glueperf.evaluation import load_model
from glueperf.validation import read_table
calls = {
    "model": lambda: load_model(sys.argv[2], None, "float32", "cpu"),
    "dataset": lambda: read_table("hf://datasets/glueperf-test/absent/data.parquet"),
}
for name, call in calls.items():
    started = time.monotonic()
    try:
        call()
        outcome = "loaded"
    except GlueperfError as error:
        outcome = str(error)
    print(json.dumps({"name": name, "seconds": time.monotonic() - started, "outcome": outcome}))
"""


def probe_hub(source: str, env: dict) -> dict[str, dict]:
    result = subprocess.run(
        [sys.executable, "-c", HUB_PROBE, str(REPO / "scripts"), source],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return {line["name"]: line for line in lines}


def test_unreachable_hub_fails_within_seconds_with_offline_advice(tmp_path):
    found = probe_hub("glueperf-test/absent-model", offline_hub_env(tmp_path / "hf-home"))
    model, dataset = found["model"], found["dataset"]
    assert model["seconds"] < 20, model
    assert "model 'glueperf-test/absent-model'" in model["outcome"]
    assert "unreachable" in model["outcome"] and "HF_HUB_OFFLINE" in model["outcome"]
    assert dataset["seconds"] < 20, dataset
    assert "hf://datasets/glueperf-test/absent/data.parquet" in dataset["outcome"]
    assert "HF_HUB_OFFLINE" in dataset["outcome"]


def test_a_hub_model_in_the_cache_loads_while_the_hub_is_unreachable(tmp_path, tiny_model):
    from hub_server import FakeHub
    from huggingface_hub import snapshot_download

    env = offline_hub_env(tmp_path / "hf-home")
    with FakeHub() as hub:  # fill the cache as an earlier, online run would have
        hub.add_model_dir("acme/tiny", tiny_model)
        snapshot_download("acme/tiny", cache_dir=tmp_path / "hf-home" / "hub", endpoint=hub.url)
    found = probe_hub("acme/tiny", env)  # the same cache, the Hub gone
    assert found["model"]["outcome"] == "loaded"
    assert found["model"]["seconds"] < 20
