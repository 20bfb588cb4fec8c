"""The embedded GGUF as vLLM loads it: converted once into the cache, and checked by hash.

The conversion (`gguf_to_hf.py`, run in the vLLM venv) takes about 2.5 minutes on 2 cores and is
reproducible byte for byte, so its result is kept under
`~/.cache/llmhost/models/vllm/<gguf sha256 prefix>/` with a manifest of every file's sha256.
A folder whose files no longer match its manifest is converted again; a conversion whose weights
differ from the hash pinned in `data/vllm.yaml` is refused (the venv's transformers changed).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from llmhost.engines.build import BuildError
from llmhost.engines.vllm_install import install_vllm
from llmhost.engines.vllm_pins import pins
from llmhost.errors import LlmhostError, UsageError
from llmhost.paths import cache_dir

MANIFEST = "manifest.json"


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def folder_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file in `folder` except the manifest, by name."""
    return {
        p.name: sha256(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST
    }


def is_intact(folder: Path) -> bool:
    """True when `folder` has a manifest and every file still matches it."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return False
    recorded = json.loads(manifest.read_text())["files"]
    return bool(recorded) and folder_hashes(folder) == recorded


def converted_path(gguf: Path) -> Path:
    """Where the conversion of `gguf` lives in the cache (named by the GGUF's own hash)."""
    return cache_dir() / "models" / "vllm" / f"{gguf.stem}-bf16-{sha256(gguf)[:12]}"


def convert_for_vllm(gguf: Path, quiet: bool = False) -> Path:
    """The bf16 Hugging Face folder for `gguf`, converting it first if needed (minutes)."""
    target = converted_path(gguf)
    if is_intact(target):
        return target
    python = install_vllm(quiet=quiet)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.with_suffix(".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_intact(target):
            return target
        staging = target.with_suffix(".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        if not quiet:
            print(
                f"converting {gguf.name} to bf16 safetensors for vLLM (about 3 minutes) ...",
                file=sys.stderr,
            )
        script = Path(__file__).with_name("gguf_to_hf.py")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        proc = subprocess.run(
            [str(python), str(script), str(gguf), str(staging)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            raise BuildError(f"converting {gguf} for vLLM failed:\n{proc.stderr[-3000:]}")
        hashes = folder_hashes(staging)
        expected = pins().weights_sha256.get(gguf.name)
        got = hashes.get("model.safetensors")
        if expected is not None and got != expected:
            raise BuildError(
                f"converting {gguf.name} gave model.safetensors {got}, not the pinned {expected} "
                "(llmhost/engines/data/vllm.yaml): the vLLM venv's transformers has changed"
            )
        manifest = {"source": gguf.name, "source_sha256": sha256(gguf), "files": hashes}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        staging.rename(target)
    return target


def vllm_weights(source: str, quiet: bool = False) -> Path:
    """A folder vLLM loads for `source`: a Hugging Face folder as it is, or a GGUF ('embedded',
    a path, hf://...) converted once to bf16 safetensors."""
    from llmhost.engines.weights import resolve_weights

    folder = Path(source).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise UsageError(f"weights '{source}' is a folder without a config.json")
        return folder
    return convert_for_vllm(resolve_weights(source), quiet=quiet)


def prepare_embedded(quiet: bool = False) -> Path:
    """Install vLLM (if needed) and convert the embedded model for it; the converted folder."""
    from llmhost.engines.vllm_install import vllm_launcher
    from llmhost.engines.weights import embedded_gguf

    vllm_launcher(install_vllm(quiet=quiet))
    return convert_for_vllm(embedded_gguf(), quiet=quiet)


if __name__ == "__main__":
    try:
        print(prepare_embedded())
    except LlmhostError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
