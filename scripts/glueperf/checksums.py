"""sha256 of files and of a model's weights: what provenance and validation record, and which
files of a model directory they are taken of."""

from __future__ import annotations

import hashlib
from pathlib import Path

from glueperf import GlueperfError

# What a sequence classifier is loaded from: config, weights, tokenizer (what the fetch rules
# download of a Hub model), and code of the model's own, which runs only with trust_remote_code.
MODEL_FILE_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.bin"]
MODEL_CODE_PATTERN = "*.py"


def sha256_file(path) -> str:
    """The file's sha256, read in blocks of 1 MiB."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(checksums: dict[str, str]) -> str:
    """One fingerprint of a model's weights: the file's sha256, or for sharded weights the
    sha256 of the sorted 'name sha256' lines (as `sha256sum` would print them)."""
    weights = sorted(
        (name, sha) for name, sha in checksums.items() if name.endswith((".safetensors", ".bin"))
    )
    if len(weights) == 1:
        return weights[0][1]
    listing = "".join(f"{sha}  {name}\n" for name, sha in weights)
    return hashlib.sha256(listing.encode()).hexdigest()


def model_files(directory) -> list[Path]:
    """The files of a local model directory that its model and tokenizer are loaded from (its own
    top-level files of MODEL_FILE_PATTERNS and code), sorted; nothing else in it is ever read.
    A symbolic link among them that leads out of the directory is a GlueperfError: glueperf
    neither reads nor records the files it points to (it could be any file of the host's)."""
    directory = Path(directory)
    found = {
        path
        for pattern in (*MODEL_FILE_PATTERNS, MODEL_CODE_PATTERN)
        for path in directory.glob(pattern)
    }
    root = directory.resolve()
    outside = sorted(p for p in found if p.is_symlink() and not p.resolve().is_relative_to(root))
    if outside:
        shown = ", ".join(f"{p.name} -> {p.resolve()}" for p in outside[:5])
        raise GlueperfError(
            f"model '{directory}': {shown}: symbolic link(s) out of the model directory, which "
            "glueperf does not follow (it reads and records only the model's own files); copy "
            "the file(s) into the directory (a Hugging Face cache snapshot: give the Hub id as "
            "`source` instead)"
        )
    return sorted(path for path in found if path.is_file())


def local_checksums(directory) -> dict[str, str]:
    """sha256 of each file that a local model is loaded from (``model_files``), by name."""
    return {path.name: sha256_file(path) for path in model_files(directory)}
