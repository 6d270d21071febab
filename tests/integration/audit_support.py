"""Helpers of the audit log tests: every management write of the API with a body that goes
through, and readers of the raw logs (to scan every record, whoever may read it)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from rotator.store import keys
from rotator.store.tenants import new_webhook_secret
from tests.integration.management import (
    OPERATOR,
    SECRET,
    Tenant,
    new_app,
    new_key,
    new_service,
    new_tenant,
)

WEBHOOK_SECRET = new_webhook_secret()
ADDED_SECRET = "sk-added-0123456789abcdefghijklmnopqrstu"
"""The key the add_key write adds (the seeded service holds SECRET: a second copy is refused)."""
BULK_SECRET = "sk-bulk-0123456789abcdefghijklmnopqrstuv"
IMPORT_SECRET = "sk-import-0123456789abcdefghijklmnopqrs"

# Every write operation of the API ("METHOD /path" as the OpenAPI document spells it):
# (who calls it, the path with {tenant}/{key}/{app} to fill, the body, the store action the
# record names). tests/integration/test_audit_log.py fails for a write missing here.
WRITES: dict[str, tuple[str, str, Any, str]] = {
    "POST /v1/admin/tenants": ("operator", "/v1/admin/tenants", {"name": "new"}, "create_tenant"),
    "PATCH /v1/admin/tenants/{tenant_id}": (
        "operator", "/v1/admin/tenants/{tenant}", {"name": "renamed"}, "update_tenant_status"),
    "DELETE /v1/admin/tenants/{tenant_id}": (
        "operator", "/v1/admin/tenants/{tenant}?confirm={tenant}", None, "delete_tenant"),
    "POST /v1/admin/tenants/{tenant_id}/admin-token": (
        "operator", "/v1/admin/tenants/{tenant}/admin-token", None, "issue_admin_token"),
    "PATCH /v1/tenant": (
        "tenant", "/v1/tenant",
        {"name": "x", "webhook_url": "http://127.0.0.1:9/hook", "webhook_secret": WEBHOOK_SECRET},
        "update_tenant"),
    "POST /v1/tenant/client-token": (
        "tenant", "/v1/tenant/client-token", None, "issue_client_token"),
    "POST /v1/tenant/admin-token": ("tenant", "/v1/tenant/admin-token", None, "issue_admin_token"),
    "POST /v1/services": (
        "tenant", "/v1/services", {"slug": "other", "policy": "usage"}, "create_service"),
    "PATCH /v1/services/{slug}": (
        "tenant", "/v1/services/openai", {"max_daily_requests": 3}, "update_service"),
    "DELETE /v1/services/{slug}": ("tenant", "/v1/services/openai", None, "delete_service"),
    "POST /v1/services/{slug}/rotate": ("tenant", "/v1/services/openai/rotate", None, "rotate"),
    "POST /v1/services/{slug}/keys": (
        "tenant", "/v1/services/openai/keys", {"label": "k", "secret": ADDED_SECRET}, "add_key"),
    "POST /v1/services/{slug}/keys/bulk": (
        "tenant", "/v1/services/openai/keys/bulk", {"keys": [{"secret": BULK_SECRET}]},
        "add_keys"),
    "PATCH /v1/services/{slug}/keys/{key_id}": (
        "tenant", "/v1/services/openai/keys/{key}", {"active": False}, "update_key"),
    "DELETE /v1/services/{slug}/keys/{key_id}": (
        "tenant", "/v1/services/openai/keys/{key}", None, "remove_key"),
    "POST /v1/services/{slug}/keys/{key_id}/move": (
        "tenant", "/v1/services/openai/keys/{key}/move", {"to": "end"}, "move_key"),
    "POST /v1/apps": ("tenant", "/v1/apps", {"name": "a"}, "add_app"),
    "PATCH /v1/apps/{app_id}": ("tenant", "/v1/apps/{app}", {"name": "renamed"}, "update_app"),
    "DELETE /v1/apps/{app_id}": ("tenant", "/v1/apps/{app}", None, "delete_app"),
    "POST /v1/apps/{app_id}/token": ("tenant", "/v1/apps/{app}/token", None, "issue_app_token"),
    "POST /v1/import": (
        "tenant", "/v1/import",
        {"rows": [{"slug": "imported", "secret": IMPORT_SECRET, "policy": "usage"}]},
        "import_keys"),
}  # fmt: skip

NOT_RECORDED = {
    "POST /v1/webhooks/test": "records a webhook.test event and changes nothing",
    "POST /v1/report": "a client app's report (client or app token), not a management write: "
    "what it does to a key is recorded as key.cooling_down / key.disabled events, and the key "
    "shows its last report and disabled_reason",
}


@dataclass
class Fixture:
    tenant: Tenant
    key_id: int
    second_key_id: int
    app_id: int


async def seeded(client: httpx.AsyncClient, name: str = "acme") -> Fixture:
    """A tenant with a manual service `openai` of two keys and an app."""
    t = await new_tenant(client, name)
    await new_service(client, t, policy="manual")
    first = await new_key(client, t)
    second = await new_key(client, t, secret=SECRET + "2", label="Second")
    app = await new_app(client, t)
    return Fixture(t, int(first["id"]), int(second["id"]), int(app["id"]))


async def do_write(client: httpx.AsyncClient, f: Fixture, operation: str) -> httpx.Response:
    who, path, body, _ = WRITES[operation]
    method = operation.split(" ", 1)[0]
    path = path.format(tenant=f.tenant.id, key=f.key_id, app=f.app_id)
    headers = OPERATOR if who == "operator" else f.tenant.auth
    return await client.request(method, path, json=body, headers=headers)


async def raw_records(redis: Any, tenant: str | None) -> list[dict[str, Any]]:
    """Every record of a tenant's log (None: the operator's), oldest first, as stored."""
    stream = keys.AUDIT if tenant is None else keys.audit(tenant)
    return [json.loads(values[b"r"]) for _, values in await redis.xrange(stream)]


async def read_all(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list:
    """Every record GET /v1/audit gives these credentials, following the cursor."""
    records: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/v1/audit", params=query, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        records += page["records"]
        cursor = page["next_cursor"]
        if cursor is None:
            return records
