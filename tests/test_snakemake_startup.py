"""glueperf.infra.snakemake_internals: Snakemake hashes params as before, without importing
pandas until something else has (tests/test_reruns.py checks a whole no-op rerun)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"

# In a fresh interpreter: the serialized params with the patch against Snakemake's own
# serializers, whether that imported pandas, then the same for pandas objects once it is imported.
PROBE = f"""
import json, sys
sys.path.insert(0, {str(SCRIPTS)!r})
from snakemake.persistence.file import FilePersistence
from glueperf.infra.snakemake_internals import hash_params_without_importing_pandas

applied = hash_params_without_importing_pandas()
persistence = FilePersistence.__new__(FilePersistence)  # serializers only, no files
values = [3, 2.5, "cuda", None, True, [1, "a"], {{"k": (1, 2)}}, b"x", object()]
patched = [persistence._serialize_param(value) for value in values]
builtin = [persistence._serialize_param_builtin(value) for value in values]
report = {{
    "applied": applied,
    "same_as_builtin": patched == builtin,
    "pandas_imported": "pandas" in sys.modules,
}}
import pandas as pd

objects = [pd.DataFrame({{"a": [1, 2]}}), pd.Series([1.5, 2.5]), pd.Index(["x"]), 7]
report["same_as_pandas_once_imported"] = [
    persistence._serialize_param(value) for value in objects
] == [persistence._serialize_param_pandas(value) for value in objects]
report["frame_hashed_by_pandas"] = (
    persistence._serialize_param(objects[0]) != persistence._serialize_param_builtin(objects[0])
)
print(json.dumps(report))
"""


def test_params_serialize_as_snakemake_does_without_importing_pandas():
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {
        "applied": True,
        "same_as_builtin": True,
        "pandas_imported": False,
        "same_as_pandas_once_imported": True,
        "frame_hashed_by_pandas": True,
    }
