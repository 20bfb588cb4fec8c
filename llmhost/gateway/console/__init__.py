"""The web console at /ui: health, usage and savings, keys and tenants, audit and plans, for
admin principals (`roles.py`), served by the gateway with no CDN and no build step."""

from llmhost.gateway.console.handlers import Console

__all__ = ["Console"]
