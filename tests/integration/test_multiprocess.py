"""Three `rotator serve` processes on one Valkey behind nginx (deploy/nginx.conf, on loopback).

- Limits are exact across processes: every decision is one script on the tenant's
  slot, whichever process sends it.
- SIGTERM of a process under load (a rolling restart) is invisible: uvicorn finishes
  what it accepted, nginx sends the rest to the survivors; counted == delivered.
- SIGKILL of a process under load (a crash): nginx retries the GETs it had in flight
  on the survivors and no delivery is lost. nginx sends the same X-Request-ID on every
  attempt, so a request whose script had run when its process died is answered by the
  retry with the key it was counted for, not counted again. A response whose headers had
  already been forwarded cannot be retried: that client sees the connection close
  mid-response (rare: the kill must fall between uvicorn's two writes); such a delivery
  is counted once and never reached its client.

nginx is the Debian package; it is installed when missing and running as root
(apt-get), else the tests fail saying how to install it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from rotator.embedded import free_port
from rotator.store import keys
from tests import system_packages
from tests.conftest import OPERATOR_TOKEN
from tests.integration.cli_support import base_env

ROOT = Path(__file__).resolve().parents[2]
SITE_CONF = ROOT / "deploy" / "nginx.conf"
API_PROCESSES = 3
CLIENT_IP = "203.0.113.7"
CUT = 0
"""Status recorded for a response cut short (nginx closed the connection mid-response)."""
LOOPS, PER_LOOP, STRIKE_AFTER = 64, 60, 600
"""Load of the kill tests: concurrent clients, requests each, 200s seen before the signal."""
SECRET = "sk-proj-multiprocess-0123456789abcdefWXYZ"
NGINX_PLACES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx")

# installing nginx on a fresh machine may take a while (apt-get update)
pytestmark = pytest.mark.timeout(300)


# --- nginx ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def nginx_binary() -> str:
    """nginx's path (tests/system_packages.py: installed when missing and running as root)."""
    return system_packages.require("nginx", "nginx", NGINX_PLACES)


@dataclass(frozen=True)
class NginxTls:
    """How tests/integration/test_https.py runs deploy/nginx.conf: both of its servers."""

    http_port: int
    cert_file: Path
    key_file: Path


def render_config(
    workdir: Path, listen_port: int, api_ports: list[int], tls: NginxTls | None = None
) -> Path:
    """deploy/nginx.conf with loopback upstreams and ports, inside a main config of our own.

    With `tls`, the file as it ships: the https server on `listen_port` with the test's
    certificate, and the http server (health checks, redirects) on `tls.http_port`. Without,
    the https server's proxying alone, as plain http on `listen_port` (no certificate, no
    HSTS): what the retry and crash tests are about, without TLS in their clients.
    The main config adds an X-Upstream response header (nginx's $upstream_addr, every
    address tried) so the tests can see which processes served and which were retried.
    """
    site_lines: list[str] = []
    upstreams = 0
    for line in SITE_CONF.read_text().splitlines():
        match = re.match(r"(\s*)server api-\d+:8080( .*)?;", line)
        if match is None:
            site_lines.append(line)
            continue
        if upstreams == 0:
            indent, options = match.group(1), match.group(2) or ""
            site_lines += [f"{indent}server 127.0.0.1:{port}{options};" for port in api_ports]
        upstreams += 1
    site = "\n".join(site_lines)
    assert upstreams and site.count("listen 80;") == 1, "deploy/nginx.conf changed shape"
    assert site.count("listen 443 ssl;") == 1, "deploy/nginx.conf changed shape"
    if tls is not None:
        site = site.replace("listen 80;", f"listen 127.0.0.1:{tls.http_port};")
        site = site.replace("listen 443 ssl;", f"listen 127.0.0.1:{listen_port} ssl;")
        site = site.replace("/etc/nginx/tls/cert.pem", str(tls.cert_file))
        site = site.replace("/etc/nginx/tls/key.pem", str(tls.key_file))
    else:
        # the upstream, and the https server without its TLS lines (and without its HSTS,
        # which, as a server-level add_header, would hide the main config's X-Upstream)
        http_server = re.search(r"^server \{\n    listen 80;.*?^\}\n", site, re.M | re.S)
        assert http_server is not None, "deploy/nginx.conf changed shape"
        site = site.replace(http_server.group(0), "")
        site = re.sub(r"^\s*(ssl_\w+|add_header Strict-Transport-Security) [^;]*;\n", "", site,
                      flags=re.M)  # fmt: skip
        site = site.replace("listen 443 ssl;", f"listen 127.0.0.1:{listen_port};")
    (workdir / "site.conf").write_text(site)
    main = workdir / "nginx.conf"
    main.write_text(
        f"""
daemon off;
worker_processes 2;
worker_rlimit_nofile 8192;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    add_header X-Upstream $upstream_addr always;
    include {workdir}/site.conf;
}}
"""
    )
    return main


# --- API processes -------------------------------------------------------------------------
@dataclass
class Api:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def wait_http(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up (exit code {process.poll()})")
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Stack:
    url: str
    apis: list[Api]


@pytest.fixture
def stack(nginx_binary, valkey, master_key_b64, tmp_path, redis) -> Iterator[Stack]:
    """Three `rotator serve` processes (one uvicorn worker each) and nginx before them."""
    env = base_env(
        ROTATOR_REDIS_URL=valkey.url,
        ROTATOR_MASTER_KEY=master_key_b64,
        ROTATOR_ADMIN_TOKEN=OPERATOR_TOKEN,
        ROTATOR_TRUSTED_PROXIES="127.0.0.1/32",
        ROTATOR_DATA_DIR=str(tmp_path),
        ROTATOR_LOG_LEVEL="WARNING",
        ROTATOR_WORKERS="1",
    )
    apis: list[Api] = []
    nginx = None
    try:
        for _ in range(API_PROCESSES):
            port = free_port()
            process = subprocess.Popen(
                [sys.executable, "-m", "rotator.cli", "serve"],
                env={**env, "ROTATOR_PORT": str(port)},
                stdin=subprocess.DEVNULL,
            )
            apis.append(Api(port, process))
        for api in apis:
            wait_http(f"http://{api.address}/healthz", api.process, "rotator serve")
        listen = free_port()
        config = render_config(tmp_path, listen, [api.port for api in apis])
        error_log = str(tmp_path / "error.log")  # -e: not the packaged /var/log/nginx path
        nginx = subprocess.Popen(
            [nginx_binary, "-p", str(tmp_path), "-c", str(config), "-e", error_log],
            stdin=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{listen}"
        wait_http(url + "/healthz", nginx, "nginx")
        yield Stack(url, apis)
    finally:
        for api in apis:
            stop(api.process)
        if nginx is not None:
            stop(nginx)


# --- helpers -------------------------------------------------------------------------------
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


async def tenant_with_keys(http: httpx.AsyncClient, **service: object) -> tuple[str, str]:
    """(tenant id, client token) of a tenant with service `openai` and three keys, made
    through nginx (POSTs: never retried)."""
    r = await http.post("/v1/admin/tenants", json={"name": "multi"}, headers=OPERATOR)
    assert r.status_code == 201, r.text
    body = r.json()
    admin = {"Authorization": f"Bearer {body['admin_token']}"}
    r = await http.post(
        "/v1/services", json={"slug": "openai", "policy": "usage", **service}, headers=admin
    )
    assert r.status_code == 201, r.text
    for n in range(3):
        r = await http.post(
            "/v1/services/openai/keys",
            json={"label": f"k{n}", "secret": f"{SECRET}{n}"},
            headers=admin,
        )
        assert r.status_code == 201, r.text
    r = await http.patch("/v1/tenant", json={"ip_allowlist": ["203.0.113.0/24"]}, headers=admin)
    assert r.status_code == 200, r.text
    return body["id"], body["client_token"]


def deliver(http: httpx.AsyncClient, token: str, **headers: str):
    return http.get(
        "/v1/next",
        params={"service": "openai"},
        headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": CLIENT_IP, **headers},
    )


async def counted(redis, tenant: str) -> int:
    """The service's usage over every day kept (a run may straddle a UTC midnight)."""
    total = 0
    async for key in redis.scan_iter(match=keys.tag(tenant) + ":use:*"):
        total += int(await redis.hget(key, "s:openai") or 0)
    return total


def client(url: str, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=url, limits=limits, timeout=30)


# --- tests ---------------------------------------------------------------------------------
async def test_limits_are_exact_across_processes(stack, redis):
    async with client(stack.url, 300) as http:
        tenant, token = await tenant_with_keys(http, max_daily_requests=100)
        responses = await asyncio.gather(*(deliver(http, token) for _ in range(300)))
        # the address nginx saw (no X-Forwarded-For from the client) is not allowed
        stranger = await http.get(
            "/v1/next", params={"service": "openai"}, headers={"Authorization": f"Bearer {token}"}
        )

    assert Counter(r.status_code for r in responses) == {200: 100, 429: 200}
    assert await counted(redis, tenant) == 100
    served = {r.headers["x-upstream"] for r in responses if r.status_code == 200}
    assert served == {api.address for api in stack.apis}  # every process took part
    assert (stranger.status_code, stranger.json()) == (403, {"error": "ip not allowed"})


class RawClient:
    """One keep-alive HTTP/1.1 connection, hand-rolled: httpx would be the bottleneck here,
    and a load that keeps the API processes busy is what puts requests in flight."""

    def __init__(self, url: str, request: bytes) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.request = request
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self) -> tuple[int, str]:
        """(status, X-Upstream) of one request; (CUT, "") when the connection broke before
        the whole response arrived."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(*self.address)
        assert self.reader is not None
        self.writer.write(self.request)
        try:
            head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            status_line, *lines = head.split("\r\n")
            headers = dict(
                (name.strip().lower(), value.strip())
                for name, sep, value in (line.partition(":") for line in lines)
                if sep
            )
            await self.reader.readexactly(int(headers["content-length"]))
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            return CUT, ""
        if headers.get("connection", "").lower() == "close":  # nginx's keepalive_requests
            await self.close()
        return int(status_line.split(" ")[1]), headers.get("x-upstream", "")

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(ConnectionError):
                await self.writer.wait_closed()
            self.writer = self.reader = None


async def hammer(
    stack: Stack, token: str, *, loops: int, per_loop: int, stop_after: int, sig: signal.Signals
) -> tuple[Counter[int], list[tuple[int, str]]]:
    """`loops` clients sending `per_loop` deliveries each; after `stop_after` 200s the first
    API process gets `sig`. Returns the statuses and every (status, X-Upstream)."""
    statuses: Counter[int] = Counter()
    responses: list[tuple[int, str]] = []
    victim = stack.apis[0]
    request = (
        "GET /v1/next?service=openai HTTP/1.1\r\nHost: keyrotator\r\n"
        f"Authorization: Bearer {token}\r\nX-Forwarded-For: {CLIENT_IP}\r\n\r\n"
    ).encode()

    async def load() -> None:
        raw = RawClient(stack.url, request)
        try:
            for _ in range(per_loop):
                status, upstream = await raw.get()
                statuses[status] += 1
                responses.append((status, upstream))
        finally:
            await raw.close()

    async def strike() -> None:
        while statuses[200] < stop_after:
            await asyncio.sleep(0.001)
        victim.process.send_signal(sig)

    await asyncio.gather(*(load() for _ in range(loops)), strike())
    victim.process.wait(15)
    return statuses, responses


async def test_sigterm_of_one_process_under_load_is_invisible(stack, redis):
    async with client(stack.url, 4) as http:
        tenant, token = await tenant_with_keys(http)
    statuses, responses = await hammer(
        stack, token, loops=LOOPS, per_loop=PER_LOOP, stop_after=STRIKE_AFTER, sig=signal.SIGTERM
    )
    assert statuses == {200: LOOPS * PER_LOOP}
    assert await counted(redis, tenant) == LOOPS * PER_LOOP  # counted == delivered, exactly
    # uvicorn stops gracefully, then re-raises the signal: exit status "killed by SIGTERM"
    assert stack.apis[0].process.returncode in (0, -signal.SIGTERM)
    late = {upstream for _, upstream in responses[-200:]}
    assert stack.apis[0].address not in late  # the survivors took over


async def test_sigkill_of_one_process_under_load_loses_no_delivery(stack, redis, record_property):
    async with client(stack.url, 4) as http:
        tenant, token = await tenant_with_keys(http)
    statuses, responses = await hammer(
        stack, token, loops=LOOPS, per_loop=PER_LOOP, stop_after=STRIKE_AFTER, sig=signal.SIGKILL
    )
    total = await counted(redis, tenant)
    retried = sum(", " in upstream for _, upstream in responses)
    delivered, cut = statuses[200], statuses[CUT]
    surplus = total - delivered
    for name, value in (("retried", retried), ("cut", cut), ("surplus", surplus)):
        record_property(f"sigkill_{name}", value)
    print(f"\nSIGKILL under load: {retried} retried by nginx, {cut} cut, surplus {surplus}")

    assert set(statuses) <= {200, CUT} and delivered + cut == LOOPS * PER_LOOP
    assert retried, "the kill hit no request in flight: nothing was tested"
    # A response is cut only when its headers had left the dead process (nginx cannot
    # retry a response it has begun to forward): uvicorn writes the headers and then the
    # body, two writes with no await between them, so only the one response being written
    # at the instant of the kill can be cut (on loopback a finished write is at nginx).
    assert cut <= 1
    # No delivery is lost and none is counted twice: a retried request whose first attempt
    # had run its script is answered from the request record. Counted but not delivered:
    # only a cut response.
    assert 0 <= surplus <= cut
