"""The console's response headers and cookies: a strict Content-Security-Policy (scripts and
styles only from /ui/static, no inline code, no framing), no caching of pages that show admin
data, and session cookies that are HttpOnly, SameSite=Strict and Secure off loopback."""

from __future__ import annotations

from aiohttp import web

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def harden(response: web.StreamResponse, cache: bool = False) -> web.StreamResponse:
    """Add the console's security headers to `response`; pages are never cached."""
    response.headers.update(HEADERS)
    if not cache:
        response.headers["Cache-Control"] = "no-store"
    return response


def set_cookie(
    response: web.StreamResponse, name: str, value: str, secure: bool, max_age: int | None
) -> None:
    """A console cookie: HttpOnly, SameSite=Strict, scoped to /ui, Secure unless on loopback."""
    response.set_cookie(
        name,
        value,
        path="/ui",
        httponly=True,
        samesite="Strict",
        secure=secure,
        max_age=max_age,
    )


def clear_cookie(response: web.StreamResponse, name: str, secure: bool) -> None:
    """Remove a console cookie."""
    set_cookie(response, name, "", secure, 0)
