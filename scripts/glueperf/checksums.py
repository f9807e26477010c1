"""sha256 of files and of a model's weights: what provenance and validation record."""

from __future__ import annotations

import hashlib
from pathlib import Path


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


def local_checksums(directory) -> dict[str, str]:
    """sha256 of every file in a local model directory, by relative path."""
    directory = Path(directory)
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    return {str(f.relative_to(directory)): sha256_file(f) for f in files}
