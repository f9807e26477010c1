"""Keep pandas out of the Snakemake process, where nothing of this workflow needs it.

Snakemake 9 imports pandas whenever it is installed, only to ask of each rule's params whether
it is a DataFrame, Series or Index before hashing it (``PersistenceBase._serialize_param``):
0.2 s on a fast host and about twice that on the GPU hosts of BENCHMARKS.md, in every run, no-op
reruns included. A value can only be a pandas object once pandas is imported, so asking only
then gives the same hashes, and so the same reruns, without the import.
"""

from __future__ import annotations

import sys

# Snakemake's internals that the patch relies on; without them it leaves Snakemake as it is.
SERIALIZERS = ("_serialize_param", "_serialize_param_pandas", "_serialize_param_builtin")


def _param_serializer(persistence):
    if "pandas" in sys.modules:
        return persistence._serialize_param_pandas
    return persistence._serialize_param_builtin


def hash_params_without_importing_pandas() -> bool:
    """Make Snakemake serialize params with pandas only once pandas is imported. Returns
    whether it applied (a Snakemake without these internals keeps its own behaviour)."""
    from snakemake.persistence import PersistenceBase

    if not all(hasattr(PersistenceBase, name) for name in SERIALIZERS):
        return False
    PersistenceBase._serialize_param = property(_param_serializer)
    return True
