"""FastRedis on a three-node Valkey Cluster: slot routing, MOVED, ASK, NOSCRIPT per node."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis as sync_redis

from rotator.domain.errors import StoreUnavailable
from rotator.embedded import EmbeddedValkey
from rotator.store.fast.cluster import key_slot
from rotator.store.fastredis import FastRedis, ReplyError
from rotator.store.scripts import Script
from tests.cluster import CLUSTER_ARGS, ValkeyCluster, cluster_ports

SOURCE = b"return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}"
ECHO_INCR = Script("test", SOURCE, hashlib.sha1(SOURCE).hexdigest())


@pytest.fixture
def cluster(valkey_cluster: ValkeyCluster) -> ValkeyCluster:
    valkey_cluster.flush()
    return valkey_cluster


@pytest.fixture
async def fast(cluster: ValkeyCluster) -> AsyncIterator[FastRedis]:
    client = await FastRedis.connect(cluster.url, timeout_ms=2000, cluster=True)
    yield client
    await client.close()


@pytest.fixture
def slot_homes(cluster: ValkeyCluster) -> Iterator[dict[int, int]]:
    """Register slot -> owner before moving a slot; every slot goes back home afterwards."""
    homes: dict[int, int] = {}
    yield homes
    for slot, home in homes.items():
        if (now := cluster.owner(slot)) != home:
            cluster.migrate_slot(slot, now, home)


@pytest.fixture
def moved_slot(cluster: ValkeyCluster, slot_homes: dict[int, int]) -> tuple[str, int, int, int]:
    """A key, its slot, its owner and another node to move the slot to."""
    key = "{t:migrating}:counter"
    slot = key_slot(key)
    source = slot_homes[slot] = cluster.owner(slot)
    return key, slot, source, (source + 1) % len(cluster.nodes)


def errorstat(cluster: ValkeyCluster, node: int, prefix: str) -> int:
    stats = cluster.clients[node].info("errorstats")
    return int(stats.get(f"errorstat_{prefix}", {}).get("count", 0))


async def test_calls_for_many_slots_land_on_their_owners(
    fast: FastRedis, cluster: ValkeyCluster
) -> None:
    keys = [f"{{t:{tenant}}}:usage" for tenant in range(600)]
    moved_before = sum(errorstat(cluster, n, "MOVED") for n in range(3))  # the cluster is shared

    replies = await asyncio.gather(*(fast.evalsha(ECHO_INCR, [k], [i]) for i, k in enumerate(keys)))

    assert replies == [[k.encode(), str(i).encode(), 1] for i, k in enumerate(keys)]
    owners = {key: cluster.owner(key_slot(key)) for key in keys}
    assert set(owners.values()) == {0, 1, 2}
    for key, owner in owners.items():
        assert cluster.clients[owner].get(key) == b"1"
    # routed by the client's own slot map, not redirected
    assert sum(errorstat(cluster, n, "MOVED") for n in range(3)) == moved_before


async def test_key_slot_agrees_with_the_server(cluster: ValkeyCluster) -> None:
    keys = ["foo", "{user1000}.following", "a{}b", "x{{y}}z", "{t:é}:svc", "{a}{b}", "no}tag{"]
    server = cluster.clients[0]

    assert [key_slot(k) for k in keys] == [server.cluster("KEYSLOT", k) for k in keys]


async def test_moved_after_slot_migration_is_followed_once(
    fast: FastRedis, cluster: ValkeyCluster, moved_slot: tuple[str, int, int, int]
) -> None:
    key, slot, source, target = moved_slot
    assert (await fast.evalsha(ECHO_INCR, [key], ["a"]))[2] == 1
    cluster.migrate_slot(slot, source, target)
    moved_before = errorstat(cluster, source, "MOVED")

    counts = [(await fast.evalsha(ECHO_INCR, [key], [i]))[2] for i in range(20)]

    assert counts == list(range(2, 22))  # the key moved with its slot, nothing lost
    assert cluster.clients[target].get(key) == b"21"
    # the first call was redirected; the slot map learnt it for the others
    assert errorstat(cluster, source, "MOVED") == moved_before + 1


async def test_moved_alone_reroutes_the_slot_without_waiting_for_a_map_refresh(
    fast: FastRedis,
    cluster: ValkeyCluster,
    moved_slot: tuple[str, int, int, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key, slot, source, target = moved_slot
    monkeypatch.setattr(fast, "_schedule_refresh", lambda: None)
    cluster.migrate_slot(slot, source, target)
    moved_before = errorstat(cluster, source, "MOVED")

    counts = [(await fast.evalsha(ECHO_INCR, [key], [i]))[2] for i in range(5)]

    assert counts == [1, 2, 3, 4, 5]
    assert errorstat(cluster, source, "MOVED") == moved_before + 1


async def test_a_moved_reply_refreshes_the_whole_slot_map(
    fast: FastRedis, cluster: ValkeyCluster, slot_homes: dict[int, int]
) -> None:
    # two keys in different slots of the same node, both moved to another node
    first, second = (
        "{t:a0}:k",
        next(
            f"{{t:a{i}}}:k"
            for i in range(1, 1000)
            if cluster.owner(key_slot(f"{{t:a{i}}}:k")) == cluster.owner(key_slot("{t:a0}:k"))
            and key_slot(f"{{t:a{i}}}:k") != key_slot("{t:a0}:k")
        ),
    )
    source = cluster.owner(key_slot(first))
    target = (source + 1) % len(cluster.nodes)
    for key in (first, second):
        slot_homes[key_slot(key)] = source
        cluster.migrate_slot(key_slot(key), source, target)
    moved_before = errorstat(cluster, source, "MOVED")

    await fast.evalsha(ECHO_INCR, [first], ["x"])  # MOVED, then a refresh in the background
    while (refreshing := getattr(fast, "_refreshing", None)) is not None:
        await refreshing
    await fast.evalsha(ECHO_INCR, [second], ["x"])  # known from the refreshed map

    assert errorstat(cluster, source, "MOVED") == moved_before + 1


async def test_ask_during_migration_with_noscript_on_the_target(
    fast: FastRedis, cluster: ValkeyCluster, moved_slot: tuple[str, int, int, int]
) -> None:
    key, slot, source, target = moved_slot
    assert (await fast.evalsha(ECHO_INCR, [key], ["a"]))[2] == 1
    for client in cluster.clients:
        client.script_flush()
    cluster.begin_migration(slot, source, target)
    cluster.move_keys(slot, source, target)
    asks_before = errorstat(cluster, source, "ASK")

    # source: ASK (key gone); target: NOSCRIPT after ASKING; then ASKING + EVAL
    reply = await fast.evalsha(ECHO_INCR, [key], ["b"])

    assert reply == [key.encode(), b"b", 2]
    assert errorstat(cluster, source, "ASK") == asks_before + 1
    assert errorstat(cluster, target, "NOSCRIPT") >= 1
    cluster.finish_migration(slot, target)
    assert cluster.clients[target].get(key) == b"2"
    assert (await fast.evalsha(ECHO_INCR, [key], ["c"]))[2] == 3


async def test_noscript_on_every_node_is_recovered(fast: FastRedis, cluster: ValkeyCluster) -> None:
    keys = [f"{{t:{tenant}}}:n" for tenant in range(60)]
    await asyncio.gather(*(fast.evalsha(ECHO_INCR, [k], ["x"]) for k in keys))
    for client in cluster.clients:
        client.script_flush()

    replies = await asyncio.gather(*(fast.evalsha(ECHO_INCR, [k], ["y"]) for k in keys))

    assert [reply[2] for reply in replies] == [2] * len(keys)
    assert all(client.script_exists(ECHO_INCR.sha) == [True] for client in cluster.clients)


async def test_execute_goes_anywhere_and_follows_moved(
    fast: FastRedis, cluster: ValkeyCluster
) -> None:
    keys = [f"{{t:{tenant}}}:plain" for tenant in range(30)]

    assert await fast.execute("PING") == b"PONG"
    assert await asyncio.gather(*(fast.execute("SET", k, k) for k in keys)) == [b"OK"] * 30
    assert await asyncio.gather(*(fast.execute("GET", k) for k in keys)) == [
        k.encode() for k in keys
    ]
    with pytest.raises(ReplyError, match="not an integer"):
        await fast.execute("INCR", keys[0])
    assert await fast.execute("GET", keys[1]) == keys[1].encode()


async def test_cluster_mode_on_a_plain_server_is_a_configuration_error(
    valkey: EmbeddedValkey,
) -> None:
    with pytest.raises(ReplyError, match="cluster support disabled"):
        await FastRedis.connect(valkey.url, timeout_ms=2000, cluster=True)


async def test_a_restarted_cluster_node_is_reconnected(tmp_path: Path) -> None:
    node = EmbeddedValkey(
        tmp_path, port=cluster_ports(1)[0], appendonly=False, extra_args=CLUSTER_ARGS
    )
    node.start()
    admin = sync_redis.Redis(host=node.host, port=node.port)
    admin.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    await until_cluster_ok(admin)
    client = await FastRedis.connect(node.url, timeout_ms=1000, cluster=True)
    try:
        assert (await client.evalsha(ECHO_INCR, ["{t:1}:k"], ["a"]))[2] == 1
        node.kill()
        with pytest.raises(StoreUnavailable):
            await client.evalsha(ECHO_INCR, ["{t:1}:k"], ["b"])

        node.start()  # same port, same nodes.conf: the same node, serving the same slots
        await until_cluster_ok(admin)
        for _ in range(100):
            try:
                reply = await client.evalsha(ECHO_INCR, ["{t:1}:k"], ["c"])
                break
            except StoreUnavailable:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the cluster client never reconnected")
        assert reply == [b"{t:1}:k", b"c", 1]  # no AOF: a fresh dataset, the same client
    finally:
        await client.close()
        admin.close()
        node.stop()


async def until_cluster_ok(admin: sync_redis.Redis) -> None:
    """A fresh primary refuses writes for its first 2 s (CLUSTERDOWN) by design."""
    for _ in range(200):
        if b"cluster_state:ok" in admin.execute_command("CLUSTER", "INFO"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the one-node cluster never reached cluster_state:ok")
