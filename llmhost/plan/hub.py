"""Models named by a Hugging Face repo id, `owner/repo[@revision]`.

The repo's config.json is fetched through huggingface_hub into llmhost's cache (`cache_dir()/hf`)
and planned exactly as a local config.json is (`sources.read_hf_source`). The weights' exact size
and dtype come from the safetensors headers (ranged reads of a few kilobytes per shard: the
weights themselves are never downloaded). HF_ENDPOINT and HF_TOKEN are honoured. What a fetch
found is kept in the cache, so planning the same id again works without a network.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llmhost.errors import UsageError
from llmhost.paths import cache_dir
from llmhost.plan.quantization import SAFETENSORS_DTYPES
from llmhost.plan.sources import (
    HUB_ORIGIN,
    ModelSource,
    load_source,
    read_hf_source,
    source_cache,
    store_source,
)

if TYPE_CHECKING:
    from huggingface_hub import HfApi

DEFAULT_ENDPOINT = "https://huggingface.co"
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
ID_FORM = "owner/repo[@revision]"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# The hub's rule for owner and repo names (huggingface_hub's validate_repo_id).
_NAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")


@dataclass(frozen=True)
class RepoId:
    """A Hugging Face model repo and the revision to read (None: the default branch)."""

    repo: str
    revision: str | None = None

    def __str__(self) -> str:
        return f"{self.repo}@{self.revision}" if self.revision else self.repo


class HubUnreachableError(Exception):
    """The hub could not be asked (no network, a server down or failing): the cache may answer."""


def parse_repo_id(name: str) -> RepoId:
    """`owner/repo[@revision]` as a RepoId, or a one-line error saying what is wrong with it."""
    repo, at, revision = name.partition("@")
    parts = repo.split("/")
    problem = None
    if len(parts) != 2 or not all(parts):
        problem = f"expected {ID_FORM}"
    elif at and not revision:
        problem = "empty revision after '@'"
    elif not all(_NAME.match(p) for p in parts) or ".." in repo or "--" in repo:
        problem = "owner and repo use letters, digits, '-', '_' and '.' (not first or last)"
    elif len(repo) > 96 or repo.endswith(".git"):
        problem = "at most 96 characters, not ending in .git"
    if problem:
        raise UsageError(
            f"'{name}' is not a local file or folder, nor a Hugging Face repo id: {problem}"
        )
    return RepoId(repo, revision or None)


def hub_model(name: str) -> ModelSource:
    """The model in the Hugging Face repo `name` (`owner/repo[@revision]`), fetched or cached."""
    repo = parse_repo_id(name)
    cache = source_cache("hub-models", str(repo))
    try:
        found = _fetch(repo)
    except HubUnreachableError as exc:
        cached = load_source(cache)
        if cached is not None:
            return cached
        raise UsageError(
            f"Hugging Face repo {repo}: cannot reach {_endpoint()} ({exc}), "
            "and it is not in llmhost's cache"
        ) from None
    store_source(cache, found)
    return found


def _endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT


def _token() -> str | bool:
    return os.environ.get("HF_TOKEN") or False  # False: never a token saved by another tool


def _fetch(repo: RepoId) -> ModelSource:
    """config.json and the safetensors headers of `repo`; hub errors as one-line UsageErrors."""
    # Only the requests a plan needs: no telemetry (huggingface_hub otherwise also fetches an
    # agent registry and caches it outside llmhost's cache). Read when huggingface_hub loads.
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url

    api = HfApi(endpoint=_endpoint(), token=_token())
    with _hub_errors(repo), _quiet():
        # One HEAD without retries first: a hub that cannot answer is known at once (and the
        # cache answers), where hf_hub_download retries for half a minute when nothing is cached.
        url = hf_hub_url(repo.repo, "config.json", revision=repo.revision, endpoint=api.endpoint)
        get_hf_file_metadata(url, token=_token(), endpoint=api.endpoint)
        config = Path(
            api.hf_hub_download(
                repo.repo,
                "config.json",
                revision=repo.revision,
                cache_dir=cache_dir() / "hf",
            )
        )
        commit = config.parent.name if _COMMIT.match(config.parent.name) else repo.revision
        weights = _safetensors(api, repo.repo, commit)
    source = read_hf_source(config)
    spec = dataclasses.replace(source.spec, id=repo.repo, hf_repo=repo.repo)
    pinned = f"{HUB_ORIGIN}{repo.repo}" + (f"@{commit}" if commit else "")
    source = dataclasses.replace(source, spec=spec, origin=pinned)
    if weights is None:
        return source
    size, dtype = weights
    fmt = source.file_format  # a quantized checkpoint's format; else the dtype the files hold
    if not source.prequantized:
        fmt = SAFETENSORS_DTYPES.get(dtype, fmt)
    return dataclasses.replace(source, file_format=fmt, file_weights_bytes=size)


def _safetensors(api: HfApi, repo: str, commit: str | None) -> tuple[int, str] | None:
    """The weights' bytes and their most common dtype, from the safetensors headers (sharded
    through model.safetensors.index.json, or one model.safetensors); None when the repo has
    neither (PyTorch .bin weights: the plan computes their size from the architecture)."""
    import json

    from huggingface_hub.errors import RemoteEntryNotFoundError

    try:
        index = api.hf_hub_download(repo, INDEX_FILE, revision=commit, cache_dir=cache_dir() / "hf")
        shards = sorted(set(json.loads(Path(index).read_text()).get("weight_map", {}).values()))
    except RemoteEntryNotFoundError:
        shards = [SINGLE_FILE]

    def header(file: str) -> dict[str, tuple[str, int, int]]:
        found = api.parse_safetensors_file_metadata(repo, file, revision=commit)
        return {
            name: (t.dtype, t.data_offsets[1] - t.data_offsets[0], t.parameter_count)
            for name, t in found.tensors.items()
        }

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            tensors = [t for h in pool.map(header, shards) for t in h.values()]
    except RemoteEntryNotFoundError:
        return None
    counts: dict[str, int] = {}
    for dtype, _, params in tensors:
        counts[dtype] = counts.get(dtype, 0) + params
    return sum(size for _, size, _ in tensors), max(counts, key=lambda d: counts[d], default="")


@contextmanager
def _quiet() -> Iterator[None]:
    """No progress bars or retry warnings on stderr while planning: a plan's fetches are small,
    and what went wrong is said once, in the error."""
    from huggingface_hub.utils.tqdm import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    hub_log = logging.getLogger("huggingface_hub")
    was_disabled, level = are_progress_bars_disabled(), hub_log.level
    disable_progress_bars()
    hub_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hub_log.setLevel(level)
        if not was_disabled:
            enable_progress_bars()


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP client's network errors (huggingface_hub 2 uses httpx2; older releases used
    requests, whose errors are OSErrors). ConnectionError: huggingface_hub's offline mode."""
    try:
        import httpx2

        return (httpx2.TransportError, ConnectionError)
    except ImportError:
        return (OSError,)


@contextmanager
def _hub_errors(repo: RepoId) -> Iterator[None]:
    """Turn huggingface_hub's errors into one line naming the repo and the reason; network
    failures into HubUnreachableError, which the cache may answer."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
        SafetensorsParsingError,
    )

    def fail(reason: str) -> UsageError:
        return UsageError(f"Hugging Face repo {repo}: {reason}")

    try:
        yield
    except GatedRepoError:
        raise fail("gated: accept its terms on the hub, then set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise fail("not found (or private: set HF_TOKEN)") from None
    except RevisionNotFoundError:
        raise fail(f"no revision '{repo.revision}'") from None
    except RemoteEntryNotFoundError:
        raise fail("no config.json in the repo (a GGUF-only repo? plan the .gguf file)") from None
    except SafetensorsParsingError as exc:
        raise fail(f"unreadable safetensors header ({_first_line(exc)})") from None
    except LocalEntryNotFoundError as exc:
        raise HubUnreachableError(_first_line(exc.__cause__ or exc)) from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        if status >= 500 or status == 429:
            raise HubUnreachableError(f"HTTP {status}") from None
        raise fail(f"HTTP {status}: {_first_line(exc)}") from None
    except _transport_errors() as exc:
        raise HubUnreachableError(_first_line(exc) or type(exc).__name__) from None


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
