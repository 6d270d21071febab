"""Management store functions on a real Valkey: the fields they write are the key schema.

The delivery script reads these fields (store/keys.py), so the tests look at the raw
hashes as well as at what the functions return.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from rotator.crypto import KeyRing, aad_for_key, aad_for_webhook_secret
from rotator.domain import iprange, tokens
from rotator.domain.errors import Conflict, InvalidField, NotFound
from rotator.domain.models import DEFAULT_EVENTS, NewKey
from rotator.store import apps, keys, services, tenants
from rotator.store.connection import Durability
from rotator.store.scripts import tenants as tenant_scripts
from rotator.store.scripts.call import Plain, run
from tests.conftest import T0_MS

pytestmark = pytest.mark.backends("single", "cluster")


@pytest.fixture
def durability() -> Durability:
    return Durability()


async def new_tenant(redis, durability, name="acme", demo=False) -> tenants.NewTenant:
    return await tenants.create_tenant(redis, durability, name=name, demo=demo, now_ms=T0_MS)


async def test_create_tenant_stores_only_token_hashes(redis, durability):
    created = await new_tenant(redis, durability, demo=True)
    tid = created.id
    admin, client = tokens.parse(created.admin_token), tokens.parse(created.client_token)
    assert admin and admin.kind == tokens.ADMIN and admin.tenant == tid
    assert client and client.kind == tokens.CLIENT and client.tenant == tid
    stored = await redis.hgetall(keys.tenant(tid))
    assert stored[b"admin"].decode() == admin.secret_hash
    assert stored[b"client"].decode() == client.secret_hash
    assert stored[b"demo"] == b"1" and stored[b"name"] == b"acme"
    assert stored[b"events"] == b"" and stored[b"allow"] == b""
    assert await redis.sismember(keys.TENANTS, tid)
    assert created.admin_token.encode() not in b"".join(stored.values())
    assert await tenants.admin_token_hash(redis, tid) == admin.secret_hash


async def test_list_tenants_reads_each_registered_tenant(redis, durability):
    a = await new_tenant(redis, durability, name="a")
    b = await new_tenant(redis, durability, name="b")
    listed = await tenants.list_tenants(redis)
    assert {(t.id, t.name) for t in listed} == {(a.id, "a"), (b.id, "b")}


async def test_tenant_name_is_checked(redis, durability):
    with pytest.raises(InvalidField) as err:
        await new_tenant(redis, durability, name="  ")
    assert err.value.field == "name"


async def test_issue_client_token_replaces_the_hash(redis, durability):
    created = await new_tenant(redis, durability)
    tid = created.id
    fresh = (await tenants.issue_client_token(redis, durability, tid)).client_token
    stored = (await redis.hget(keys.tenant(tid), "client")).decode()
    assert stored == tokens.parse(fresh).secret_hash
    assert stored != tokens.parse(created.client_token).secret_hash
    with pytest.raises(NotFound):
        await tenants.issue_client_token(redis, durability, "nosuchtenant")


COPIED = keys.COPIED_TENANT_FIELDS


async def copies(redis, tid: str, slug: str) -> list[bytes | None]:
    return await redis.hmget(keys.service(tid, slug), ["@" + f for f in COPIED])


async def test_tenant_update_writes_nothing_for_a_stale_list_of_services(redis, durability):
    """tenant_update.lua names the service hashes it copies into; a list that no longer
    matches the tenant's services (one created or deleted since it was read) writes nothing."""
    tid = (await new_tenant(redis, durability)).id
    for slug in ("a", "b"):
        await services.create_service(
            redis, durability, tid, slug=slug, policy="usage", now_ms=T0_MS
        )

    async def update(slugs: list[str]) -> int:
        return await run(Plain(redis), tenant_scripts.tenant_update(tid, slugs, {"allow": "ff"}))

    assert await update(["a"]) == 0
    assert await update(["a", "b", "c"]) == 0
    assert await redis.hget(keys.tenant(tid), "allow") == b""
    assert [await redis.hget(keys.service(tid, s), "@allow") for s in "ab"] == [b"", b""]
    assert await update(["b", "a"]) == 1
    assert [await redis.hget(keys.service(tid, s), "@allow") for s in "ab"] == [b"ff", b"ff"]


async def test_a_service_created_during_a_tenant_update_gets_the_new_fields(
    redis, durability, monkeypatch
):
    tid = (await new_tenant(redis, durability)).id
    await services.create_service(redis, durability, tid, slug="a", policy="usage", now_ms=T0_MS)
    read_services = redis.smembers
    reads = 0

    async def racing_read(name):
        nonlocal reads
        reads += 1
        members = await read_services(name)
        if reads == 1:  # a service appears between the read and the write
            await services.create_service(
                redis, durability, tid, slug="late", policy="usage", now_ms=T0_MS
            )
        return members

    monkeypatch.setattr(redis, "smembers", racing_read)
    token = (await tenants.issue_client_token(redis, durability, tid)).client_token
    assert reads == 2
    fresh = tokens.parse(token).secret_hash.encode()
    tenant = await redis.hmget(keys.tenant(tid), list(COPIED))
    assert tenant[0] == fresh
    assert await copies(redis, tid, "a") == await copies(redis, tid, "late") == tenant


async def test_any_tenant_write_gives_a_service_without_copies_all_four(redis, durability):
    """A service hash stored before services held copies gets all four on the next write of
    any tenant field: a partial copy would skip the fallback to the tenant hash."""
    tid = (await new_tenant(redis, durability)).id
    await services.create_service(redis, durability, tid, slug="a", policy="usage", now_ms=T0_MS)
    await redis.hdel(keys.service(tid, "a"), *("@" + f for f in COPIED))
    await tenants.issue_client_token(redis, durability, tid)  # writes `client` only
    tenant = await redis.hmget(keys.tenant(tid), list(COPIED))
    assert await copies(redis, tid, "a") == tenant and None not in tenant


async def test_every_delivery_field_of_the_tenant_is_copied_into_its_services(
    redis, durability, settings
):
    tid = (await new_tenant(redis, durability)).id
    await services.create_service(redis, durability, tid, slug="a", policy="usage", now_ms=T0_MS)
    await tenants.update_tenant(
        redis, durability, settings.keyring, tid,
        ip_allowlist=["10.0.0.0/8"], webhook_url="http://127.0.0.1:9/h", webhook_allow_private=True,
    )  # fmt: skip
    await tenants.issue_client_token(redis, durability, tid)
    await services.create_service(redis, durability, tid, slug="b", policy="usage", now_ms=T0_MS)
    tenant = await redis.hmget(keys.tenant(tid), list(COPIED))
    assert tenant[2] and tenant[3]  # an allowlist and the default events are set
    assert await copies(redis, tid, "a") == await copies(redis, tid, "b") == tenant


async def test_webhook_settings_fields(redis, durability, settings):
    tid = (await new_tenant(redis, durability)).id
    ring = settings.keyring
    update = await tenants.update_tenant(
        redis,
        durability,
        ring,
        tid,
        webhook_url="https://example.com/hook",
        webhook_allow_private=True,
    )
    secret = update.webhook_secret
    assert secret and secret.startswith("whsec_")
    assert update.webhook_events == list(DEFAULT_EVENTS)
    assert update.webhook_secret_set
    stored = await redis.hgetall(keys.tenant(tid))
    assert stored[b"events"].decode() == "," + ",".join(DEFAULT_EVENTS) + ","
    assert ring.open(stored[b"wh_secret"], aad_for_webhook_secret(tid)).decode() == secret
    assert await tenants.open_webhook_secret(redis, ring, tid) == secret
    assert await redis.sismember(keys.WEBHOOK_TENANTS, tid)

    # a second change never shows the secret again, and keeps the subscription
    again = await tenants.update_tenant(
        redis,
        durability,
        ring,
        tid,
        webhook_url="https://example.com/other",
        webhook_allow_private=True,
    )
    assert again.webhook_secret is None
    assert again.webhook_events == list(DEFAULT_EVENTS)

    chosen = await tenants.update_tenant(
        redis,
        durability,
        ring,
        tid,
        webhook_events=["key.delivered", "key.delivered"],
        webhook_allow_private=True,
    )
    assert chosen.webhook_events == ["key.delivered"]
    assert await redis.hget(keys.tenant(tid), "events") == b",key.delivered,"

    removed = await tenants.update_tenant(
        redis, durability, ring, tid, webhook_url=None, webhook_allow_private=True
    )
    assert removed.webhook_url is None and removed.webhook_events == []
    assert await redis.hget(keys.tenant(tid), "events") == b""
    assert not await redis.sismember(keys.WEBHOOK_TENANTS, tid)


async def test_concurrent_first_webhooks_show_only_the_secret_that_was_stored(
    redis, durability, settings
):
    tid = (await new_tenant(redis, durability)).id
    ring = settings.keyring
    updates = await asyncio.gather(*(
        tenants.update_tenant(
            redis, durability, ring, tid, webhook_url=f"https://e.com/{i}",
            webhook_allow_private=True,
        )
        for i in range(4)
    ))  # fmt: skip
    shown = [u.webhook_secret for u in updates if u.webhook_secret]
    assert shown == [await tenants.open_webhook_secret(redis, ring, tid)]


async def test_tenant_allowlist_is_packed_for_the_script(redis, durability, settings):
    tid = (await new_tenant(redis, durability)).id
    update = await tenants.update_tenant(
        redis,
        durability,
        settings.keyring,
        tid,
        ip_allowlist=["10.0.0.0/8", "2001:db8::1"],
        webhook_allow_private=True,
    )
    assert update.ip_allowlist == ["10.0.0.0/8", "2001:db8::1/128"]
    packed = (await redis.hget(keys.tenant(tid), "allow")).decode()
    assert iprange.allowed(packed, iprange.ip_hex("10.1.2.3"))
    assert not iprange.allowed(packed, iprange.ip_hex("11.0.0.1"))
    assert json.loads(await redis.hget(keys.tenant(tid), "allow_src")) == update.ip_allowlist


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"ip_allowlist": ["10.0.0.300/8"]}, "ip_allowlist"),
        ({"webhook_events": ["key.delivered"]}, "webhook_events"),  # no webhook_url
        ({"webhook_url": "https://e.com", "webhook_events": ["nope"]}, "webhook_events"),
        ({"webhook_secret": "abc"}, "webhook_secret"),
        ({"webhook_secret": "whsec_" + "A" * 8}, "webhook_secret"),  # 6 bytes: too short
        ({"name": ""}, "name"),
    ],
)
async def test_tenant_update_rejects(redis, durability, settings, changes, field):
    tid = (await new_tenant(redis, durability)).id
    before = await redis.hgetall(keys.tenant(tid))
    with pytest.raises(InvalidField) as err:
        await tenants.update_tenant(
            redis, durability, settings.keyring, tid, **changes, webhook_allow_private=True
        )
    assert err.value.field == field
    assert await redis.hgetall(keys.tenant(tid)) == before


async def test_service_create_writes_the_schema(redis, durability):
    tid = (await new_tenant(redis, durability)).id
    svc = await services.create_service(
        redis, durability, tid, slug="openai", policy="time", key_ttl_minutes=30, now_ms=T0_MS
    )
    assert svc.key_ttl_minutes == 30 and svc.keys == 0
    stored = await redis.hgetall(keys.service(tid, "openai"))
    client_hash = await redis.hget(keys.tenant(tid), "client")
    assert stored == {
        b"policy": b"time",
        b"max": b"",
        b"ttl_ms": b"1800000",
        b"created_ms": str(T0_MS).encode(),
        b"warn": b"80",
        b"ids": b"",
        b"rpm": b"",
        # the tenant's fields a delivery reads, copied (tenant_update.lua keeps them so)
        b"@client": client_hash,
        b"@demo": b"0",
        b"@allow": b"",
        b"@events": b"",
    }
    assert await redis.smembers(keys.services(tid)) == {b"openai"}
    assert await redis.sismember(keys.TIME_SERVICES, f"{tid}:openai")
    with pytest.raises(Conflict):
        await services.create_service(
            redis, durability, tid, slug="openai", policy="usage", now_ms=T0_MS
        )
    assert (await redis.hget(keys.service(tid, "openai"), "policy")) == b"time"


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"slug": "Bad", "policy": "usage"}, "slug"),
        ({"slug": "-x", "policy": "usage"}, "slug"),
        ({"slug": "a" * 65, "policy": "usage"}, "slug"),
        ({"slug": "ok", "policy": "random"}, "policy"),
        ({"slug": "ok", "policy": "time"}, "key_ttl_minutes"),
        ({"slug": "ok", "policy": "time", "key_ttl_minutes": 0}, "key_ttl_minutes"),
        ({"slug": "ok", "policy": "usage", "key_ttl_minutes": 5}, "key_ttl_minutes"),
        ({"slug": "ok", "policy": "usage", "max_daily_requests": 0}, "max_daily_requests"),
    ],
)
async def test_service_create_rejects(redis, durability, kw, field):
    tid = (await new_tenant(redis, durability)).id
    with pytest.raises(InvalidField) as err:
        await services.create_service(redis, durability, tid, now_ms=T0_MS, **kw)
    assert err.value.field == field
    assert await redis.scard(keys.services(tid)) == 0


async def test_policy_switch_resets_rotation_state(redis, durability, settings):
    tid = (await new_tenant(redis, durability)).id
    await services.create_service(
        redis, durability, tid, slug="s", policy="time", key_ttl_minutes=5, now_ms=T0_MS
    )
    k = await services.add_key(
        redis, durability, settings.keyring, tid, "s", label="a", secret="sk-1", now_ms=T0_MS
    )
    await redis.hset(
        keys.service(tid, "s"),
        mapping={"cur": k.id, f"t:{k.id}": T0_MS, f"x:{k.id}": T0_MS, "noact": 1},
    )

    with pytest.raises(InvalidField) as err:  # ttl only means something for time
        await services.update_service(
            redis, durability, tid, "s", policy="usage", key_ttl_minutes=5
        )
    assert err.value.field == "key_ttl_minutes"

    svc = await services.update_service(redis, durability, tid, "s", policy="usage")
    assert svc.policy == "usage" and svc.key_ttl_minutes is None
    stored = await redis.hgetall(keys.service(tid, "s"))
    # the time policy's state is gone (the manual primary is put aside only when leaving manual)
    assert not {b"cur", b"mcur", f"t:{k.id}".encode(), f"x:{k.id}".encode(), b"noact"} & set(stored)
    assert stored[b"ttl_ms"] == b""
    assert not await redis.sismember(keys.TIME_SERVICES, f"{tid}:s")

    with pytest.raises(InvalidField):  # entering time needs a ttl in the same request
        await services.update_service(redis, durability, tid, "s", policy="time")
    svc = await services.update_service(
        redis, durability, tid, "s", policy="time", key_ttl_minutes=7, max_daily_requests=9
    )
    assert (svc.policy, svc.key_ttl_minutes, svc.max_daily_requests) == ("time", 7, 9)
    assert await redis.sismember(keys.TIME_SERVICES, f"{tid}:s")


async def test_delete_service_removes_hash_and_memberships(redis, durability):
    tid = (await new_tenant(redis, durability)).id
    await services.create_service(
        redis, durability, tid, slug="s", policy="time", key_ttl_minutes=5, now_ms=T0_MS
    )
    await services.delete_service(redis, durability, tid, "s", today=0, retention_days=1)
    assert not await redis.exists(keys.service(tid, "s"))
    assert await redis.scard(keys.services(tid)) == 0
    assert await redis.scard(keys.TIME_SERVICES) == 0
    with pytest.raises(NotFound):
        await services.delete_service(redis, durability, tid, "s", today=0, retention_days=1)


async def test_keys_add_update_remove(redis, durability, settings):
    ring = settings.keyring
    tid = (await new_tenant(redis, durability)).id
    await services.create_service(redis, durability, tid, slug="s", policy="manual", now_ms=T0_MS)
    svc_key = keys.service(tid, "s")
    await redis.hset(svc_key, "noact", 1)
    added = [
        await services.add_key(
            redis,
            durability,
            ring,
            tid,
            "s",
            label=f"k{i}",
            secret=f"sk-secret-number-{i}-abcdefgh",
            now_ms=T0_MS + i,
        )
        for i in range(3)
    ]
    ids = [k.id for k in added]
    assert ids == sorted(ids) and len(set(ids)) == 3
    stored = await redis.hgetall(svc_key)
    assert stored[b"ids"].decode() == ",".join(map(str, ids))
    assert b"noact" not in stored  # a new active key ends the no-active-keys episode
    first = ids[0]
    assert stored[f"a:{first}".encode()] == b"1" and stored[f"m:{first}".encode()] == b""
    assert stored[f"k:{first}".encode()].decode() == added[0].key_masked
    assert "sk-secret-number-0" not in added[0].key_masked
    plain = ring.open(stored[f"c:{first}".encode()], aad_for_key(tid, "s", first))
    assert plain == b"sk-secret-number-0-abcdefgh"

    await redis.hset(svc_key, "noact", 1)
    off = await services.update_key(
        redis, durability, tid, "s", first, active=False, label="renamed", max_daily_requests=5,
        now_ms=T0_MS, events_maxlen=1000,
    )  # fmt: skip
    assert (off.active, off.label, off.max_daily_requests) == (False, "renamed", 5)
    assert await redis.hget(svc_key, "noact") == b"1"  # disabling does not end the episode
    await services.update_key(
        redis, durability, tid, "s", first, active=True, now_ms=T0_MS, events_maxlen=1000
    )
    assert await redis.hget(svc_key, "noact") is None

    await redis.hset(svc_key, "cur", ids[1])
    await services.remove_key(redis, durability, tid, "s", ids[1], now_ms=T0_MS, events_maxlen=1000)
    stored = await redis.hgetall(svc_key)
    assert stored[b"ids"].decode() == f"{ids[0]},{ids[2]}"
    assert not [f for f in stored if f.endswith(f":{ids[1]}".encode())]
    assert stored[b"cur"].decode() == str(ids[2])  # the successor becomes current
    listed = await services.list_keys(redis, tid, "s")
    assert [k.id for k in listed] == [ids[0], ids[2]] and listed[1].current

    with pytest.raises(NotFound):
        await services.remove_key(
            redis, durability, tid, "s", ids[1], now_ms=T0_MS, events_maxlen=1000
        )
    with pytest.raises(NotFound):
        await services.update_key(
            redis, durability, tid, "s", ids[1], label="x", now_ms=T0_MS, events_maxlen=1000
        )
    with pytest.raises(NotFound):
        await services.add_key(
            redis, durability, ring, tid, "nope", label="x", secret="y", now_ms=T0_MS
        )


async def test_removing_the_last_key_clears_cur(redis, durability, settings):
    tid = (await new_tenant(redis, durability)).id
    await services.create_service(redis, durability, tid, slug="s", policy="manual", now_ms=T0_MS)
    k = await services.add_key(
        redis, durability, settings.keyring, tid, "s", label="a", secret="sk-x", now_ms=T0_MS
    )
    await redis.hset(keys.service(tid, "s"), "cur", k.id)
    await services.remove_key(redis, durability, tid, "s", k.id, now_ms=T0_MS, events_maxlen=1000)
    stored = await redis.hgetall(keys.service(tid, "s"))
    assert stored[b"ids"] == b"" and b"cur" not in stored


async def test_concurrent_key_adds_lose_no_id(redis, durability, settings):
    tid = (await new_tenant(redis, durability)).id
    await services.create_service(redis, durability, tid, slug="s", policy="usage", now_ms=T0_MS)
    added = await asyncio.gather(
        *(
            services.add_key(
                redis,
                durability,
                settings.keyring,
                tid,
                "s",
                label=f"k{i}",
                secret=f"sk-concurrent-add-{i:04d}",  # masked apart: no duplicate check retries
                now_ms=T0_MS,
            )
            for i in range(40)
        )
    )
    ids = (await redis.hget(keys.service(tid, "s"), "ids")).decode().split(",")
    assert sorted(map(int, ids)) == sorted(k.id for k in added)
    assert len(set(ids)) == 40


async def test_apps_add_list_delete(redis, durability):
    tid = (await new_tenant(redis, durability)).id
    created = await apps.add_app(
        redis,
        durability,
        tid,
        name="web",
        ip_allowlist=["10.0.0.1"],
        max_daily_requests=100,
        now_ms=T0_MS,
    )
    parsed = tokens.parse(created.app_token)
    assert parsed and parsed.kind == tokens.APP and parsed.app == str(created.id)
    stored = await redis.hgetall(keys.app(tid, created.id))
    assert stored[b"token"].decode() == parsed.secret_hash
    assert stored[b"max"] == b"100" and stored[b"allow"].decode() == iprange.pack(
        iprange.parse_allowlist("x", ["10.0.0.1"])
    )
    assert [a.id for a in await apps.list_apps(redis, tid)] == [created.id]
    await apps.delete_app(redis, durability, tid, created.id)
    assert await apps.list_apps(redis, tid) == []
    assert not await redis.exists(keys.app(tid, created.id))
    with pytest.raises(NotFound):
        await apps.delete_app(redis, durability, tid, created.id)


async def test_app_ids_share_the_tenant_sequence_with_keys(redis, durability, settings):
    tid = (await new_tenant(redis, durability)).id
    await services.create_service(redis, durability, tid, slug="s", policy="usage", now_ms=T0_MS)
    k = await services.add_key(
        redis, durability, settings.keyring, tid, "s", label="a", secret="sk-x", now_ms=T0_MS
    )
    a = await apps.add_app(redis, durability, tid, name="web", now_ms=T0_MS)
    assert a.id == k.id + 1


async def test_adding_keys_decrypts_each_stored_key_alike_once(redis, durability, settings):
    """The duplicate check opens the stored keys that could match once per call, not once
    per new key: a bulk add of N alike keys to M costs M decryptions, not N x M."""
    opened: list[bytes] = []

    class Counting(KeyRing):
        def open(self, blob: bytes, aad: bytes) -> bytes:
            opened.append(aad)
            return super().open(blob, aad)

    ring = Counting(settings.keyring.keys)
    tid = (await new_tenant(redis, durability)).id
    await services.create_service(redis, durability, tid, slug="s", policy="usage", now_ms=T0_MS)

    def alike(tag: str) -> list[NewKey]:  # one length, one last four: masked alike
        return [NewKey(secret=f"sk-{tag}{i:04d}" + "x" * 30 + "TAIL") for i in range(40)]

    first = await services.add_keys(redis, durability, ring, tid, "s", alike("a"), now_ms=T0_MS)
    opened.clear()
    await services.add_keys(redis, durability, ring, tid, "s", alike("b"), now_ms=T0_MS)
    assert sorted(opened) == sorted(aad_for_key(tid, "s", k.id) for k in first.keys)
    held = rf"keys\[1\]\.secret: already in this service \(key {first.keys[0].id}\)"
    with pytest.raises(InvalidField, match=held):
        await services.add_keys(
            redis, durability, ring, tid, "s",
            [NewKey(secret="sk-new-0123456789abcdefTAIL"), *alike("a")[:3]], now_ms=T0_MS,
        )  # fmt: skip
