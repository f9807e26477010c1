"""How an evaluation loads its model since TorchScript was dropped: the transformers model, loaded
on the CPU before the claim where it runs on another device (glueperf.models.load_on_cpu), the
fork server importing its architecture's module once (modeling_module), and no pandas."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from conftest import REPO, write_dataset
from glueperf.evaluation import ModelHandle, Settings, evaluate, read_data
from glueperf.models import ALIGNMENT, load_model, load_on_cpu, modeling_module


def test_a_model_loaded_before_the_claim_is_the_model_load_model_gives(tmp_path, varied_model):
    """Moved to its device (here the CPU, where its weights are aligned as load_model aligns
    them), it predicts the very same; its loading counts in model_load_s."""
    data = write_dataset(tmp_path / "data.parquet", n=60)
    loaded = load_on_cpu(str(varied_model), "float32")
    assert loaded.load_s > 0 and next(loaded.model.parameters()).device.type == "cpu"
    cpu = Settings(device="cpu")
    expected = evaluate(read_data(data), ModelHandle(str(varied_model)), cpu)
    got = evaluate(read_data(data), ModelHandle(str(varied_model), loaded_on_cpu=loaded), cpu)
    for name, values in expected.predictions.items():
        assert np.array_equal(got.predictions[name], values, equal_nan=True), name
    assert got.timing.model_load_s > loaded.load_s
    assert got.timing.device_start_s == expected.timing.device_start_s == 0.0  # nothing to start
    assert got.loading.model_format == "transformers"
    moved = load_on_cpu(str(varied_model), "float32").to("cpu")[0]
    tensors = [*moved.parameters(), *moved.buffers()]
    assert all(t.data_ptr() % ALIGNMENT == 0 for t in tensors)
    own = load_model(str(varied_model), "float32", "cpu")[0]
    assert all(a.equal(b) for a, b in zip(moved.parameters(), own.parameters(), strict=True))


def test_the_architectures_module_is_named_for_the_fork_server(tmp_path, tiny_model):
    import importlib

    name = modeling_module(tiny_model)
    assert name == "transformers.models.bert.modeling_bert"
    assert hasattr(importlib.import_module(name), "BertForSequenceClassification")
    assert modeling_module(tmp_path / "absent") is None
    own = tmp_path / "own-code"
    own.mkdir()
    config = json.loads((tiny_model / "config.json").read_text())
    (own / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModel": "m.M"}}))
    (own / "vocab.txt").write_text("[PAD]\n")
    assert modeling_module(own) is None  # code of its own: nothing for the server to import
    (own / "config.json").write_text(json.dumps({**config, "model_type": "no-such-type"}))
    assert modeling_module(own) is None


def test_an_evaluation_imports_no_pandas(tmp_path, varied_model):
    """pandas' import costs an evaluation job more than its work on small data (BENCHMARKS.md):
    validating, reading, evaluating and writing the predictions need none. (pyarrow imports
    pandas by itself in to_numpy() and pa.array(), so those are not used.)"""
    data = tmp_path / "data.parquet"
    write_dataset(data, n=30)
    probe = f"""
import sys
sys.path.insert(0, {str(REPO / "scripts")!r})
from glueperf.evaluation import ModelHandle, Settings, evaluate, read_data, write_predictions
from glueperf.tasks import DatasetSpec
from glueperf.validation import summarize
summarize({str(data)!r}, DatasetSpec())
measured = evaluate(
    read_data({str(data)!r}), ModelHandle({str(varied_model)!r}), Settings(device="cpu")
)
write_predictions(measured.predictions, {str(tmp_path / "predictions.parquet")!r})
print(measured.loading.model_format, "pandas" in sys.modules)
"""
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["transformers", "False"]
    written = pq.ParquetFile(tmp_path / "predictions.parquet").read()
    assert written.num_rows == 30 and written.column("probability").type == pa.float32()
