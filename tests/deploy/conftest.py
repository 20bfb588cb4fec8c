"""Fixtures the deploy tests share: the stand-in Kubernetes API server, served on a port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiohttp import web

from tests.deploy.test_apply import ApiServer
from tests.support.harness import served_in_thread


@pytest.fixture
def api() -> Iterator[tuple[ApiServer, str]]:
    """A fresh stand-in API server and its URL."""
    server = ApiServer()
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", server.handle)
    with served_in_thread(app) as url:
        yield server, url
