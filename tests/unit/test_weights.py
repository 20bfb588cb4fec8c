"""Weights sources: hf:// URIs download through huggingface_hub from a local stand-in of the
hub (never the network); paths and bad sources get clear errors."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from llmhost.engines.weights import hf_download, parse_hf, resolve_weights
from llmhost.errors import UsageError

CONTENT = b"GGUF" + bytes(range(256)) * 64
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class _Hub(BaseHTTPRequestHandler):
    """Answers /{owner}/{repo}/resolve/{revision}/{file} like the hub does for a plain file."""

    served: list[str] = []  # noqa: RUF012

    def _answer(self, body: bool) -> None:
        self.served.append(f"{self.command} {self.path}")
        if self.path != "/acme/tiny/resolve/main/weights/model.gguf":
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(CONTENT).hexdigest()}"')
        self.send_header("Content-Length", str(len(CONTENT)))
        self.end_headers()
        if body:
            self.wfile.write(CONTENT)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hub.served = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_hf_uri_downloads_into_the_cache_once(hub: str, tmp_path: Path) -> None:
    path = hf_download("hf://acme/tiny/weights/model.gguf@main", endpoint=hub)
    assert path.read_bytes() == CONTENT
    assert tmp_path in path.resolve().parents
    gets = [s for s in _Hub.served if s.startswith("GET")]
    again = hf_download("hf://acme/tiny/weights/model.gguf@main", endpoint=hub)
    assert again == path
    assert [s for s in _Hub.served if s.startswith("GET")] == gets  # served from the cache


def test_hf_missing_file_is_a_clear_error(hub: str) -> None:
    with pytest.raises(UsageError, match=r"cannot download hf://acme/tiny/nope\.gguf"):
        hf_download("hf://acme/tiny/nope.gguf", endpoint=hub)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("hf://a/b/c.gguf", ("a/b", "c.gguf", None)),
        ("hf://a/b/dir/c.gguf@v1.0", ("a/b", "dir/c.gguf", "v1.0")),
    ],
)
def test_parse_hf(uri: str, expected: tuple[str, str, str | None]) -> None:
    assert parse_hf(uri) == expected


@pytest.mark.parametrize("bad", ["hf://a/b", "hf://a//c.gguf", "hf://"])
def test_bad_hf_uri(bad: str) -> None:
    with pytest.raises(UsageError, match=r"expected hf://owner/repo/file\.gguf"):
        parse_hf(bad)


def test_local_path_and_missing_path(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_weights(str(gguf)) == gguf
    with pytest.raises(UsageError, match="is not a file"):
        resolve_weights(str(tmp_path / "missing.gguf"))
