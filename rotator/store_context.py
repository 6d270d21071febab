"""How the API, the console and the CLI call a store function: one binding of the caller's
context (store clients, key ring, clock, events cap) to the store's parameters.

Every store function opens with the clients it needs (`redis`, then `durability` and/or
`keyring`) and takes the time, the events stream's cap and the usage retention as keywords
(`now_ms` or `today`, `events_maxlen`, `retention_days`). Spelling those out at each of the
three interfaces wrote every call three times over, and a call that forgot `now_ms` quietly
used the process clock instead of the injected one. `call` supplies them by those names, so
a call site says only what differs: the tenant, the resource and the fields.

A store function that takes `durability` is a management write: called while the request
scope (rotator/request_scope.py) names an actor, it runs with its audit record
(rotator/store/audit.py), so no door and no store function records it by hand.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from rotator import request_scope
from rotator.domain.clock import utc_day

T = TypeVar("T")

LEADING = ("redis", "durability", "keyring")
"""The clients a store function may take first, positionally: redis, then durability and
the key ring where it needs them (by name, so `(redis, keyring, ...)` works too)."""
KEYWORDS = ("now_ms", "today", "events_maxlen", "retention_days")
"""What a store function takes as keywords from the context, when it takes them at all."""


@functools.cache
def _context_parameters(fn: Callable[..., Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Which of the context's values `fn` takes: its leading clients, then its keywords."""
    parameters = inspect.signature(fn).parameters
    leading: list[str] = []
    for name in parameters:
        if name not in LEADING:
            break
        leading.append(name)
    keywords = tuple(
        name
        for name in KEYWORDS
        if name in parameters and parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
    )
    return tuple(leading), keywords


class StoreContext:
    """The caller's side of a store call. AppState (the API and the console, one per process)
    and the CLI's Context (one per command) provide the attributes; `call` binds them."""

    redis: Any
    durability: Any
    keyring: Any
    settings: Any

    now_ms: Callable[[], int]
    """The caller's clock (the app's injected clock, the CLI's system clock)."""

    def _context_value(self, name: str) -> Any:
        if name == "now_ms":
            return self.now_ms()
        if name == "today":
            return utc_day(self.now_ms())
        if name == "events_maxlen":
            return self.settings.events_maxlen
        if name == "retention_days":
            return self.settings.usage_retention_days
        return getattr(self, name)

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """`fn(<clients>, *args, **kwargs, now_ms=..., events_maxlen=...)`, each context
        value passed only where `fn` declares it; a keyword given by the caller wins."""
        leading, keywords = _context_parameters(fn)
        for name in keywords:
            if name not in kwargs:
                kwargs[name] = self._context_value(name)
        clients = [self._context_value(name) for name in leading]
        scope = request_scope.current()
        if "durability" in leading and scope is not None and scope.actor is not None:
            # a management write by someone: recorded in the audit log with the change
            from rotator.store import audit

            return await audit.recorded(self, fn, clients, args, kwargs, scope.actor, scope)
        return await fn(*clients, *args, **kwargs)
