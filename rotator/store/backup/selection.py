"""Which keys a backup holds: every key of a tenant's hash tag, except a few on purpose.

Left out (each is short-lived state whose loss costs a user nothing, while restoring it
would do harm or nothing):

- console sessions (`session:<h>`, `sessions`): a restored session would sign a browser
  back in with whatever admin token the file holds; people sign in again.
- request-id records (`rid:<id>`): they make a proxy's retry within minutes count once;
  no retry spans a restore.
- the demo throttle (`gcra:<ip>`): seconds of per-IP state.
- the per-minute windows (`wins:<slug>`, `wink:<id>`): a minute of delivery times.

Everything else of the tag is data and is backed up, whatever its type, including kinds
added after this was written (a new kind is in the backup unless it is added here).
Global keys are not copied as they are: the registries (kr:tenants, kr:webhook_tenants,
kr:time_services) are rebuilt from the tenants' own keys (derived.py), kr:demo_tenant and
kr:keyring travel in the header; operator sessions and sign-in throttles are left out for
the reasons above, and the arq job queue is the worker's (see docs/operations.md). The
operator's audit log (kr:audit) and the unauthenticated-request counts (kr:authfail:*) are
this installation's own history, not data to restore: each tenant's audit log
({t:T}:audit) is backed up with the tenant.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from rotator.store import keys
from rotator.store.connection import Redis

_PROBE = "t"


def _suffix(name: str, tenant: str = _PROBE) -> str:
    """A per-tenant key name (keys.py) without the tag and its ':' (`svc:openai`)."""
    prefix = keys.tag(tenant) + ":"
    assert name.startswith(prefix), name
    return name[len(prefix) :]


LEFT_OUT_PREFIXES = (
    _suffix(keys.session(_PROBE, "")),
    _suffix(keys.request_record(_PROBE, "")),
    _suffix(keys.gcra(_PROBE, "")),
    _suffix(keys.service_window(_PROBE, "")),
    _suffix(keys.key_window_prefix(_PROBE)),
)
LEFT_OUT_NAMES = (_suffix(keys.sessions(_PROBE)),)
_TAG_HEAD = keys.tag("")[:-1]
"""`{t:`: how every per-tenant key begins."""
TAG_PATTERN = _TAG_HEAD + "*"
"""SCAN MATCH pattern of every tenant's keys ('{' is not special in a glob)."""


def full_name(tenant: str, name: str) -> str:
    """The key a name in the file stands for: always under the tenant's tag (one slot)."""
    return keys.tag(tenant) + ":" + name


def split_name(key: str) -> tuple[str, str] | None:
    """(tenant, name after its tag) of a per-tenant key, None for any other key."""
    end = key.find("}:")
    if not key.startswith(_TAG_HEAD) or end < len(_TAG_HEAD):
        return None
    return key[len(_TAG_HEAD) : end], key[end + 2 :]


def is_data(name: str) -> bool:
    """Whether a key (its name after the tag) belongs in a backup."""
    return name not in LEFT_OUT_NAMES and not name.startswith(LEFT_OUT_PREFIXES)


def fixed_names(tenant: str) -> list[str]:
    """The names every tenant may have, passed to the read whether or not the SCAN saw
    them: one created between the SCAN and the read is read too."""
    return [
        _suffix(make(tenant), tenant)
        for make in (keys.tenant, keys.seq, keys.services, keys.apps, keys.events, keys.void,
                     keys.deliveries)
    ]  # fmt: skip


def usage_names(tenant: str, today: int) -> list[str]:
    """Yesterday's, today's and tomorrow's usage hashes: a day's first delivery after the
    SCAN (or a midnight during the backup) creates one the SCAN cannot have seen."""
    return [_suffix(keys.usage(tenant, day), tenant) for day in (today - 1, today, today + 1)]


def service_name(tenant: str, slug: str) -> str:
    return _suffix(keys.service(tenant, slug), tenant)


def app_name(tenant: str, app_id: str) -> str:
    return _suffix(keys.app(tenant, app_id), tenant)


SERVICE_PREFIX = _suffix(keys.service(_PROBE, ""))
"""`svc:`: the names of a tenant's service hashes begin with it."""
SERVICES = _suffix(keys.services(_PROBE))
APPS = _suffix(keys.apps(_PROBE))
TENANT = _suffix(keys.tenant(_PROBE))


async def tenant_keys(redis: Redis, *, data_only: bool) -> dict[str, set[str]]:
    """Every per-tenant key in the store as {tenant: names after the tag}, in one SCAN
    pass (a SCAN per tenant would read the whole keyspace once per tenant). On a cluster
    redis-py's RedisCluster.scan_iter walks every primary. `data_only`: without the kinds
    a backup leaves out. Holds the names in memory (about 100 bytes each)."""
    found: dict[str, set[str]] = {}
    async for raw_key in _scan(redis):
        split = split_name(raw_key.decode(errors="replace"))
        if split is None:
            continue
        tenant, name = split
        if data_only and not is_data(name):
            continue
        found.setdefault(tenant, set()).add(name)
    return found


async def _scan(redis: Redis) -> AsyncIterator[bytes]:
    # a key moved between primaries during the SCAN (resharding) may be seen twice or not
    # at all: the read script is given the names every tenant has anyway (fixed_names), and
    # a missed service or app is caught by the snapshot's own check (snapshot.py)
    async for raw_key in redis.scan_iter(match=TAG_PATTERN, count=1000):
        yield raw_key
