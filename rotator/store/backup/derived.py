"""What a tenant's keys imply beyond themselves: its global registry memberships and the
sealed secrets among its values.

The registries are global keys (another cluster slot than the tenant's), written by the
store functions next to the tenant's own keys. A backup does not copy them: a copy read
at another instant than the tenant could disagree with it. A restore rebuilds each from
the tenant's keys by the rule its writer follows:

- kr:tenants           every tenant                          (tenants.create_tenant)
- kr:webhook_tenants   a tenant with a webhook URL           (tenants.update_tenant)
- kr:time_services     each service whose policy is time     (services._set_time_membership)
- kr:tok:<hash>        each imported client or app token     (token_index.py: the hash in
                       the tenant's client (or client_held) with client_imported '1', in an
                       app's token with token_imported '1')
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Collection, Iterator

import msgspec

from rotator.crypto import aad_for_key, aad_for_webhook_secret
from rotator.domain.models import Policy
from rotator.store import token_index
from rotator.store.backup import selection
from rotator.store.backup.format import HashKey, KeyRecord, SetKey, TenantRecord, raw

_KEY_FIELD = re.compile(rb"c:(\d+)")
"""A provider key's sealed secret in a service hash (keys.py); fullmatch."""


class Registries(msgspec.Struct, frozen=True, kw_only=True):
    webhook: bool
    """In kr:webhook_tenants."""
    time_services: list[str]
    """Slugs in kr:time_services."""
    imported_tokens: list[tuple[str, str]]
    """(token hash, owner) of kr:tok:<hash> entries: the tenant's and its apps' imported
    tokens."""


def _hash(by_name: dict[str, KeyRecord], name: str) -> dict[bytes, bytes]:
    found = by_name.get(name)
    if not isinstance(found, HashKey):
        return {}
    return {raw(f): raw(v) for f, v in found.value}


def _slugs(by_name: dict[str, KeyRecord]) -> list[str]:
    found = by_name.get(selection.SERVICES)
    return sorted(raw(m).decode() for m in found.value) if isinstance(found, SetKey) else []


def registries(record: TenantRecord) -> Registries:
    by_name = {k.name: k for k in record.keys}
    time_services = [
        slug
        for slug in _slugs(by_name)
        if _hash(by_name, selection.service_name(record.id, slug)).get(b"policy")
        == Policy.TIME.value.encode()
    ]
    tenant = _hash(by_name, selection.TENANT)
    webhook = bool(tenant.get(b"wh_url"))
    return Registries(
        webhook=webhook,
        time_services=time_services,
        imported_tokens=_imported_tokens(record.id, by_name, tenant),
    )


def _imported_tokens(
    tenant_id: str, by_name: dict[str, KeyRecord], tenant: dict[bytes, bytes]
) -> list[tuple[str, str]]:
    found = []
    client = tenant.get(b"client") or tenant.get(b"client_held")  # held while suspended
    if tenant.get(b"client_imported") == b"1" and client:
        found.append((client.decode(), token_index.client_owner(tenant_id)))
    apps = by_name.get(selection.APPS)
    for member in sorted(raw(m).decode() for m in apps.value) if isinstance(apps, SetKey) else []:
        app = _hash(by_name, selection.app_name(tenant_id, member))
        if app.get(b"token_imported") == b"1" and app.get(b"token"):
            found.append((app[b"token"].decode(), token_index.app_owner(tenant_id, member)))
    return found


def sealed_blobs(record: TenantRecord) -> Iterator[tuple[str, bytes, bytes]]:
    """(where, blob, associated data) of every sealed secret: the webhook secret and each
    provider key. `where` names a place, never a value."""
    by_name = {k.name: k for k in record.keys}
    wh_secret = _hash(by_name, selection.TENANT).get(b"wh_secret")
    if wh_secret:
        yield f"tenant {record.id} webhook secret", wh_secret, aad_for_webhook_secret(record.id)
    for slug in _slugs(by_name):
        for field, blob in _hash(by_name, selection.service_name(record.id, slug)).items():
            match = _KEY_FIELD.fullmatch(field)
            if match and blob:
                key_id = int(match.group(1))
                yield (
                    f"tenant {record.id} service {slug} key {key_id}",
                    blob,
                    aad_for_key(record.id, slug, key_id),
                )


_TOKEN_FIELDS = {
    "tenant": ({"client", "client_held"}, "client_imported"),
    "service": ({"@client"}, None),  # the tenant's field as copied (keys.COPIES)
    "app": ({"token"}, "token_imported"),
}


def without_shared(record: TenantRecord, shared: Collection[str]) -> TenantRecord:
    """`record` with each imported token hash in `shared` (several owners hold it in the
    file: Checked.shared_tokens) replaced by the hash of a random value, its imported flag
    cleared: restored, none of its owners accepts it, so a later import of the value cannot
    leave two owners accepting one token. An owner's other tokens keep working."""
    if not shared:
        return record
    # one random value a hash: the services' copies of `client` stay equal to it
    replacements = {h: hashlib.sha256(os.urandom(32)).hexdigest() for h in shared}
    app_prefix = selection.app_name(record.id, "")
    changed = []
    for key in record.keys:
        if isinstance(key, HashKey):
            kind = (
                "tenant" if key.name == selection.TENANT
                else "service" if key.name.startswith(selection.SERVICE_PREFIX)
                else "app" if key.name.startswith(app_prefix)
                else None
            )  # fmt: skip
            if kind is not None:
                key = _revoke(key, *_TOKEN_FIELDS[kind], replacements)
        changed.append(key)
    return msgspec.structs.replace(record, keys=changed)


def _revoke(
    key: HashKey, fields: set[str], flag: str | None, replacements: dict[str, str]
) -> HashKey:
    value = dict(key.value)
    revoked = False
    for field in fields & value.keys():
        replacement = replacements.get(raw(value[field]).decode(errors="replace"))
        if replacement is not None:
            value[field], revoked = replacement, True  # matches no token
    if not revoked:
        return key
    if flag is not None and flag in value:
        value[flag] = ""
    return msgspec.structs.replace(key, value=list(value.items()))
