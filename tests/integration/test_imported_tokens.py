"""Imported client and app tokens (#17 item 1): chosen by the tenant, stored only hashed, found
through the index (kr:tok:<hash>) with one round trip on the usual path."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from rotator.api.app import create_app
from rotator.domain import tokens
from rotator.store import keys
from rotator.store.scripts.call import Plain, run
from rotator.store.scripts.token_index import claim as token_claim
from rotator.store.scripts.token_index import lookup as token_lookup
from rotator.tuning import (
    IMPORT_CLAIM_PENDING_MS,
    IMPORTED_CACHE_TTL_MS,
    IMPORTED_UNKNOWN_TTL_MS,
)
from tests.asgi import app_client
from tests.integration.backup_support import cli_env
from tests.integration.cli_support import rotator
from tests.integration.management import (
    OPERATOR,
    Tenant,
    deliver,
    new_app,
    new_key,
    new_service,
    new_tenant,
)

pytestmark = pytest.mark.backends("single", "cluster")

HOSTED = "52yseGC525k55YpyHUeAdoYrb77WYJ037sPHhQ"  # the hosted guide's demo token's form
OTHER = "Zq-9_hosted-app-token-0123456789"


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


async def indexed(redis, token_hash: str) -> str | None:
    """Whose the index says an imported token is, as the delivery's lookup reads it."""
    return await run(Plain(redis), token_lookup(token_hash))


async def imported_tenant(client, token: str = HOSTED, name: str = "acme") -> Tenant:
    body = {"name": name, "client_token": token}
    r = await client.post("/v1/admin/tenants", json=body, headers=OPERATOR)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["client_token"] == token
    return Tenant(created["id"], created["admin_token"], token)


async def ready(client, t: Tenant) -> None:
    await new_service(client, t)
    await new_key(client, t)


async def app_deliver(client, token: str):
    return await client.get("/v1/next", params={"service": "openai", "app_token": token})


async def create(client, **body):
    return await client.post("/v1/admin/tenants", json={"name": "a", **body}, headers=OPERATOR)


def refused(r) -> bool:
    return (r.status_code, r.json()) == (403, {"error": "invalid token"})


async def test_an_imported_client_token_delivers_by_query_and_bearer(client, redis):
    t = await imported_tenant(client)
    await ready(client, t)
    r = await deliver(client, HOSTED)
    assert r.status_code == 200, r.text
    r = await client.get(
        "/v1/next", params={"service": "openai"}, headers={"Authorization": f"Bearer {HOSTED}"}
    )
    assert r.status_code == 200, r.text
    # the hosted service's path too, as the guide writes it
    r = await client.get(
        "/keyrotator/api/next.php", params={"service": "openai", "token": HOSTED, "mask": "1"}
    )
    assert (r.status_code, r.json()["masked"]) == (200, True)
    # stored only hashed: the whole token's SHA-256, indexed to its tenant
    tenant = await redis.hgetall(keys.tenant(t.id))
    assert tenant[b"client"] == sha(HOSTED).encode() and tenant[b"client_imported"] == b"1"
    assert await indexed(redis, sha(HOSTED)) == t.id
    assert HOSTED not in str(await client.get(f"/v1/admin/tenants/{t.id}", headers=OPERATOR))


async def test_an_imported_app_token_delivers(client, redis):
    t = await new_tenant(client)
    await ready(client, t)
    app = await new_app(client, t, app_token=OTHER, max_daily_requests=5)
    assert app["app_token"] == OTHER
    r = await client.get("/v1/next", params={"service": "openai", "app_token": OTHER})
    assert r.status_code == 200, r.text
    assert r.json()["limits"]["app_max_daily_requests"] == 5  # the app's, so found as the app
    r = await client.get(
        "/v1/next", params={"service": "openai"}, headers={"Authorization": f"Bearer {OTHER}"}
    )
    assert r.status_code == 200
    assert await indexed(redis, sha(OTHER)) == f"{t.id}:{app['id']}"


async def test_reissue_revokes_an_imported_token_on_the_next_request(client, redis):
    t = await imported_tenant(client)
    await ready(client, t)
    assert (await deliver(client, HOSTED)).status_code == 200  # the owner is cached now
    r = await client.post("/v1/tenant/client-token", headers=t.auth)
    assert r.status_code == 200
    ours = r.json()["client_token"]
    assert tokens.parse(ours) is not None  # one of ours replaces the imported one
    assert refused(await deliver(client, HOSTED))
    assert (await deliver(client, ours)).status_code == 200
    assert not await redis.exists(keys.token_index(sha(HOSTED)))
    assert (await redis.hget(keys.tenant(t.id), "client_imported")) == b""

    # and back: a chosen value replaces ours; reissuing it again keeps working
    r = await client.post("/v1/tenant/client-token", json={"client_token": HOSTED}, headers=t.auth)
    assert (r.status_code, r.json()) == (200, {"client_token": HOSTED})
    assert refused(await deliver(client, ours))
    assert (await deliver(client, HOSTED)).status_code == 200
    r = await client.post("/v1/tenant/client-token", json={"client_token": OTHER}, headers=t.auth)
    assert r.status_code == 200
    assert refused(await deliver(client, HOSTED))
    assert (await deliver(client, OTHER)).status_code == 200
    assert not await redis.exists(keys.token_index(sha(HOSTED)))


async def test_app_reissue_and_deletion_revoke_and_unindex(client, redis):
    t = await new_tenant(client)
    await ready(client, t)
    app = await new_app(client, t, app_token=OTHER)
    assert (await app_deliver(client, OTHER)).status_code == 200
    r = await client.post(f"/v1/apps/{app['id']}/token", headers=t.auth)
    assert r.status_code == 200
    ours = r.json()["app_token"]
    assert refused(await app_deliver(client, OTHER))
    assert not await redis.exists(keys.token_index(sha(OTHER)))
    r = await client.post(f"/v1/apps/{app['id']}/token", json={"app_token": OTHER}, headers=t.auth)
    assert (r.status_code, r.json()) == (200, {"app_token": OTHER})
    assert refused(await app_deliver(client, ours))
    assert (await app_deliver(client, OTHER)).status_code == 200

    assert (await client.delete(f"/v1/apps/{app['id']}", headers=t.auth)).status_code == 204
    assert refused(await app_deliver(client, OTHER))
    assert not await redis.exists(keys.token_index(sha(OTHER)))
    # given up, it may be imported by another tenant
    await imported_tenant(client, OTHER, name="second")


async def test_suspension_refuses_and_resuming_restores(client):
    t = await imported_tenant(client)
    await ready(client, t)
    app = await new_app(client, t, app_token=OTHER)
    path = f"/v1/admin/tenants/{t.id}"
    assert (await client.patch(path, json={"suspended": True}, headers=OPERATOR)).status_code == 200
    assert refused(await deliver(client, HOSTED))
    assert refused(await app_deliver(client, OTHER))
    # still the tenant's while suspended: nobody else may take it
    r = await create(client, client_token=HOSTED)
    assert r.status_code == 409
    r = await client.patch(path, json={"suspended": False}, headers=OPERATOR)
    assert r.status_code == 200
    assert (await deliver(client, HOSTED)).status_code == 200
    r = await client.patch(f"/v1/apps/{app['id']}", json={"suspended": True}, headers=t.auth)
    assert r.status_code == 200
    assert refused(await app_deliver(client, OTHER))


async def test_tenant_deletion_unindexes_its_tokens(client, redis, clock):
    t = await imported_tenant(client)
    await ready(client, t)
    await new_app(client, t, app_token=OTHER)
    r = await client.delete(f"/v1/admin/tenants/{t.id}?confirm={t.id}", headers=OPERATOR)
    assert r.status_code in (200, 202), r.text
    assert refused(await deliver(client, HOSTED))
    assert not await redis.exists(keys.token_index(sha(HOSTED)))
    assert not await redis.exists(keys.token_index(sha(OTHER)))
    t2 = await imported_tenant(client, HOSTED, name="again")
    await ready(client, t2)
    clock.advance(ms=IMPORTED_CACHE_TTL_MS)  # a process that had it cached asks again
    assert (await deliver(client, HOSTED)).status_code == 200


BAD = [
    ("x" * 19, "20 to 200"),
    ("x" * 201, "20 to 200"),
    ("has space in the token 01", "URL-safe"),
    ("dots.are.not.url.safe.0123", "URL-safe"),
    ("krc_abcdef0123_secretsecretsecret", "form of a token"),
    ("kra_abcdef0123_7_secretsecretsecret", "form of a token"),
]


@pytest.mark.parametrize(("value", "why"), BAD)
async def test_bad_values_are_refused_naming_the_field(client, value, why):
    r = await create(client, client_token=value)
    assert r.status_code == 400 and "client_token" in r.json()["error"] and why in r.json()["error"]
    t = await new_tenant(client)
    r = await client.post("/v1/tenant/client-token", json={"client_token": value}, headers=t.auth)
    assert r.status_code == 400 and "client_token" in r.json()["error"] and why in r.json()["error"]
    r = await client.post("/v1/apps", json={"name": "a", "app_token": value}, headers=t.auth)
    assert r.status_code == 400 and "app_token" in r.json()["error"] and why in r.json()["error"]
    app = await new_app(client, t)
    r = await client.post(f"/v1/apps/{app['id']}/token", json={"app_token": value}, headers=t.auth)
    assert r.status_code == 400 and "app_token" in r.json()["error"] and why in r.json()["error"]
    # nothing changed: the tenant's own token still works
    assert (await client.get("/v1/tenant", headers=t.auth)).status_code == 200


async def test_a_token_in_use_is_409_on_every_route(client):
    holder = await imported_tenant(client)
    await new_app(client, holder, app_token=OTHER)
    t = await new_tenant(client, name="other")
    app = await new_app(client, t)
    for value, field in ((HOSTED, "client_token"), (OTHER, "client_token")):
        taken = {"error": f"{field} is already in use", "field": field}
        r = await create(client, **{field: value})
        assert (r.status_code, r.json()) == (409, taken)
        r = await client.post("/v1/tenant/client-token", json={field: value}, headers=t.auth)
        assert (r.status_code, r.json()) == (409, taken)
    taken = {"error": "app_token is already in use", "field": "app_token"}
    for value in (HOSTED, OTHER):
        r = await client.post("/v1/apps", json={"name": "a", "app_token": value}, headers=t.auth)
        assert (r.status_code, r.json()) == (409, taken)
        r = await client.post(
            f"/v1/apps/{app['id']}/token", json={"app_token": value}, headers=t.auth
        )
        assert (r.status_code, r.json()) == (409, taken)
    # the holder re-importing its own token is no conflict
    r = await client.post(
        "/v1/tenant/client-token", json={"client_token": HOSTED}, headers=holder.auth
    )
    assert r.status_code == 200


async def test_a_stale_index_entry_neither_blocks_nor_admits(client, redis):
    # a crash between the index write and the tenant's write leaves an entry the tenant
    # does not back: refused at delivery, taken over by the next import
    await redis.set(keys.token_index(sha(HOSTED)), "0123456789abcdef")
    assert refused(await deliver(client, HOSTED))
    t = await imported_tenant(client)
    await ready(client, t)
    assert await indexed(redis, sha(HOSTED)) == t.id


async def test_unknown_tokens_are_cached_briefly(settings, redis, clock):
    app = create_app(settings, clock=clock)
    async with app_client(app) as client:
        t = await new_tenant(client)
        await ready(client, t)
        resolver = app.state.rotator.tokens
        unknown = "unknown-token-0123456789abcdef"
        assert refused(await deliver(client, unknown))
        assert resolver.lookups == 1
        for _ in range(3):
            assert refused(await deliver(client, unknown))
        assert resolver.lookups == 1  # no round trip within the negative-cache time
        clock.advance(ms=IMPORTED_UNKNOWN_TTL_MS + 1)
        assert refused(await deliver(client, unknown))
        assert resolver.lookups == 2
        # malformed (too short, bad characters) costs no lookup at all
        assert refused(await deliver(client, "short"))
        assert refused(await deliver(client, "not url safe but long enough"))
        assert resolver.lookups == 2
        # a known token: one lookup, then served from the cache
        r = await client.post(
            "/v1/tenant/client-token", json={"client_token": HOSTED}, headers=t.auth
        )
        assert r.status_code == 200
        for _ in range(3):
            assert (await deliver(client, HOSTED)).status_code == 200
        assert resolver.lookups == 3
        # revoked with a warm cache: refused at once (the script compares the hash)
        assert (await client.post("/v1/tenant/client-token", headers=t.auth)).status_code == 200
        assert refused(await deliver(client, HOSTED))


async def test_restore_into_an_empty_store_accepts_the_imported_tokens(
    client, redis, clock, settings, master_key_b64, tmp_path
):
    t = await imported_tenant(client)
    await ready(client, t)
    app = await new_app(client, t, app_token=OTHER)
    suspended = await imported_tenant(client, "suspended-tenant-token-0123456789", name="held")
    r = await client.patch(
        f"/v1/admin/tenants/{suspended.id}", json={"suspended": True}, headers=OPERATOR
    )
    assert r.status_code == 200
    env = cli_env(settings, master_key_b64)
    path = tmp_path / "kr.backup"
    assert (made := rotator("backup", str(path), env=env)).returncode == 0, made.stderr
    assert HOSTED not in path.read_text() and OTHER not in path.read_text()

    await redis.flushall()
    restored = rotator("restore", str(path), env=env)
    assert restored.returncode == 0, restored.stderr
    assert await indexed(redis, sha(HOSTED)) == t.id
    assert await indexed(redis, sha(OTHER)) == f"{t.id}:{app['id']}"
    # a suspended tenant's token is still its own (held until it is resumed)
    assert await indexed(redis, sha("suspended-tenant-token-0123456789")) == suspended.id
    clock.advance(ms=IMPORTED_CACHE_TTL_MS)  # this API process asks the index again
    assert (await deliver(client, HOSTED)).status_code == 200
    assert (await app_deliver(client, OTHER)).status_code == 200


async def test_concurrent_imports_of_one_token_leave_one_holder(client, redis):
    # each import claims the index, then writes its hash: a second import reading the
    # first one's claim before its hash is written must not take the token over
    answers = await asyncio.gather(
        *(create(client, name=f"t{i}", client_token=HOSTED) for i in range(8))
    )
    created = [r.json()["id"] for r in answers if r.status_code == 201]
    assert len(created) == 1, [(r.status_code, r.text) for r in answers]
    assert {r.status_code for r in answers} == {201, 409}
    assert await indexed(redis, sha(HOSTED)) == created[0]


async def claim_by_another(redis, age_ms: int | None = None) -> int:
    """Another import's claim, its hash not written yet (or it crashed there), made `age_ms`
    ago by the entry node's clock (None: now); returns that node's ms now."""
    (_, _, entry) = await run(
        Plain(redis),
        token_claim(sha(HOSTED), "0123456789abcdef", pending_ms=IMPORT_CLAIM_PENDING_MS),
    )
    now = int(entry.split(" ")[1])
    if age_ms is not None:
        await redis.delete(keys.token_index(sha(HOSTED)))
        await run(
            Plain(redis),
            token_claim(
                sha(HOSTED),
                "0123456789abcdef",
                pending_ms=IMPORT_CLAIM_PENDING_MS,
                now_ms=now - age_ms,
            ),
        )
    return now


async def test_an_import_between_its_two_writes_keeps_the_token_until_it_is_stale(
    client, redis, clock
):
    # its owner does not hold the token, but taking the entry over would let both hold it;
    # the store's clock judges, not the API's (a day ahead here changes nothing)
    clock.advance(ms=86_400_000)
    await claim_by_another(redis, age_ms=IMPORT_CLAIM_PENDING_MS - 5_000)
    r = await create(client, client_token=HOSTED)
    assert (r.status_code, r.json()["error"]) == (409, "client_token is already in use")
    t = await new_tenant(client, name="other")
    r = await client.post("/v1/tenant/client-token", json={"client_token": HOSTED}, headers=t.auth)
    assert r.status_code == 409
    assert await indexed(redis, sha(HOSTED)) == "0123456789abcdef"
    # that long after its claim, an owner without the token is stale
    await claim_by_another(redis, age_ms=IMPORT_CLAIM_PENDING_MS + 5_000)
    t = await imported_tenant(client, name="late")
    await ready(client, t)
    assert await indexed(redis, sha(HOSTED)) == t.id
    assert await redis.get(keys.token_index(sha(HOSTED))) == t.id.encode()  # confirmed


async def test_a_reissue_leaves_a_re_import_in_progress_indexed(client, redis):
    # the tenant re-imports its token while a reissue of its own gives it up: the reissue's
    # release must not remove the claim the re-import is about to write its hash under
    t = await imported_tenant(client)
    await ready(client, t)
    await run(Plain(redis), token_claim(sha(HOSTED), t.id, pending_ms=IMPORT_CLAIM_PENDING_MS))
    r = await client.post("/v1/tenant/client-token", json={}, headers=t.auth)
    assert r.status_code == 200
    assert await indexed(redis, sha(HOSTED)) == t.id


async def test_a_re_import_racing_a_reissue_keeps_its_token_indexed(client, redis):
    # the reissue writes one of our tokens; the tenant's re-import of its old token then
    # claims, writes and confirms; the reissue's release comes last and removes the entry
    # of a token the tenant holds again: it must put it back
    from rotator.store import tenants
    from rotator.store.connection import Durability

    t = await imported_tenant(client)
    await ready(client, t)

    class ReImportAfterFirstWrite(Durability):
        writes = 0

        async def execute(self, pipe):
            result = await super().execute(pipe)
            self.writes += 1
            if self.writes == 1:
                await tenants.issue_client_token(redis, Durability(), t.id, HOSTED)
            return result

    await tenants.issue_client_token(redis, ReImportAfterFirstWrite(), t.id)
    assert await indexed(redis, sha(HOSTED)) == t.id
    assert (await deliver(client, HOSTED)).status_code == 200


async def two_tenants_with_keys(client) -> tuple[Tenant, Tenant]:
    a = await imported_tenant(client, name="a")
    await new_service(client, a)
    await new_key(client, a, secret="sk-A-secret-0123456789")
    b = await new_tenant(client, name="b")
    await new_service(client, b)
    await new_key(client, b, secret="sk-B-secret-0123456789")
    return a, b


async def holding(redis, *tenant_ids: str) -> list[str]:
    """Which of the tenants accept HOSTED as their client token."""
    from rotator.store import token_index

    return [
        t for t in tenant_ids
        if await token_index._still_holds(redis, token_index.client_owner(t), sha(HOSTED))
    ]  # fmt: skip


async def test_a_stale_owner_re_importing_during_a_takeover_keeps_its_token(client, redis):
    # A gives HOSTED up; B reads A's entry, finds A not holding it (stale) and is about to
    # claim it; A imports HOSTED again meanwhile (claim, write, confirm: "A" as before). B's
    # claim then matches the entry it read, but A holds the token: B must not get it
    from rotator.domain.errors import FieldConflict
    from rotator.store import tenants
    from rotator.store.connection import Durability

    a, b = await two_tenants_with_keys(client)

    class AReImportsBeforeBsClaim(Durability):
        fired = False

        async def execute(self, pipe):
            if not self.fired:
                self.fired = True
                await tenants.issue_client_token(redis, Durability(), a.id, HOSTED)
            return await super().execute(pipe)

    await tenants.issue_client_token(redis, Durability(), a.id)  # gives HOSTED up
    await redis.set(keys.token_index(sha(HOSTED)), a.id)  # as a crash before its release
    with pytest.raises(FieldConflict):
        await tenants.issue_client_token(redis, AReImportsBeforeBsClaim(), b.id, HOSTED)
    assert await holding(redis, a.id, b.id) == [a.id]
    assert await indexed(redis, sha(HOSTED)) == a.id
    r = await deliver(client, HOSTED)
    assert r.json()["key"] == "sk-A-secret-0123456789"


async def test_no_import_takes_a_token_while_a_release_checks_it(client, redis):
    # a reissue's release marks A's entry before it checks whether A holds the token again
    # (A re-imported it after the reissue's write): B's import then meets a claim, not a gap
    from rotator.domain.errors import FieldConflict
    from rotator.store import tenants
    from rotator.store.connection import Durability

    a, b = await two_tenants_with_keys(client)
    refused = []

    class Interleaved(Durability):
        writes = 0

        async def execute(self, pipe):
            result = await super().execute(pipe)
            self.writes += 1
            if self.writes == 1:  # the reissue's write: A re-imports its token
                await tenants.issue_client_token(redis, Durability(), a.id, HOSTED)
            elif self.writes == 2:  # the release's first step: B imports the value
                try:
                    await tenants.issue_client_token(redis, Durability(), b.id, HOSTED)
                except FieldConflict:
                    refused.append(b.id)
            return result

    await tenants.issue_client_token(redis, Interleaved(), a.id)
    assert refused == [b.id]
    assert await holding(redis, a.id, b.id) == [a.id]
    assert await redis.get(keys.token_index(sha(HOSTED))) == a.id.encode()  # confirmed
