"""A small stand-in for the Hugging Face Hub on 127.0.0.1, in the Hub's URL layout, so that the
real huggingface_hub client (HF_ENDPOINT pointed here) can fetch models and dataset files.

It answers what the client asks when it fetches a pinned revision:
  GET  /api/{models|datasets}/OWNER/NAME/revision/REV       -> {"id", "sha"}
  GET  /api/{models|datasets}/OWNER/NAME/tree/REV?recursive -> [{"type", "path", "size", "oid"}]
  HEAD|GET /[datasets/]OWNER/NAME/resolve/REV/PATH          -> the file, X-Repo-Commit, ETag
REV is a branch name ("main": the newest commit) or a full commit hash.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse


class Repository:
    """Commits of one repository: commit hash -> {path in repo: bytes}, oldest first."""

    def __init__(self):
        self.commits: dict[str, dict[str, bytes]] = {}

    def commit(self, files: dict[str, bytes], sha: str | None = None) -> str:
        """Add a commit (``sha``: the hash it gets, e.g. to mirror a real repository's)."""
        if sha is None:
            digest = hashlib.sha1(repr(sorted((k, v) for k, v in files.items())).encode())
            digest.update(str(len(self.commits)).encode())
            sha = digest.hexdigest()
        self.commits[sha] = dict(files)
        return sha

    def resolve(self, revision: str) -> str | None:
        if revision == "main" and self.commits:
            return list(self.commits)[-1]
        return revision if revision in self.commits else None


class FakeHub:
    """Serve repositories: (kind, repo id) -> Repository, kind 'models' or 'datasets'."""

    def __init__(self):
        self.repos: dict[tuple[str, str], Repository] = {}
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def repo(self, kind: str, repo_id: str) -> Repository:
        return self.repos.setdefault((kind, repo_id), Repository())

    def add_model_dir(self, repo_id: str, directory: Path) -> str:
        files = {p.name: p.read_bytes() for p in Path(directory).iterdir() if p.is_file()}
        return self.repo("models", repo_id).commit(files)

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info):
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

            def _send(self, status, payload=b"", headers=None, body=True):
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if body:
                    self.wfile.write(payload)

            def _json(self, status, data, body=True, headers=None):
                headers = {"Content-Type": "application/json", **(headers or {})}
                self._send(status, json.dumps(data).encode(), headers, body)

            def _answer(self, body):
                path = unquote(urlparse(self.path).path)
                hub.requests.append(f"{self.command} {path}")
                api = re.fullmatch(
                    r"/api/(models|datasets)/([^/]+/[^/]+)(?:/(revision|tree)/([^/]+))?/?", path
                )
                if api:
                    kind, repo_id, what, revision = api.groups()
                    return self._api(kind, repo_id, what or "revision", revision or "main", body)
                resolve = re.fullmatch(r"/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
                if resolve:
                    kind = "datasets" if resolve[1] else "models"
                    return self._file(kind, resolve[2], resolve[3], resolve[4], body)
                self._json(404, {"error": "not found"}, body, {"X-Error-Code": "RepoNotFound"})

            def _lookup(self, kind, repo_id, revision, body):
                repo = hub.repos.get((kind, repo_id))
                if repo is None:
                    self._json(
                        404,
                        {"error": "Repository not found"},
                        body,
                        {"X-Error-Code": "RepoNotFound"},
                    )
                    return None, None
                sha = repo.resolve(revision)
                if sha is None:
                    self._json(
                        404, {"error": "Invalid rev id"}, body, {"X-Error-Code": "RevisionNotFound"}
                    )
                    return None, None
                return repo, sha

            def _api(self, kind, repo_id, what, revision, body):
                repo, sha = self._lookup(kind, repo_id, revision, body)
                if repo is None:
                    return
                files = repo.commits[sha]
                if what == "revision":
                    siblings = [{"rfilename": name} for name in files]
                    return self._json(200, {"id": repo_id, "sha": sha, "siblings": siblings}, body)
                tree = [
                    {
                        "type": "file",
                        "path": name,
                        "size": len(data),
                        "oid": hashlib.sha1(data).hexdigest(),
                    }
                    for name, data in files.items()
                ]
                self._json(200, tree, body)

            def _file(self, kind, repo_id, revision, name, body):
                repo, sha = self._lookup(kind, repo_id, revision, body)
                if repo is None:
                    return
                data = repo.commits[sha].get(name)
                if data is None:
                    return self._json(
                        404, {"error": "Entry not found"}, body, {"X-Error-Code": "EntryNotFound"}
                    )
                etag = hashlib.sha256(data).hexdigest()
                headers = {
                    "X-Repo-Commit": sha,
                    "ETag": f'"{etag}"',
                    "Content-Type": "application/octet-stream",
                }
                self._send(200, data, headers, body)

        return Handler


def point_hub_client_at(url, home, monkeypatch):
    """For snakemake subprocesses (environment) and this process (the client reads its
    endpoint once, at import)."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"
    )
