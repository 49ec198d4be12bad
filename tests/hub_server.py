"""A loopback stand-in for the Hugging Face Hub, enough for huggingface_hub 2.4's real client.

Stdlib only, bound to 127.0.0.1. Two origins: the Hub itself and a "CDN" on another port that
serves LFS blobs (``*.safetensors``, ``*.pth``, ``*.bin``) through a 302, as the real Hub does.

Implemented (what huggingface_hub 2.4's downloads and HfApi uploads call):
  HEAD/GET /[spaces/]{ns}/{name}/resolve/{rev}/{path}   X-Repo-Commit, ETag, Content-Length,
      Accept-Ranges/Range (206); LFS files answer 302 + X-Linked-Etag/X-Linked-Size; 404 with
      X-Error-Code RepoNotFound | RevisionNotFound | EntryNotFound
  GET  /api/{models|spaces}/{repo}[/revision/{rev}]     {id, sha, siblings: [{rfilename}]}
  GET  /api/{models|spaces}/{repo}/tree/{rev}           [{type, path, size, oid[, lfs]}]
  POST /api/repos/create (409 when it exists), /api/validate-yaml,
       /api/{t}s/{repo}/preupload/{rev} (uploadMode "regular" for every file),
       /api/{t}s/{repo}/commit/{rev} (NDJSON), /api/{t}s/{repo}/branch/{branch},
       /api/{t}s/{repo}/tag/{rev}
  GET  /files/{name} on the CDN origin: plain static files (the original release URLs)

Fault injection for integrity tests, keyed by file name: ``truncate`` (every GET closes the
connection half-way), ``truncate_once`` (the first GET does), ``corrupt`` (same size, one byte
flipped).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".pth", ".bin", ".pt")
GITATTRIBUTES = b"".join(
    b"*%s filter=lfs diff=lfs merge=lfs -text\n" % s.encode() for s in LFS_SUFFIXES
)
_RESOLVE = re.compile(r"^/(?:(spaces|datasets)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_API = re.compile(
    r"^/api/(models|spaces|datasets)/([^/]+/[^/]+)(?:/(revision|tree|preupload|commit|branch|tag)"
    r"(?:/([^/]+))?(?:/(.*))?)?$"
)


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a file, which the Hub uses as the ETag of non-LFS files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    repo_type: str
    private: bool = False
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> str | None:
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.tags:
            return self.tags[revision]
        return revision if revision in self.commits else None


class StandInHub:
    """Start with ``StandInHub()``; ``url`` is the endpoint, ``stop()`` shuts both origins down."""

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}
        self.blobs: dict[str, bytes] = {}  # sha256 -> content, served by the CDN origin
        self.static: dict[str, bytes] = {}  # name -> content, served at {cdn_url}/files/{name}
        self.faults: dict[str, str] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()
        self._counter = 0
        self._hub = self._start(_HubHandler)
        self._cdn = self._start(_CdnHandler)
        self.url = f"http://127.0.0.1:{self._hub.server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def _start(self, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.stand_in = self  # type: ignore[attr-defined]
        # A short poll keeps stop() fast (serve_forever checks for shutdown every poll_interval).
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        return server

    def stop(self) -> None:
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()

    # Repository state -----------------------------------------------------------------------

    def create_repo(self, repo_id: str, repo_type: str = "model", private: bool = False) -> Repo:
        return self.repos.setdefault((repo_type, repo_id), Repo(repo_type, private))

    def commit(
        self,
        repo_id: str,
        files: dict[str, bytes],
        branch: str = "main",
        repo_type: str = "model",
        deleted: tuple[str, ...] = (),
    ) -> str:
        """Add a commit on ``branch`` (created from nothing if new) and return its 40-hex sha."""
        repo = self.create_repo(repo_id, repo_type)
        with self._lock:
            self._counter += 1
            sha = hashlib.sha1(f"{repo_id}:{branch}:{self._counter}".encode()).hexdigest()
            parent = repo.branches.get(branch)
            tree = dict(repo.commits[parent]) if parent else {}
            for path in deleted:
                tree.pop(path, None)
            tree.update(files)
            repo.commits[sha] = tree
            repo.branches[branch] = sha
            for path, data in files.items():
                if path.endswith(LFS_SUFFIXES):
                    self.blobs[hashlib.sha256(data).hexdigest()] = data
        return sha

    def tag(self, repo_id: str, tag: str, revision: str = "main", repo_type: str = "model") -> None:
        repo = self.repos[(repo_type, repo_id)]
        repo.tags[tag] = repo.resolve(revision)  # type: ignore[assignment]

    def _fault(self, name: str, data: bytes) -> tuple[bytes, int | None]:
        """The bytes to send and, for a truncating fault, where to cut the connection."""
        mode = self.faults.get(name)
        with self._lock:
            count = self._served[name] = self._served.get(name, 0) + 1
        if mode == "corrupt":
            return data[:-1] + bytes([data[-1] ^ 0xFF]), None
        if mode == "truncate" or (mode == "truncate_once" and count == 1):
            return data, len(data) // 2
        return data, None


class _Handler(BaseHTTPRequestHandler):
    server_version = "StandInHub/1.0"

    @property
    def hub(self) -> StandInHub:
        return self.server.stand_in  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # keep pytest output clean

    def _record(self) -> str:
        path = unquote(urlsplit(self.path).path)
        self.hub.requests.append((self.command, path, self.headers.get("Range")))
        return path

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        self._send(
            status,
            json.dumps(payload).encode(),
            {"Content-Type": "application/json"} | (headers or {}),
        )

    def _error(
        self, status: int, code: str | None, message: str, commit: str | None = None
    ) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        if commit:
            headers["X-Repo-Commit"] = commit
        self._json(status, {"error": message}, headers)

    def _send_file(self, name: str, data: bytes, headers: dict[str, str]) -> None:
        """200 or 206 (Range), with the stand-in's faults applied to GET bodies."""
        if self.command == "GET":
            data, cut = self.hub._fault(name, data)
        else:
            cut = None
        start, end, status = 0, len(data) - 1, 200
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if match and data:
            start = int(match.group(1))
            end = min(int(match.group(2) or end), len(data) - 1)
            status = 206
            headers = headers | {"Content-Range": f"bytes {start}-{end}/{len(data)}"}
        body = data[start : end + 1]
        self.send_response(status)
        for key, value in (headers | {"Accept-Ranges": "bytes"}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if cut is not None:
            self.wfile.write(body[: max(0, cut - start)])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)  # the client sees a body shorter than Content-Length
            return
        self.wfile.write(body)


class _CdnHandler(_Handler):
    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        path = self._record()
        name = path.rsplit("/", 1)[-1]
        if path.startswith("/blobs/") and name in self.hub.blobs:
            self._send_file(name, self.hub.blobs[name], {"ETag": f'"{name}"'})
        elif path.startswith("/files/") and name in self.hub.static:
            data = self.hub.static[name]
            etag = hashlib.sha256(data).hexdigest()
            self._send_file(name, data, {"ETag": f'"{etag}"'})
        else:
            self._send(404, b"Not Found")


class _HubHandler(_Handler):
    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        path = self._record()
        if match := _RESOLVE.match(path):
            kind, repo_id, revision, filename = match.groups()
            self._resolve((kind or "models")[:-1], repo_id, revision, filename)
        elif match := _API.match(path):
            self._api_get(match.group(1)[:-1], match.group(2), match.group(3), match.group(4))
        else:
            self._error(404, None, "Not Found")

    def _repo(self, repo_type: str, repo_id: str) -> Repo | None:
        repo = self.hub.repos.get((repo_type, repo_id))
        if repo is None:
            # The Hub answers 401 to anonymous requests for a missing (or private) repository.
            status = 404 if self.headers.get("Authorization") else 401
            self._error(status, "RepoNotFound", "Repository not found")
        return repo

    def _commit(self, repo: Repo, revision: str) -> str | None:
        sha = repo.resolve(unquote(revision))
        if sha is None:
            self._error(404, "RevisionNotFound", "Invalid rev id: " + revision)
        return sha

    def _resolve(self, repo_type: str, repo_id: str, revision: str, filename: str) -> None:
        if (repo := self._repo(repo_type, repo_id)) is None:
            return
        if (sha := self._commit(repo, revision)) is None:
            return
        data = repo.commits[sha].get(filename)
        if data is None:
            self._error(404, "EntryNotFound", "Entry not found", commit=sha)
            return
        headers = {"X-Repo-Commit": sha}
        if filename.endswith(LFS_SUFFIXES):
            digest = hashlib.sha256(data).hexdigest()
            location = f"{self.hub.cdn_url}/blobs/{digest}"
            self._send(
                302,
                b"",
                headers
                | {
                    "Location": location,
                    "ETag": f'"{git_blob_sha1(data)}"',  # the pointer's id, as on the Hub
                    "X-Linked-Etag": f'"{digest}"',
                    "X-Linked-Size": str(len(data)),
                },
            )
            return
        self._send_file(filename, data, headers | {"ETag": f'"{git_blob_sha1(data)}"'})

    def _api_get(
        self, repo_type: str, repo_id: str, action: str | None, revision: str | None
    ) -> None:
        if (repo := self._repo(repo_type, repo_id)) is None:
            return
        if (sha := self._commit(repo, revision or "main")) is None:
            return
        tree = repo.commits[sha]
        if action == "tree":
            self._json(200, [_tree_entry(path, data) for path, data in sorted(tree.items())])
            return
        self._json(200, {
            "id": repo_id, "modelId": repo_id, "sha": sha, "private": repo.private,
            "siblings": [{"rfilename": path} for path in sorted(tree)],
        })  # fmt: skip

    def do_POST(self) -> None:  # noqa: N802
        path = self._record()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path == "/api/repos/create":
            self._create_repo(json.loads(body))
        elif path == "/api/validate-yaml":
            self._json(200, {"errors": [], "warnings": []})
        elif (match := _API.match(path)) and match.group(3) in {
            "preupload",
            "commit",
            "branch",
            "tag",
        }:
            repo_type, repo_id, action, revision = match.group(1)[:-1], *match.group(2, 3, 4)
            if (repo := self._repo(repo_type, repo_id)) is None:
                return
            getattr(self, f"_post_{action}")(repo, repo_type, repo_id, unquote(revision), body)
        else:
            self._error(404, None, "Not Found")

    def _create_repo(self, payload: dict) -> None:
        repo_id = f"{payload.get('organization') or 'user'}/{payload['name']}"
        repo_type = payload.get("type") or "model"
        if (repo_type, repo_id) in self.hub.repos:
            self._error(409, None, "You already created this model repo")
            return
        self.hub.create_repo(repo_id, repo_type, bool(payload.get("private")))
        # Like the Hub, a new repository starts with one commit holding .gitattributes.
        self.hub.commit(repo_id, {".gitattributes": GITATTRIBUTES}, repo_type=repo_type)
        self._json(200, {"url": f"{self.hub.url}/{repo_id}", "name": repo_id})

    def _post_preupload(
        self, repo: Repo, repo_type: str, repo_id: str, rev: str, body: bytes
    ) -> None:
        files = json.loads(body)["files"]
        self._json(200, {"files": [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
        ]})  # fmt: skip

    def _post_commit(self, repo: Repo, repo_type: str, repo_id: str, rev: str, body: bytes) -> None:
        files, deleted = {}, []
        for line in body.decode().splitlines():
            item = json.loads(line)
            value = item["value"]
            if item["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] == "deletedFile":
                deleted.append(value["path"])
            elif item["key"] != "header":
                self._error(400, None, f"the stand-in does not support {item['key']}")
                return
        if repo.branches and rev not in repo.branches:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            return
        sha = self.hub.commit(
            repo_id, files, branch=rev, repo_type=repo_type, deleted=tuple(deleted)
        )
        self._json(
            200,
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{self.hub.url}/{repo_id}/commit/{sha}",
            },
        )

    def _post_branch(
        self, repo: Repo, repo_type: str, repo_id: str, branch: str, body: bytes
    ) -> None:
        if branch in repo.branches:
            self._error(409, None, "Reference already exists")
            return
        start = (json.loads(body) if body else {}).get("startingPoint") or "main"
        if (sha := self._commit(repo, start)) is None:
            return
        repo.branches[branch] = sha
        self._json(200, {})

    def _post_tag(
        self, repo: Repo, repo_type: str, repo_id: str, revision: str, body: bytes
    ) -> None:
        tag = json.loads(body)["tag"]
        if tag in repo.tags:
            self._error(409, None, "Tag already exists")
            return
        if (sha := self._commit(repo, revision)) is None:
            return
        repo.tags[tag] = sha
        self._json(200, {})


def _tree_entry(path: str, data: bytes) -> dict:
    entry = {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha1(data)}
    if path.endswith(LFS_SUFFIXES):
        entry["lfs"] = {
            "oid": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "pointerSize": 134,
        }
    return entry
