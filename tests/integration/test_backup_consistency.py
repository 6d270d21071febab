"""A backup taken while the service writes holds each tenant as it was at one instant."""

from __future__ import annotations

import asyncio

import pytest

from rotator.domain.clock import system_clock, utc_day
from rotator.store import keys, services, tenants
from rotator.store.backup import dump, load, selection, snapshot
from rotator.store.connection import Durability
from tests.integration.backup_support import seed_tenants

pytestmark = pytest.mark.backends("single", "cluster")

State = frozenset[tuple[str, tuple[str, ...]]]
"""A tenant's services, each with its keys' labels in rotation order."""


async def state_of(redis, tenant: str) -> State:
    found = []
    for service in await services.list_services(redis, tenant):
        labels = tuple(k.label for k in await services.list_keys(redis, tenant, service.slug))
        found.append((service.slug, labels))
    # a torn read would show as a member of the set whose hash is missing (or the reverse)
    members = {m.decode() for m in await redis.smembers(keys.services(tenant))}
    assert members == {slug for slug, _ in found}, (members, found)
    return frozenset(found)


async def test_each_tenant_is_restored_in_a_state_that_existed(redis, settings, tmp_path):
    ring, d = settings.keyring, Durability()
    fillers = await seed_tenants(redis, ring, 12, now_ms=system_clock())
    churned = (await tenants.create_tenant(redis, d, name="churn", demo=False,
                                           now_ms=system_clock())).id  # fmt: skip
    model: dict[str, list[str]] = {}
    states: set[State] = {frozenset()}
    stop = asyncio.Event()

    def seen() -> None:
        states.add(frozenset((slug, tuple(labels)) for slug, labels in model.items()))

    async def churn() -> None:
        """Services created, filled, emptied and deleted in a loop: each step is one
        script, and the model records the state after it."""
        n = 0
        while not stop.is_set():
            slug = f"s{n}"
            await services.create_service(redis, d, churned, slug=slug, policy="usage",
                                          now_ms=system_clock())  # fmt: skip
            model[slug] = []
            seen()
            for k in range(2):
                label = f"{slug}-{k}"
                secret = f"sk-{label}-0123456789"
                await services.add_key(
                    redis, d, ring, churned, slug, label=label, secret=secret, now_ms=system_clock()
                )
                model[slug].append(label)
                seen()
            if n >= 1:
                first = (await services.list_keys(redis, churned, f"s{n - 1}"))[0]
                await services.remove_key(
                    redis,
                    d,
                    churned,
                    f"s{n - 1}",
                    first.id,
                    now_ms=system_clock(),
                    events_maxlen=1000,
                )
                model[f"s{n - 1}"].pop(0)
                seen()
            if n >= 2:
                await services.delete_service(
                    redis, d, churned, f"s{n - 2}", today=0, retention_days=1
                )
                del model[f"s{n - 2}"]
                seen()
            n += 1

    writer = asyncio.create_task(churn())
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"during-{i}.backup")
        await dump.write_backup(redis, ring, paths[-1], clock=system_clock)
    stop.set()
    await writer
    assert len(states) > 10, "the writer ran during the backups"

    restored = []
    for path in paths:
        await redis.flushall()
        checked = load.check_file(path, ring)
        await load.restore(redis, d, ring, checked, clock=system_clock)
        state = await state_of(redis, churned)
        assert state in states, state
        restored.append(state)
        for tenant in fillers:
            assert await state_of(redis, tenant) == {("openai", ("k0", "k1")), ("clock", ())}
    assert any(restored), "some backup caught the tenant with services"


async def test_a_service_created_after_the_listing_is_read_too(redis, settings):
    """The names come from a listing made before the read; a service (or app) created in
    between is found in the snapshot's own sets, and the tenant is read again with it."""
    ring, d = settings.keyring, Durability()
    (tenant,) = await seed_tenants(redis, ring, 1, now_ms=system_clock())
    listed = (await selection.tenant_keys(redis, data_only=True))[tenant]
    await services.create_service(redis, d, tenant, slug="later", policy="manual",
                                  now_ms=system_clock())  # fmt: skip

    record, reads_again = await snapshot.read_tenant(
        redis, tenant, listed, today=utc_day(system_clock())
    )

    assert reads_again == 1
    assert record is not None
    assert selection.service_name(tenant, "later") in {k.name for k in record.keys}
