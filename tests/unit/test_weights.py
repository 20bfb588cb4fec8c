"""Weights sources: hf:// URIs download through huggingface_hub from a local stand-in of the
hub (never the network); paths and bad sources get clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmhost.engines.weights import hf_download, parse_hf, resolve_weights
from llmhost.errors import UsageError
from tests.support.hub import HubStandIn

CONTENT = b"GGUF" + bytes(range(256)) * 64


@pytest.fixture
def tiny(hub: HubStandIn) -> HubStandIn:
    hub.add("acme/tiny", {"weights/model.gguf": CONTENT})
    return hub


def _gets(hub: HubStandIn) -> list[str]:
    return [path for method, path, _, _ in hub.requests if method == "GET"]


def test_hf_uri_downloads_into_the_cache_once(tiny: HubStandIn, tmp_path: Path) -> None:
    path = hf_download("hf://acme/tiny/weights/model.gguf@main", endpoint=tiny.url)
    assert path.read_bytes() == CONTENT
    assert tmp_path in path.resolve().parents
    gets = _gets(tiny)
    again = hf_download("hf://acme/tiny/weights/model.gguf@main", endpoint=tiny.url)
    assert again == path
    assert _gets(tiny) == gets  # served from the cache


def test_hf_missing_file_is_a_clear_error(tiny: HubStandIn) -> None:
    with pytest.raises(UsageError, match=r"cannot download hf://acme/tiny/nope\.gguf"):
        hf_download("hf://acme/tiny/nope.gguf", endpoint=tiny.url)


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
