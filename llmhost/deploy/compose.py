"""A Docker Compose file for one GPU host: weights download, engine, gateway, Redis, Prometheus.

The same plan, engine arguments and gateway config as the Kubernetes render, minus the cluster:
the gateway reaches the engine by its service name, and the download runs as a one-off service
the engine waits for.
"""

from __future__ import annotations

from typing import Any

import yaml

from llmhost.deploy.catalog import cluster_catalog
from llmhost.deploy.kubernetes import engines_for
from llmhost.deploy.model import MODELS_DIR, EngineDeployment
from llmhost.deploy.objects.engine import COMMAND, engine_env
from llmhost.deploy.objects.gateway import CONFIG_PATH
from llmhost.deploy.objects.meta import GATEWAY_PORT
from llmhost.deploy.objects.weights import download_image, download_script
from llmhost.deploy.options import RenderOptions
from llmhost.engines import adapter
from llmhost.plan import Plan

PROMETHEUS_PORT = 9090


def render_compose(plans: list[Plan], options: RenderOptions) -> dict[str, Any]:
    """The Compose document for the plans' models on one host."""
    engines = engines_for(plans, options)
    images = cluster_catalog().images
    services: dict[str, Any] = {}
    models = []
    scrape = [f"gateway:{GATEWAY_PORT}"]
    for engine in engines:
        name = engine.deployment
        services[f"download-{engine.name}"] = {
            "image": download_image(engine, images),
            "entrypoint": ["sh", "-c", download_script(engine)],
            "environment": {"HF_TOKEN": "${HF_TOKEN:-}", "HOME": "/tmp"},
            "volumes": [f"models:{MODELS_DIR}"],
            "restart": "no",
        }
        services[name] = _engine_service(engine, images[engine.engine])
        models.append(
            {
                "name": engine.model,
                "engine": engine.engine,
                "urls": [f"http://{name}:{engine.launch.port}"],
                "context": engine.launch.context,
                "parallel": engine.launch.parallel,
            }
        )
        if adapter(engine.engine).metrics_path:
            scrape.append(f"{name}:{engine.launch.port}")
    config = {
        "server": {
            "host": "0.0.0.0",
            "port": GATEWAY_PORT,
            "auth": "keys",
            "store_url": "sqlite:////data/llmhost.db",
            "redis_url": options.redis_url or "redis://redis:6379/0",
        },
        "models": models,
    }
    services["gateway"] = {
        "image": options.gateway_image,
        "command": ["llmhost", "up", "--config", CONFIG_PATH],
        "ports": [f"8000:{GATEWAY_PORT}"],
        "environment": {"LLMHOST_ADMIN_KEY": "${LLMHOST_ADMIN_KEY:-}"},
        "configs": [{"source": "llmhost", "target": CONFIG_PATH}],
        "volumes": ["gateway-data:/data"],
        "depends_on": {"redis": {"condition": "service_started"}},
        "restart": "unless-stopped",
    }
    services["redis"] = {
        "image": images["redis"],
        "command": ["redis-server", "--save", "", "--appendonly", "no"],
        "restart": "unless-stopped",
    }
    prometheus = {
        "scrape_configs": [
            {
                "job_name": "llmhost",
                "scrape_interval": "15s",
                "static_configs": [{"targets": scrape}],
            }
        ]
    }
    services["prometheus"] = {
        "image": images["prometheus"],
        "configs": [{"source": "prometheus", "target": "/etc/prometheus/prometheus.yml"}],
        "ports": [f"127.0.0.1:{PROMETHEUS_PORT}:{PROMETHEUS_PORT}"],
        "restart": "unless-stopped",
    }
    return {
        "name": "llmhost",
        "services": services,
        "volumes": {"models": {}, "gateway-data": {}},
        "configs": {
            "llmhost": {"content": yaml.safe_dump(config, sort_keys=False)},
            "prometheus": {"content": yaml.safe_dump(prometheus, sort_keys=False)},
        },
    }


def _engine_service(engine: EngineDeployment, image: str) -> dict[str, Any]:
    kind = adapter(engine.engine)
    service: dict[str, Any] = {
        "image": image,
        "entrypoint": COMMAND[engine.engine],
        "command": kind.launch_args(engine.launch),
        "environment": engine_env(engine),
        "volumes": [f"models:{MODELS_DIR}:ro"],
        "depends_on": {f"download-{engine.name}": {"condition": "service_completed_successfully"}},
        "restart": "unless-stopped",  # health is the gateway's to check
    }
    if engine.gpus:
        service["deploy"] = {
            "resources": {
                "reservations": {
                    "devices": [{"driver": "nvidia", "count": engine.gpus, "capabilities": ["gpu"]}]
                }
            }
        }
        service["shm_size"] = f"{max(1, engine.gpus) * 8}gb"
    return service
