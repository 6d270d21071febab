"""deploy/nginx.conf's retry rules, run for real: nginx in front of two `rotator serve`
processes and an upstream with nothing listening (a replica that died).

- A connection failure is retried on the next replica: the client sees a 200.
- An answer of the API is never retried: `503 no active keys` (final) reaches the client
  from the one replica that gave it, and does not count against that replica, so both
  stay in rotation; `503 store unavailable` too, with Retry-After for the client.

nginx reports every upstream it tried in X-Upstream (the test's main config adds
`$upstream_addr`: "a, b" when it went to a, then retried on b).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from rotator.embedded import EmbeddedValkey, free_port
from tests.conftest import OPERATOR_TOKEN
from tests.integration.cli_support import base_env
from tests.integration.test_multiprocess import (  # noqa: F401  (nginx_binary: a fixture)
    SECRET,
    nginx_binary,
    render_config,
    stop,
    wait_http,
)

pytestmark = pytest.mark.timeout(120)

REQUESTS = 8


@dataclass
class Proxied:
    url: str
    live: set[str]
    """host:port of the two API processes."""
    dead: str
    """host:port nginx knows as an upstream, where nothing listens."""
    valkey: EmbeddedValkey


@pytest.fixture
def proxied(request, master_key_b64, tmp_path) -> Iterator[Proxied]:
    nginx_path = request.getfixturevalue("nginx_binary")  # installs nginx if need be
    valkey = EmbeddedValkey(tmp_path / "valkey", appendonly=False)
    valkey.start()
    env = base_env(
        ROTATOR_REDIS_URL=valkey.url,
        ROTATOR_MASTER_KEY=master_key_b64,
        ROTATOR_ADMIN_TOKEN=OPERATOR_TOKEN,
        ROTATOR_TRUSTED_PROXIES="127.0.0.1/32",
        ROTATOR_DATA_DIR=str(tmp_path),
        ROTATOR_LOG_LEVEL="WARNING",
        ROTATOR_REDIS_TIMEOUT_MS="500",
    )
    processes: list[subprocess.Popen[bytes]] = []
    try:
        ports = [free_port(), free_port()]
        for port in ports:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "rotator.cli", "serve"],
                env={**env, "ROTATOR_PORT": str(port)}, stdin=subprocess.DEVNULL,
            ))  # fmt: skip
        for port, process in zip(ports, processes, strict=True):
            wait_http(f"http://127.0.0.1:{port}/healthz", process, "rotator serve")
        dead = free_port()  # bound and released: nothing listens there
        listen = free_port()
        config = render_config(tmp_path, listen, [dead, *ports])
        nginx = subprocess.Popen(
            [nginx_path, "-p", str(tmp_path), "-c", str(config), "-e",
             str(tmp_path / "error.log")], stdin=subprocess.DEVNULL,
        )  # fmt: skip
        processes.append(nginx)
        # up when it accepts a connection: a request through it now would try the dead
        # upstream and mark it failed for fail_timeout before the tests' first request
        wait_listening(listen, nginx)
        yield Proxied(
            f"http://127.0.0.1:{listen}", {f"127.0.0.1:{p}" for p in ports},
            f"127.0.0.1:{dead}", valkey,
        )  # fmt: skip
    finally:
        for process in processes:
            stop(process)
        valkey.stop()


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        assert process.poll() is None and time.monotonic() < deadline, "nginx did not start"
        time.sleep(0.05)


def tenant(proxied: Proxied) -> str:
    """A client token of a tenant with service `ok` (one key) and service `empty` (its one
    key disabled: every delivery is `503 no active keys`), made on an API process directly
    (through nginx, the first request would find the dead upstream before the test does)."""
    url = f"http://{min(proxied.live)}"
    with httpx.Client(base_url=url, timeout=10) as http:
        made = http.post("/v1/admin/tenants", json={"name": "retries"},
                         headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})  # fmt: skip
        assert made.status_code == 201, made.text
        admin = {"Authorization": f"Bearer {made.json()['admin_token']}"}
        for slug in ("ok", "empty"):
            r = http.post("/v1/services", json={"slug": slug, "policy": "usage"}, headers=admin)
            assert r.status_code == 201, r.text
            r = http.post(f"/v1/services/{slug}/keys", json={"label": "k", "secret": SECRET},
                          headers=admin)  # fmt: skip
            assert r.status_code == 201, r.text
        key_id = r.json()["id"]
        r = http.patch(f"/v1/services/empty/keys/{key_id}", json={"active": False},
                       headers=admin)  # fmt: skip
        assert r.status_code == 200, r.text
        return made.json()["client_token"]


def deliveries(url: str, token: str, service: str) -> list[httpx.Response]:
    with httpx.Client(base_url=url, timeout=10) as http:
        auth = {"Authorization": f"Bearer {token}"}
        return [
            http.get("/v1/next", params={"service": service}, headers=auth) for _ in range(REQUESTS)
        ]


def tried(response: httpx.Response) -> list[str]:
    return response.headers["x-upstream"].split(", ")


def test_a_dead_replica_is_retried_on_a_live_one(proxied):
    token = tenant(proxied)
    responses = deliveries(proxied.url, token, "ok")
    assert [r.status_code for r in responses] == [200] * REQUESTS
    retried = [tried(r) for r in responses if len(tried(r)) > 1]
    # round robin sent at least one request to the dead upstream first; nginx then took it
    # out for fail_timeout and went on to a live one
    assert retried and all(t[0] == proxied.dead and t[-1] in proxied.live for t in retried)


def test_no_active_keys_reaches_the_client_once(proxied):
    token = tenant(proxied)
    responses = deliveries(proxied.url, token, "empty")
    for r in responses:
        assert (r.status_code, r.json()) == (503, {"error": "no active keys"})
        assert "retry-after" not in r.headers  # final: a tenant admin has to act
        answered = [a for a in tried(r) if a in proxied.live]
        assert len(answered) == 1, r.headers["x-upstream"]  # the API's answer: not retried
    # a replica that answered 503 is not counted as failed: both stay in rotation
    assert {a for r in responses for a in tried(r) if a in proxied.live} == proxied.live


def test_store_unavailable_reaches_the_client_once_with_retry_after(proxied):
    token = tenant(proxied)
    proxied.valkey.stop()
    responses = deliveries(proxied.url, token, "ok")
    for r in responses:
        assert (r.status_code, r.json()) == (503, {"error": "store unavailable"})
        assert r.headers["retry-after"] == "1"  # the client's to retry
        assert len([a for a in tried(r) if a in proxied.live]) == 1, r.headers["x-upstream"]
    assert {a for r in responses for a in tried(r) if a in proxied.live} == proxied.live
