"""Build llama.cpp's `llama-server` from a pinned, registry-provided copy of its sources.

The `llama-cpp-python` sdist on PyPI vendors llama.cpp under `vendor/llama.cpp`; we download that
exact version with pip, build only the `llama-server` target with CMake, and cache the binary
outside the repository so a second run (or CI on the same machine) skips the build.

The build is portable (`GGML_NATIVE=OFF` with AVX2/FMA/F16C on): a native build crashed on these
machines in the AMX matrix kernels. No curl or OpenSSL: llmhost never lets the engine download.
Running this module builds (if needed) and prints the binary's path.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from llmhost.errors import LlmhostError
from llmhost.paths import cache_dir

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=OFF",
    "-DGGML_AVX=ON",
    "-DGGML_AVX2=ON",
    "-DGGML_FMA=ON",
    "-DGGML_F16C=ON",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
)


class BuildError(LlmhostError):
    """The engine could not be built; the message says what is missing or what failed."""


def _build_id() -> str:
    flags = hashlib.sha256(" ".join(CMAKE_FLAGS).encode()).hexdigest()[:10]
    return f"{LLAMA_CPP_PYTHON_VERSION}-{flags}"


def server_path() -> Path:
    """Where the cached `llama-server` for this pinned version and flag set lives."""
    override = os.environ.get("LLMHOST_LLAMA_SERVER")
    if override:
        return Path(override)
    return cache_dir() / "llama.cpp" / _build_id() / "llama-server"


def _check_toolchain() -> None:
    missing = [tool for tool in ("cmake", "c++") if shutil.which(tool) is None]
    if missing:
        raise BuildError(
            f"building llama-server needs {' and '.join(missing)}: install them "
            "(Debian: apt-get install cmake g++) and run again"
        )


def _run(cmd: list[str], log: Path, cwd: Path | None = None) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-20:])
        raise BuildError(f"'{' '.join(cmd[:3])} ...' failed (log: {log}):\n{tail}")


def _extract_vendor(sdist: Path, into: Path) -> Path:
    """Unpack only vendor/llama.cpp from the sdist and return its folder."""
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name]
        tar.extractall(into, members=members, filter="data")
    found = next(into.glob("*/vendor/llama.cpp"), None)
    if found is None:
        raise BuildError(f"{sdist.name} has no vendor/llama.cpp")
    return found


def build_llama_server(jobs: int | None = None, quiet: bool = False) -> Path:
    """Return the cached `llama-server`, building it first if it is not there (about 5 min)."""
    target = server_path()
    if target.is_file():
        return target
    if os.environ.get("LLMHOST_LLAMA_SERVER"):
        raise BuildError(f"LLMHOST_LLAMA_SERVER points at {target}, which does not exist")
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; others wait and reuse it
        if target.is_file():
            return target
        _check_toolchain()
        with tempfile.TemporaryDirectory(prefix="llmhost-build-") as tmp:
            work, log = Path(tmp), target.parent / "build.log"
            log.write_text("")
            if not quiet:
                print(f"building llama-server {_build_id()} (log: {log}) ...", file=sys.stderr)
            spec = f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"
            _run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    "-q",
                    "-d",
                    str(work),
                    spec,
                ],
                log,
            )
            sdist = next(work.glob("llama_cpp_python-*.tar.gz"), None)
            if sdist is None:
                raise BuildError(f"pip did not download {spec} (log: {log})")
            source = _extract_vendor(sdist, work / "src")
            build = work / "build"
            _run(["cmake", "-S", str(source), "-B", str(build), *CMAKE_FLAGS], log)
            n = str(jobs or os.cpu_count() or 2)
            _run(["cmake", "--build", str(build), "--target", "llama-server", "-j", n], log)
            built = build / "bin" / "llama-server"
            staged = target.with_suffix(".tmp")
            shutil.copy2(built, staged)
            staged.rename(target)
    return target


if __name__ == "__main__":
    try:
        print(build_llama_server())
    except LlmhostError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
