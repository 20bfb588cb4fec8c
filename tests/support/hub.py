"""A local stand-in of the Hugging Face hub: what huggingface_hub asks of it, answered as the hub
answers, so tests never reach the network.

It serves `/{owner}/{repo}/resolve/{revision}/{file}` (HEAD and GET, with the hub's ETag,
X-Repo-Commit and Content-Length headers, and ranged GETs as safetensors header reads use) for
the repos added to it; a missing repo is a 404 `RepoNotFound`, a missing file a 404
`EntryNotFound` (with the commit, as the hub sends it), an unknown revision a 404
`RevisionNotFound`, and a gated repo a 401 `GatedRepo` unless the request carries its token. A
file may be larger than the bytes it holds (`HubFile.size`): the rest reads as zeros, so a
checkpoint of many gigabytes costs only its header.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
SAFETENSORS_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I8": 1, "U8": 1}


@dataclass(frozen=True)
class HubFile:
    """A file in a repo: the bytes it starts with and its size (past `head`, zeros)."""

    head: bytes
    size: int = -1

    @property
    def length(self) -> int:
        """The file's size in bytes."""
        return self.size if self.size >= 0 else len(self.head)

    def read(self, start: int, end: int) -> bytes:
        """Bytes [start, end) of the file."""
        data = self.head[start:end]
        return data + bytes(max(0, min(end, self.length) - max(start, len(self.head))))


@dataclass
class HubRepo:
    """A model repo at one commit; `token`: the one a gated repo lets in."""

    files: dict[str, HubFile]
    commit: str
    token: str | None = None


@dataclass
class HubStandIn:
    """The repos served and the requests seen (method, path, Range header, token or None)."""

    repos: dict[str, HubRepo] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)
    url: str = ""  # set while serving
    failing: int | None = None  # answer every request with this status (a hub having trouble)

    def add(
        self, repo: str, files: dict[str, bytes | HubFile], gated_token: str | None = None
    ) -> HubRepo:
        """Serve `repo` with `files`; gated (401 without `gated_token`) when a token is given."""
        wrapped = {n: f if isinstance(f, HubFile) else HubFile(f) for n, f in files.items()}
        commit = hashlib.sha1(repo.encode()).hexdigest()
        self.repos[repo] = HubRepo(wrapped, commit, gated_token)
        return self.repos[repo]


def safetensors_file(tensors: dict[str, tuple[str, list[int]]]) -> HubFile:
    """A safetensors file holding `tensors` (name: dtype, shape): a real header, zero data."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = SAFETENSORS_BYTES[dtype]
        for dim in shape:
            size *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return HubFile(struct.pack("<Q", len(raw)) + raw, 8 + len(raw) + offset)


def _handler(hub: HubStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _fail(self, status: int, code: str, commit: str | None = None) -> None:
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", f"{code} (llmhost's hub stand-in)")
            if commit:
                self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _answer(self, body: bool) -> None:
            auth = self.headers.get("Authorization")
            token = auth.removeprefix("Bearer ") if auth else None
            hub.requests.append((self.command, self.path, self.headers.get("Range"), token))
            if hub.failing is not None:
                return self._fail(hub.failing, "StandInFailing")
            match = RESOLVE.match(self.path.split("?")[0])
            repo = hub.repos.get(match.group(1)) if match else None
            if match is None or repo is None:
                return self._fail(404, "RepoNotFound")
            if repo.token is not None and token != repo.token:
                return self._fail(401, "GatedRepo")
            if unquote(match.group(2)) not in ("main", repo.commit):
                return self._fail(404, "RevisionNotFound")
            file = repo.files.get(unquote(match.group(3)))
            if file is None:
                return self._fail(404, "EntryNotFound", repo.commit)
            start, end = 0, file.length
            ranged = RANGE.match(self.headers.get("Range") or "")
            if ranged:
                start = int(ranged.group(1))
                end = min(file.length, int(ranged.group(2)) + 1 if ranged.group(2) else file.length)
            self.send_response(206 if ranged else 200)
            self.send_header("X-Repo-Commit", repo.commit)
            self.send_header("ETag", f'"{hashlib.sha256(file.head).hexdigest()}"')
            self.send_header("Content-Length", str(end - start))
            if ranged:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{file.length}")
            self.end_headers()
            if body:
                self.wfile.write(file.read(start, end))

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def serving(hub: HubStandIn) -> Iterator[str]:
    """Serve `hub` on a free local port for the block; yields its URL (for HF_ENDPOINT)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield hub.url
    finally:
        server.shutdown()
        server.server_close()
