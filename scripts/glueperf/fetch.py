"""Fetching Hub models and dataset files into resources/, pinned to a commit, with checksums.

Two people running the pipeline months apart must evaluate the very same bytes: every fetch
resolves the requested revision (branch, tag or commit) to a commit hash, downloads exactly that
commit, and records the commit and the sha256 of every file in a provenance file beside it.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from glueperf import GlueperfError
from glueperf.checksums import MODEL_FILE_PATTERNS, local_checksums, sha256_file, weights_sha256

# Fetched of a Hub model: MODEL_FILE_PATTERNS (config, weights, tokenizer). Other frameworks'
# weights (TensorFlow, Flax, ONNX, Rust) are left on the Hub.
SKIPPED_MODEL_FILES = ["*.h5", "*.msgpack", "*.ot", "onnx/*", "coreml/*", "*.onnx", "training_*"]
HF_DATASET_URL = re.compile(
    r"^hf://datasets/(?P<repo>[^/@]+/[^/@]+)(@(?P<revision>[^/]+))?/(?P<file>.+)$"
)
# The packages of the Hub client's transport, whose errors mean that the Hub did not answer.
TRANSPORT_MODULES = ("httpx", "httpx2", "httpcore", "httpcore2")
OFFLINE_ADVICE = (
    "To run without the Hub, give a local directory or parquet file in the config, or prefetch "
    "everything once on a machine with internet (`snakemake --cores 1 prefetch`) and run with "
    "HF_HUB_OFFLINE=1."
)


def is_remote(path) -> bool:
    """A URL (hf://..., https://...) rather than a local path."""
    return "://" in str(path)


def is_hub_model(source: str) -> bool:
    """A Hub id ('owner/name' or 'name'), as opposed to a local directory. 'models/tiny' is
    taken as a local path (missing or not) when a local folder 'models' exists."""
    path = Path(source)
    if source.startswith((".", "/", "~")) or path.exists():
        return False
    if len(path.parts) == 2 and path.parent.is_dir():
        return False
    return re.fullmatch(r"[\w.-]+(/[\w.-]+)?", source) is not None


def model_location(name: str, source: str) -> str:
    """Where model ``name`` is loaded from: its fetched copy (rule fetch_model) for a Hub id,
    else the local directory ``source``."""
    return f"resources/models/{name}" if is_hub_model(source) else source


def dataset_location(name: str, path: str) -> str:
    """Where dataset ``name`` is read from: its fetched copy (rule fetch_dataset) for a Hub file,
    else the local file ``path``."""
    return f"resources/datasets/{name}.parquet" if is_remote(path) else path


def parse_dataset_url(url: str) -> tuple[str, str, str | None]:
    """hf://datasets/OWNER/NAME[@REVISION]/FILE -> (repo id, file in repo, revision or None)."""
    match = HF_DATASET_URL.match(url)
    if match is None:
        raise GlueperfError(
            f"dataset path '{url}': not of the form hf://datasets/OWNER/NAME[@REVISION]/FILE"
        )
    return match["repo"], match["file"], match["revision"]


def select_model_files(paths: list[str]) -> list[str]:
    """The files of a model repository worth fetching: safetensors weights when there are any,
    PyTorch .bin weights otherwise, never both."""
    wanted = [
        p
        for p in paths
        if any(fnmatch.fnmatch(p, pattern) for pattern in MODEL_FILE_PATTERNS)
        and not any(fnmatch.fnmatch(p, pattern) for pattern in SKIPPED_MODEL_FILES)
    ]
    if any(p.endswith(".safetensors") for p in wanted):
        wanted = [p for p in wanted if not p.endswith(".bin") and not p.endswith(".bin.index.json")]
    return sorted(wanted)


@contextmanager
def hub_errors(what: str):
    """Turn the Hub client's network and lookup errors into one clear GlueperfError."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    unreachable = f"{what}: the Hugging Face Hub is unreachable or offline"
    try:
        yield
    except RevisionNotFoundError as error:
        raise GlueperfError(f"{what}: revision not found on the Hub ({error})") from error
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, TimeoutError) as error:
        raise GlueperfError(f"{unreachable} ({type(error).__name__}). {OFFLINE_ADVICE}") from error
    except (RepositoryNotFoundError, EntryNotFoundError) as error:
        raise GlueperfError(f"{what}: not found on the Hub ({error})") from error
    except HfHubHTTPError as error:
        raise GlueperfError(f"{what}: the Hub answered with an error ({error})") from error
    except Exception as error:
        # The Hub client's transport raises its own connection and timeout errors.
        if type(error).__module__.split(".")[0] in TRANSPORT_MODULES:
            raise GlueperfError(f"{unreachable} ({error}). {OFFLINE_ADVICE}") from error
        raise


def _provenance(kind, source, revision, commit, files: dict) -> dict:
    from huggingface_hub import constants

    return {
        "kind": kind,
        "source": source,
        "revision_requested": revision,
        "commit": commit,
        "endpoint": constants.ENDPOINT,
        "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sha256": files,
    }


def fetch_model(repo_id: str, revision: str | None, target: Path) -> dict:
    """Download the model files of ``repo_id`` at ``revision`` into the directory ``target``
    (created whole or not at all) and return its provenance."""
    from huggingface_hub import HfApi, hf_hub_download

    api = HfApi()
    what = f"model '{repo_id}' at revision '{revision or 'main'}'"
    target = Path(target)
    with hub_errors(what):
        commit = api.model_info(repo_id, revision=revision).sha
        paths = [
            entry.path
            for entry in api.list_repo_tree(repo_id, revision=commit, recursive=True)
            if hasattr(entry, "size")
        ]
        files = select_model_files(paths)
        if not files:
            raise GlueperfError(f"{what}: no model files among {paths}")
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        try:
            for name in files:
                hf_hub_download(repo_id, name, revision=commit, local_dir=staging)
            shutil.rmtree(staging / ".cache", ignore_errors=True)
            checksums = {name: sha256_file(staging / name) for name in files}
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return _provenance("model", repo_id, revision, commit, checksums)


def fetch_dataset_file(url: str, revision: str | None, target: Path) -> dict:
    """Download one Hub dataset file (hf://datasets/...) to ``target`` and return its provenance;
    a revision in the config wins over one written in the URL."""
    from huggingface_hub import HfApi, hf_hub_download

    repo_id, filename, url_revision = parse_dataset_url(url)
    revision = revision or url_revision
    what = f"dataset file '{url}' at revision '{revision or 'main'}'"
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with hub_errors(what):
        commit = HfApi().dataset_info(repo_id, revision=revision).sha
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        try:
            downloaded = hf_hub_download(
                repo_id, filename, repo_type="dataset", revision=commit, local_dir=staging
            )
            checksum = sha256_file(downloaded)
            os.replace(downloaded, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return _provenance("dataset", url, revision, commit, {filename: checksum})


def provenance_fields(validated_summary: dict, model_dir, model_provenance: dict | None) -> dict:
    """What a metrics row records of the exact inputs: commits and checksums."""
    recorded = (model_provenance or {}).get("sha256")
    checksums = recorded if recorded is not None else local_checksums(model_dir)
    return {
        "model_commit": (model_provenance or {}).get("commit") or "",
        "model_weights_sha256": weights_sha256(checksums),
        "dataset_commit": validated_summary.get("commit") or "",
        "dataset_sha256": validated_summary.get("sha256") or "",
    }
