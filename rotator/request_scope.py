"""What is known about the request (or CLI command) being served: its id, its tenant, its
actor. One object per request in a context variable, so the log formatter, the audit log
and the store calls read it without a parameter on every function in between.

The API's request-id middleware (rotator/api/request_id.py) opens one per request; the
guards fill in the actor and tenant once they have authenticated; the CLI opens one per
command. The object is mutable on purpose: a guard runs in the request's task but after the
middleware set the variable, and filling in the same object is what reaches the handler.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from rotator.domain.audit import Actor
from rotator.request_ids import IDS


@dataclass(slots=True)
class RequestScope:
    request_id: str = ""
    address: str = ""
    """The client's address as resolved with trusted proxies ('' until known)."""
    tenant: str | None = None
    actor: Actor | None = None


def new_request_id() -> str:
    """A new id from this process's ids (rotator/request_ids.py: a random prefix and a
    counter, not a uuid4 per request)."""
    return IDS.new().decode()


CURRENT: contextvars.ContextVar[RequestScope | None] = contextvars.ContextVar(
    "rotator_request_scope", default=None
)


def current() -> RequestScope | None:
    return CURRENT.get()


def open_scope(scope: RequestScope) -> contextvars.Token[RequestScope | None]:
    return CURRENT.set(scope)


def close_scope(token: contextvars.Token[RequestScope | None]) -> None:
    CURRENT.reset(token)


def act_as(actor: Actor, tenant: str | None = None) -> None:
    """Name who acts in the current scope (a guard, once it has authenticated)."""
    scope = CURRENT.get()
    if scope is not None:
        scope.actor = actor
        if tenant is not None:
            scope.tenant = tenant
