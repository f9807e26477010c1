"""A run's digests of its local model files (glueperf/infra/digests.py): taken once, by the fork
server's hashing process ahead of the hash_model jobs or by a job, kept only while the file is
as it was, and never read twice at once."""

from __future__ import annotations

import hashlib
import os

import pytest

from glueperf.checksums import local_checksums
from glueperf.infra import digests
from glueperf.infra.digests import entry_of, hash_ahead, run_sha256, start_hashing_ahead
from glueperf.infra.locks import lock_file


def model(directory, size=3 << 20):
    directory.mkdir()
    (directory / "config.json").write_text('{"model_type": "bert"}')
    (directory / "model.safetensors").write_bytes(os.urandom(size))
    return directory


def expected(directory) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


def unread(monkeypatch):
    """From here on, reading a file to hash it fails the test."""

    def fail(path, stop=None):
        raise AssertionError(f"{path} read again")

    monkeypatch.setattr(digests, "sha256_file", fail)


def test_a_file_is_read_once_per_run_and_again_once_changed(tmp_path, monkeypatch):
    directory = model(tmp_path / "m")
    store = tmp_path / "store"
    store.mkdir()
    path = directory / "model.safetensors"
    first = run_sha256(path, store)
    assert first == expected(directory)["model.safetensors"]
    with monkeypatch.context() as patched:
        unread(patched)
        assert run_sha256(path, store) == first
    path.write_bytes(os.urandom(1 << 20))  # changed: its size, times and digest
    assert run_sha256(path, store) == expected(directory)["model.safetensors"] != first


def test_the_servers_process_hashes_the_runs_models_ahead_of_their_jobs(tmp_path, monkeypatch):
    models = [model(tmp_path / name) for name in ("a", "b")]
    store = tmp_path / "store"
    store.mkdir()
    child = start_hashing_ahead([str(m) for m in models], store)
    assert os.waitpid(child, 0)[1] == 0
    unread(monkeypatch)  # what the jobs do next reads nothing
    for directory in models:
        checksums = local_checksums(directory, lambda p: run_sha256(p, store))
        assert checksums == expected(directory)


def test_the_thread_leaves_a_file_that_a_job_is_reading(tmp_path):
    directory = model(tmp_path / "m")
    store = tmp_path / "store"
    store.mkdir()
    path = directory / "model.safetensors"
    entry = entry_of(store, path)
    held = lock_file(entry.with_suffix(".lock"))  # a job reading it
    try:
        hash_ahead([str(directory)], store)
        assert not entry.exists() and entry_of(store, directory / "config.json").exists()
    finally:
        os.close(held)
    assert run_sha256(path, store) == expected(directory)["model.safetensors"]


def test_without_a_store_a_job_reads_its_files_itself_and_nothing_is_hashed_ahead(tmp_path):
    directory = model(tmp_path / "m")
    assert local_checksums(directory, lambda p: run_sha256(p, None)) == expected(directory)
    assert start_hashing_ahead([str(directory)], None) is None


@pytest.mark.parametrize("entries", [{}, {"stat": [0, 0, 0, 0, 0], "sha256": "0" * 64}])
def test_a_missing_or_stale_entry_is_no_digest(tmp_path, entries):
    import json

    path = model(tmp_path / "m") / "config.json"
    entry = tmp_path / "entry.json"
    if entries:
        entry.write_text(json.dumps(entries))
    assert digests.known(entry, path) is None
