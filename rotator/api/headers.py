"""The response headers the API adds, named once for the three kinds of response.

- `X-Content-Type-Options: nosniff` on every response: a browser must not guess a
  JSON error body (which may echo input) to be HTML or script.
- `Cache-Control: no-store` on every response but the package's static files: several
  carry a plaintext provider key or a token shown once (GET /v1/next, tenant and app
  creation, token reissues, a generated webhook secret), and one rule for all is
  simpler to trust than a list that a new endpoint could miss.

The delivery endpoint's bare ASGI responses carry them as fixed tuples (no
per-request work); errors carry them from rotator/api/errors.py; Litestar adds
them to every other response (rotator/api/app.py). /static sets its own
(rotator/api/docs.py): nosniff, and an hour's caching.
"""

from __future__ import annotations

NOSNIFF = ("X-Content-Type-Options", "nosniff")
NO_STORE = ("Cache-Control", "no-store")

API_HEADERS: dict[str, str] = dict((NOSNIFF, NO_STORE))
"""For Litestar Responses (all routes but /static) and errors."""
API_HEADER_TUPLES: tuple[tuple[bytes, bytes], ...] = tuple(
    (name.lower().encode(), value.encode()) for name, value in (NOSNIFF, NO_STORE)
)
"""For bare ASGI responses (every answer of the delivery endpoint, api/delivery*.py)."""
