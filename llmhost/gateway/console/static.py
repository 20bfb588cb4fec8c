"""The console's scripts and styles, read once from the package and served from /ui/static:
only the files shipped there (no path is taken from the request), so a strict
Content-Security-Policy can allow scripts from 'self' alone."""

from __future__ import annotations

import hashlib
from pathlib import Path

from aiohttp import web

from llmhost.gateway.console.security import harden

TYPES = {".js": "text/javascript", ".css": "text/css"}


class Static:
    """The files of one folder, by name, with an ETag each."""

    def __init__(self, folder: Path) -> None:
        self.files: dict[str, tuple[bytes, str, str]] = {}
        for path in sorted(folder.iterdir()):
            if path.suffix in TYPES:
                body = path.read_bytes()
                etag = hashlib.sha256(body).hexdigest()[:16]
                self.files[path.name] = (body, TYPES[path.suffix], etag)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """GET /ui/static/{name}: a shipped file, or 404."""
        found = self.files.get(request.match_info["name"])
        if found is None:
            return harden(web.Response(status=404, text="no such file"))
        body, content_type, etag = found
        if request.headers.get("If-None-Match") == f'"{etag}"':
            return harden(web.Response(status=304), cache=True)
        response = web.Response(body=body, content_type=content_type)
        response.headers["ETag"] = f'"{etag}"'
        response.headers["Cache-Control"] = "private, max-age=300"
        return harden(response, cache=True)
