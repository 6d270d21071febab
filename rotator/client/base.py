"""What the sync and the async client share: how they are built and shown."""

from __future__ import annotations

import os
import ssl
from typing import Any, ClassVar

import httpx

from rotator.client import wire


class ClientBase:
    """`token` is a tenant client token (`krc_…`) or an app token (`kra_…`), sent as
    `Authorization: Bearer`. `report_success` makes `call` report 2xx answers too (one
    more request each; it resets the key's failure count sooner). `transport` is httpx's,
    for tests. `verify`: the CA file (a path) or ssl.SSLContext an https server's certificate
    is checked with (docs/https.md's dev CA: `verify="deploy/tls/ca.pem"`); True, the default,
    uses the system's CAs."""

    _http_class: ClassVar[type[httpx.Client] | type[httpx.AsyncClient]]

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = wire.DEFAULT_TIMEOUT_S,
        report_success: bool = False,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        verify: str | os.PathLike[str] | ssl.SSLContext | bool = True,
    ) -> None:
        self.base_url = base_url
        self.report_success = report_success
        if isinstance(verify, str | os.PathLike):
            verify = ssl.create_default_context(cafile=os.fspath(verify))
        self._http: Any = self._http_class(
            base_url=base_url,
            headers=wire.headers(token),
            timeout=timeout_s,
            transport=transport,  # type: ignore[arg-type]
            verify=verify,
        )

    def __repr__(self) -> str:  # the token stays out of logs and tracebacks
        return f"{type(self).__name__}(base_url={self.base_url!r})"
