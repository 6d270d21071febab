"""Helpers of the management API tests: create tenants and resources over HTTP."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from tests.conftest import OPERATOR_TOKEN

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789WXYZ"

# Every management route, (method, path, a body that passes validation): the tests of
# authentication and of store outages go through all of them. {key}, {app} and {tenant}
# are filled with the ids of the owner's resources.
TENANT_ROUTES = [
    ("GET", "/v1/tenant", None),
    ("PATCH", "/v1/tenant", {"name": "x"}),
    ("POST", "/v1/tenant/client-token", None),
    ("POST", "/v1/services", {"slug": "other", "policy": "usage"}),
    ("GET", "/v1/services", None),
    ("GET", "/v1/services/openai", None),
    ("PATCH", "/v1/services/openai", {"max_daily_requests": 3}),
    ("DELETE", "/v1/services/openai", None),
    ("POST", "/v1/services/openai/keys", {"label": "k", "secret": "sk-x"}),
    ("GET", "/v1/services/openai/keys", None),
    ("PATCH", "/v1/services/openai/keys/{key}", {"active": False}),
    ("DELETE", "/v1/services/openai/keys/{key}", None),
    ("GET", "/v1/services/openai/usage", None),
    ("POST", "/v1/apps", {"name": "a"}),
    ("GET", "/v1/apps", None),
    ("GET", "/v1/apps/{app}", None),
    ("PATCH", "/v1/apps/{app}", {"name": "renamed"}),
    ("POST", "/v1/apps/{app}/token", None),
    ("DELETE", "/v1/apps/{app}", None),
    ("GET", "/v1/webhooks/deliveries", None),
    ("POST", "/v1/tenant/admin-token", None),
]
OPERATOR_ROUTES = [
    ("POST", "/v1/admin/tenants", {"name": "x"}),
    ("GET", "/v1/admin/tenants", None),
    ("GET", "/v1/admin/tenants/{tenant}", None),
    ("PATCH", "/v1/admin/tenants/{tenant}", {"suspended": True}),
    ("POST", "/v1/admin/tenants/{tenant}/admin-token", None),
    ("DELETE", "/v1/admin/tenants/{tenant}?confirm={tenant}", None),
]


@dataclass
class Tenant:
    id: str
    admin_token: str
    client_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}


async def new_tenant(
    client: httpx.AsyncClient, name: str | None = None, demo: bool = False
) -> Tenant:
    """A new tenant named `name`; unnamed, the first free of acme, acme 2, … (names are
    unique)."""
    for n in range(1, 100):
        tried = name or ("acme" if n == 1 else f"acme {n}")
        body = {"name": tried, "demo": demo}
        r = await client.post("/v1/admin/tenants", json=body, headers=OPERATOR)
        if r.status_code != 409 or name is not None:
            break
    assert r.status_code == 201, r.text
    body = r.json()
    return Tenant(body["id"], body["admin_token"], body["client_token"])


async def new_service(
    client: httpx.AsyncClient, t: Tenant, slug: str = "openai", policy: str = "usage", **extra
) -> dict:
    body = {"slug": slug, "policy": policy, **extra}
    r = await client.post("/v1/services", json=body, headers=t.auth)
    assert r.status_code == 201, r.text
    return r.json()


def secret_for(label: str) -> str:
    """The secret `new_key` stores under `label` unless given one: SECRET for the default
    label, else one of the label's own (a service never holds one secret twice)."""
    return SECRET if label == "Primary" else f"{SECRET}-{label}"


async def new_key(
    client: httpx.AsyncClient, t: Tenant, slug: str = "openai", secret: str | None = None, **extra
) -> dict:
    label = extra.pop("label", "Primary")
    body = {"label": label, "secret": secret_for(label) if secret is None else secret, **extra}
    r = await client.post(f"/v1/services/{slug}/keys", json=body, headers=t.auth)
    assert r.status_code == 201, r.text
    return r.json()


async def new_app(client: httpx.AsyncClient, t: Tenant, name: str = "web", **extra) -> dict:
    r = await client.post("/v1/apps", json={"name": name, **extra}, headers=t.auth)
    assert r.status_code == 201, r.text
    return r.json()


async def deliver(client: httpx.AsyncClient, token: str, service: str = "openai"):
    """GET /v1/next: what a client app sees (the proof that a management change took effect)."""
    return await client.get("/v1/next", params={"service": service, "token": token})
