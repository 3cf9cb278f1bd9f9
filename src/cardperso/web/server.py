"""Serving the console with uvicorn: bound to one address (127.0.0.1 unless told), believing
X-Forwarded-For / X-Forwarded-Proto only from the proxies named (``forwarded_allow_ips``), so
that behind a TLS reverse proxy the audit log and the login rate limit see the browser's
address, and nobody else can claim one."""

from __future__ import annotations

import uvicorn
from starlette.applications import Starlette


def serve(app: Starlette, *, host: str, port: int, forwarded_allow_ips: str) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn finishes the requests in flight)."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
        log_level="info",
    )
