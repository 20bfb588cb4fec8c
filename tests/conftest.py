import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmhost.plan.catalog import Catalog, load_catalog
from tests.support.hub import HubStandIn, serving

# Whatever in the tests talks to the Hugging Face hub by default talks to a closed local port,
# never the real hub (huggingface_hub reads this once, when first imported).
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubStandIn]:
    """A local stand-in of the Hugging Face hub, named by HF_ENDPOINT, with llmhost's cache in
    tmp_path and no token or offline mode from the environment."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    stand_in = HubStandIn()
    with serving(stand_in) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        yield stand_in
