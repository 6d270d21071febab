"""rediss:// end to end: one URL means one thing to every Redis client we build.

The clients: FastRedis (deliveries), redis-py through store.connection.connect
(management, workers' data, the CLI's commands), the CLI's reachability check
(sync redis-py) and arq's queue pool. Each is pointed at TLS servers from
tests/tls.py (a private CA; certificates for 127.0.0.1 + localhost, or for another
name) and must accept and refuse the same servers for the same reasons: the chain
AND the name are checked unless the URL opts out explicitly. On a cluster, peers
are reached at the addresses the cluster announces, and their certificates must
name those addresses, for both cluster clients.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from arq.connections import create_pool
from redis.crc import key_slot

from rotator.api.app import create_app
from rotator.cli.common import check_reachable
from rotator.crypto import KeyRing
from rotator.settings import Settings
from rotator.store import connection, keys
from rotator.store.fastredis import FastRedis
from tests.asgi import app_client
from tests.cluster import SLOT_RANGES
from tests.conftest import OPERATOR_TOKEN
from tests.integration import cli_support
from tests.integration.management import deliver, new_key, new_service, new_tenant
from tests.integration.webhook_support import FAST, worker
from tests.tls import TlsCluster, TlsValkey, rediss
from workers.pump import EventPump
from workers.settings import queue_redis_settings

TIMEOUT_MS = 2000


def keys_on_every_node() -> list[str]:
    """One key per primary of the test clusters (slots split by SLOT_RANGES)."""
    found: dict[int, str] = {}
    for i in range(1000):
        slot = key_slot(f"probe{i}".encode())
        node = next(n for n, (lo, hi) in enumerate(SLOT_RANGES) if lo <= slot <= hi)
        found.setdefault(node, f"probe{i}")
    return [found[node] for node in range(len(SLOT_RANGES))]


PROBE_KEYS = keys_on_every_node()


def settings_for(url: str, *, cluster: bool = False, **extra: object) -> Settings:
    return Settings(redis_url=url, redis_cluster=cluster, redis_timeout_ms=TIMEOUT_MS, **extra)


# --- one round trip per client: returns normally, or raises what the client raises -------
async def fastredis(url: str, cluster: bool) -> None:
    client = await FastRedis.connect(url, timeout_ms=TIMEOUT_MS, cluster=cluster)
    try:
        for key in PROBE_KEYS:  # on a cluster, every node, each at its announced address
            assert await client.execute("SET", key, "tls") == b"OK"
    finally:
        await client.close()


async def redis_py(url: str, cluster: bool) -> None:
    client = connection.connect(settings_for(url, cluster=cluster))
    try:
        for key in PROBE_KEYS:
            assert await client.set(key, "tls")
    finally:
        await client.aclose()


async def cli_check(url: str, cluster: bool) -> None:
    check_reachable(settings_for(url, cluster=cluster))  # sync: the proxy is another process


async def arq_queue(url: str, cluster: bool) -> None:
    redis_settings = queue_redis_settings(settings_for(url))
    pool = await create_pool(dataclasses.replace(redis_settings, conn_retries=0))
    try:
        assert await pool.ping()
    finally:
        await pool.aclose()


Probe = Callable[[str, bool], Awaitable[None]]
SINGLE_CLIENTS = [fastredis, redis_py, cli_check, arq_queue]
CLUSTER_CLIENTS = [fastredis, redis_py]


def reasons(exc: BaseException | None) -> str:
    """The messages of an exception and of those it came from."""
    seen: list[str] = []
    while exc is not None and len(seen) < 10:
        seen.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return " <- ".join(seen)


async def refusal(probe: Probe, url: str, cluster: bool = False) -> str:
    with pytest.raises(Exception) as caught:  # each client raises its own type
        await probe(url, cluster)
    return reasons(caught.value)


# --- one server ---------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
@pytest.mark.parametrize("probe", SINGLE_CLIENTS)
async def test_every_client_accepts_a_server_whose_certificate_names_it(
    probe: Probe, host: str, tls_valkey: TlsValkey
) -> None:
    await probe(rediss(tls_valkey.good_port, tls_valkey.pki, host), False)


@pytest.mark.parametrize("probe", SINGLE_CLIENTS)
async def test_every_client_refuses_a_certificate_for_another_name(
    probe: Probe, tls_valkey: TlsValkey
) -> None:
    """Before: redis-py and arq did not check the name (redis-py 5's default)."""
    why = await refusal(probe, rediss(tls_valkey.wrong_port, tls_valkey.pki))

    assert "certificate verify failed" in why and "mismatch" in why


@pytest.mark.parametrize("probe", SINGLE_CLIENTS)
async def test_every_client_refuses_a_certificate_of_an_unknown_ca(
    probe: Probe, tls_valkey: TlsValkey
) -> None:
    why = await refusal(probe, f"rediss://127.0.0.1:{tls_valkey.good_port}")

    assert "certificate verify failed" in why and "mismatch" not in why


@pytest.mark.parametrize(
    ("port", "url_params"),
    [
        ("wrong_port", {"ssl_check_hostname": "false"}),  # the chain is still checked
        ("good_port", {"ssl_cert_reqs": "none"}),  # nothing is checked
    ],
    ids=["ssl_check_hostname=false", "ssl_cert_reqs=none"],
)
@pytest.mark.parametrize("probe", SINGLE_CLIENTS)
async def test_every_client_honours_the_explicit_opt_outs(
    probe: Probe, port: str, url_params: dict[str, str], tls_valkey: TlsValkey
) -> None:
    """Before: FastRedis ignored ssl_check_hostname=false; arq ignored every parameter."""
    url = rediss(getattr(tls_valkey, port), tls_valkey.pki, **url_params)
    if "ssl_cert_reqs" in url_params:
        url = url.replace(f"ssl_ca_certs={tls_valkey.pki.ca}&", "")  # no CA needed either

    await probe(url, False)


@pytest.mark.parametrize("probe", SINGLE_CLIENTS)
async def test_every_client_presents_its_client_certificate(
    probe: Probe, tls_valkey: TlsValkey
) -> None:
    """A server with tls-auth-clients yes: ssl_certfile + ssl_keyfile, or refused."""
    cert, key = tls_valkey.pki.client
    port, pki = tls_valkey.mtls_port, tls_valkey.pki

    await probe(rediss(port, pki, ssl_certfile=str(cert), ssl_keyfile=str(key)), False)
    # TLS 1.3: the server refuses after the handshake, so the reason is only "closed"
    await refusal(probe, rediss(port, pki))


def rotator(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`rotator ARGS` with only the given ROTATOR_* settings."""
    return cli_support.rotator(*args, env=cli_support.base_env(**env))


@pytest.mark.parametrize("variable", ["ROTATOR_REDIS_URL", "ROTATOR_QUEUE_URL"])
def test_a_misspelt_parameter_stops_every_command_with_one_line(
    variable: str, tls_valkey: TlsValkey, master_key_b64: str, tmp_path: Path
) -> None:
    """Before: FastRedis and arq ignored it, and the service started without the CA."""
    url = rediss(tls_valkey.good_port, tls_valkey.pki).replace("ssl_ca_certs", "ssl_ca_cert")
    url = url.replace("rediss://", "rediss://:hunter2@")
    settings = {variable: url, "ROTATOR_MASTER_KEY": master_key_b64}
    if variable == "ROTATOR_QUEUE_URL":
        settings["ROTATOR_REDIS_URL"] = rediss(tls_valkey.good_port, tls_valkey.pki)
    for command in (["serve"], ["worker"], ["tenant", "list"]):
        done = rotator(*command, ROTATOR_DATA_DIR=str(tmp_path), **settings)

        assert done.returncode == 2, done.stderr
        assert done.stderr == (
            f"rotator: {variable}: unknown parameter ssl_ca_cert (did you mean ssl_ca_certs?); "
            "known: db, ssl_ca_certs, ssl_cert_reqs, ssl_check_hostname, ssl_certfile, "
            "ssl_keyfile\n"
        )


def test_the_cli_names_the_setting_when_the_certificate_is_refused(
    tls_valkey: TlsValkey, master_key_b64: str, tmp_path: Path
) -> None:
    url = rediss(tls_valkey.wrong_port, tls_valkey.pki).replace("rediss://", "rediss://:hunter2@")
    done = rotator(
        "tenant", "list",
        ROTATOR_REDIS_URL=url, ROTATOR_MASTER_KEY=master_key_b64, ROTATOR_DATA_DIR=str(tmp_path),
    )  # fmt: skip

    assert done.returncode == 2
    assert done.stderr.startswith(
        f"rotator: ROTATOR_REDIS_URL: rediss://:***@127.0.0.1:{tls_valkey.wrong_port}/0 "
        "does not answer ("
    )
    assert "mismatch" in done.stderr and done.stderr.count("\n") == 1
    assert "hunter2" not in done.stderr and "Traceback" not in done.stderr


# --- a cluster ----------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
@pytest.mark.parametrize("probe", CLUSTER_CLIENTS)
async def test_cluster_clients_reach_every_primary_at_its_announced_tls_address(
    probe: Probe, host: str, tls_cluster: TlsCluster
) -> None:
    await probe(tls_cluster.tls_url(host), True)

    for index, key in enumerate(PROBE_KEYS):  # each landed on its own node
        assert tls_cluster.clients[index].get(key) == b"tls"


@pytest.mark.parametrize("probe", CLUSTER_CLIENTS)
async def test_cluster_peers_must_be_named_by_their_certificates(
    probe: Probe, tls_cluster: TlsCluster
) -> None:
    """The seed's certificate is right, the announced addresses present one for another
    name: both cluster clients refuse (before: redis-py went ahead), and both go ahead
    with the explicit opt-out."""
    seed = rediss(tls_cluster.seed_port, tls_cluster.pki)
    with tls_cluster.announce_wrong_certificates():
        why = await refusal(probe, seed, cluster=True)
        assert "certificate verify failed" in why and "mismatch" in why

        await probe(
            rediss(tls_cluster.seed_port, tls_cluster.pki, ssl_check_hostname="false"), True
        )


# --- the service over TLS -----------------------------------------------------------------
@pytest.mark.parametrize("topology", ["single", "cluster"])
async def test_deliveries_management_and_webhooks_over_tls(
    topology: str,
    tls_valkey: TlsValkey,
    request: pytest.FixtureRequest,
    redis,
    receiver,
    master_key_b64: str,
    clock,
    tmp_path: Path,
) -> None:
    """The API (FastRedis + redis-py), the event pump and an arq worker, all over rediss://:
    on a cluster, with tenants on at least two primaries."""
    queue_url = rediss(tls_valkey.good_port, tls_valkey.pki, "localhost")
    if topology == "cluster":
        tls_cluster: TlsCluster = request.getfixturevalue("tls_cluster")
        tls_cluster.flush()
        store = {"redis_url": tls_cluster.tls_url(), "redis_cluster": True, "queue_url": queue_url}
    else:
        store = {"redis_url": queue_url}
    settings = Settings(
        **store,
        data_dir=tmp_path,
        master_key=KeyRing.parse(master_key_b64),
        admin_token=OPERATOR_TOKEN,
        webhook_allow_private=True,
        redis_timeout_ms=TIMEOUT_MS,
    )
    webhook = {"webhook_url": receiver.url, "webhook_events": ["key.delivered"]}

    async with app_client(create_app(settings, clock=clock)) as client:
        tenants, nodes = [], set()
        while len(tenants) < 3 or (topology == "cluster" and len(nodes) < 2):
            t = await new_tenant(client, name=f"tls{len(tenants)}")
            assert (await client.patch("/v1/tenant", json=webhook, headers=t.auth)).is_success
            await new_service(client, t)
            await new_key(client, t)
            r = await deliver(client, t.client_token)
            assert r.status_code == 200 and r.json()["meta"]["usage_today"] == 1, r.text
            listed = await client.get("/v1/services", headers=t.auth)
            assert listed.status_code == 200 and len(listed.json()) == 1, listed.text
            slot = key_slot(keys.tag(t.id).encode())
            nodes.add(next(n for n, (lo, hi) in enumerate(SLOT_RANGES) if lo <= slot <= hi))
            tenants.append(t)

    data = connection.connect(settings)
    queue = await create_pool(queue_redis_settings(settings))
    try:
        assert await EventPump(data, queue, FAST).pump_once() == len(tenants)
        async with worker(settings) as w:
            await w.async_run()
    finally:
        await queue.aclose()
        await data.aclose()
    got = await receiver.wait_for(len(tenants))
    assert sorted(json.loads(r.body)["tenant"] for r in got) == sorted(t.id for t in tenants)
