"""What `rotator serve` and the worker log, as real processes driven through a scripted mix.

At INFO: start and stop lines, one summary line per ROTATOR_LOG_SUMMARY_S (1 s here)
whose counts add up to exactly what was asked and done, the webhook that failed for
good, and a store outage as one line where it starts and one where it ends, however many
requests, polls and reconnects failed in between; nothing per request, per job or per
sweep. At DEBUG the per-job and per-sweep lines
(arq's, relabelled) and uvicorn's lifespan steps are there.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from rotator.cli.webhook_listen import Receiver
from rotator.embedded import EmbeddedValkey, free_port
from tests.conftest import OPERATOR_TOKEN
from tests.integration.cli_support import base_env

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
OUTAGE_REQUESTS = 20

# run_worker is what `rotator worker` runs; here with test intervals (no 30 s backoff, a
# sweep every second) and its settings from the same environment as the API's
WORKER = """
from rotator.settings import Settings
from workers import WorkerConfig, run_worker

run_worker(Settings.from_env(), WorkerConfig(
    backoff_base_s=0.05, backoff_cap_s=0.1, poll_delay_s=0.05, pump_idle_poll_s=0.05,
    target_cache_s=0, sweep_seconds=frozenset(range(60)),
))
"""

LINE = re.compile(r"^\S+ \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ([\w.]+)\[\d+\]: (.*)$")

API_KINDS = {
    "start": re.compile(r"rotator\.serve: serving http://127\.0\.0\.1:\d+ with 1 worker process; "),
    "summary": re.compile(r"rotator\.api: deliveries in the last \d+s: \d+ \(ok \d+(, .+ \d+)*\)$"),
    "stop": re.compile(r"rotator\.serve: stopped serving http://"),
    # the outage, seen by the hot path's connection and by the answers; each once
    "connection lost": re.compile(r"rotator\.store\.fast: redis \S+: connection lost$"),
    "reconnects failing": re.compile(
        r"rotator\.store\.fast: redis \S+ is unreachable \(.+\); reconnecting every 0\.2s, "
        r"reporting once per 60s$"
    ),
    "answering 503": re.compile(
        r"rotator\.api: the store is unreachable \(.+\); answering 503, reporting once per 60s$"
    ),
    # from the store watch's next read (every 5 s): a request answered 503 names no one
    "answers again": re.compile(
        r"rotator\.api: the store is reachable again after [\d.]+s and \d+ failures$"
    ),
    "reconnected": re.compile(
        r"rotator\.store\.fast: redis \S+ is reachable again after [\d.]+s and \d+ failures$"
    ),
}
WORKER_KINDS = {
    "start": re.compile(r"workers: worker started: queue redis://"),
    "summary": re.compile(
        r"workers: jobs in the last \d+s: webhooks \d+ delivered, \d+ retrying, \d+ failed"
        r"(, \d+ \w+)*; \d+ events? pumped; \d+ sweeps?, \d+ keys? expired$"
    ),
    "failed webhook": re.compile(
        r"workers\.deliver: webhook event evt_\S+ of tenant \w+ failed after 2 attempts: "
        r"HTTP 503$"
    ),
    "jobs cut short": re.compile(r"workers: stopped; \d+ job\(s\) in flight will be retried$"),
    "stop": re.compile(r"workers: worker stopped$"),
    "outage": re.compile(r"workers: the store is unreachable \(.+\); retrying with backoff"),
    "recovery": re.compile(r"workers: the store is reachable again after [\d.]+s and \d+ fail"),
}


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:  # a file: the child's output never blocks on a pipe
            self.proc = subprocess.Popen(
                args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def lines(self) -> list[tuple[str, str]]:
        """(level, "logger: message") of each log line; other output is kept as ("", line)."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            match = LINE.match(line)
            found.append((match[1], f"{match[2]}: {match[3]}") if match else ("", line))
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


async def wait_until(check, what: str, process: Process, timeout_s: float = 40.0):
    """Poll `check()` until it returns a truthy value (a bound, not a timed assertion)."""
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        assert process.proc.poll() is None, process.log.read_text()
        assert time.monotonic() < deadline, f"{what}:\n{process.log.read_text()}"
        await asyncio.sleep(0.1)
    return found


@asynccontextmanager
async def service(
    tmp_path: Path, master_key_b64: str, level: str
) -> AsyncIterator[tuple[Process, Process, httpx.AsyncClient, EmbeddedValkey]]:
    """A Valkey as in production (AOF on), `rotator serve` and a worker at `level`; both
    processes stopped with SIGTERM at the end, which each must survive with status 0."""
    valkey = EmbeddedValkey(tmp_path / "valkey", appendonly=True)
    valkey.start()
    port = free_port()
    env = base_env(
        ROTATOR_REDIS_URL=valkey.url,
        ROTATOR_MASTER_KEY=master_key_b64,
        ROTATOR_ADMIN_TOKEN=OPERATOR_TOKEN,
        ROTATOR_DATA_DIR=str(tmp_path),
        ROTATOR_PORT=str(port),
        ROTATOR_LOG_LEVEL=level,
        ROTATOR_LOG_SUMMARY_S="1",
        ROTATOR_WEBHOOK_ALLOW_PRIVATE="1",
        ROTATOR_WEBHOOK_MAX_ATTEMPTS="2",
        PYTHONPATH=str(ROOT),
    )
    api = Process([sys.executable, "-m", "rotator.cli", "serve"], env, tmp_path / "api.log")
    worker = Process([sys.executable, "-c", WORKER], env, tmp_path / "worker.log")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:

            async def healthy() -> bool:
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            deadline = time.monotonic() + 30
            while not await healthy():
                assert api.proc.poll() is None, api.log.read_text()
                assert time.monotonic() < deadline, api.log.read_text()
                await asyncio.sleep(0.1)
            yield api, worker, http, valkey
    finally:
        api.stop()
        worker.stop()
        valkey.stop()
    assert api.proc.returncode == 0, api.log.read_text()
    assert worker.proc.returncode == 0, worker.log.read_text()


async def tenant_with_webhook(http: httpx.AsyncClient, name: str, url: str) -> dict[str, str]:
    """A tenant (through the API) subscribed to key.delivered at `url`, with a service
    `svc` of one key limited to 3 a day, and a service `empty` whose one key is disabled."""
    created = (await http.post(
        "/v1/admin/tenants", json={"name": name},
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
    )).json()  # fmt: skip
    admin = {"Authorization": f"Bearer {created['admin_token']}"}
    for step in (
        http.patch("/v1/tenant", headers=admin,
                   json={"webhook_url": url, "webhook_events": ["key.delivered"]}),
        http.post("/v1/services", headers=admin,
                  json={"slug": "svc", "policy": "usage", "max_daily_requests": 3}),
        http.post("/v1/services/svc/keys", headers=admin,
                  json={"label": "k", "secret": "sk-test-0123456789abcdef"}),
        http.post("/v1/services", headers=admin, json={"slug": "empty", "policy": "usage"}),
        http.post("/v1/services/empty/keys", headers=admin,
                  json={"label": "off", "secret": "sk-test-0123456789abcdef"}),
    ):  # fmt: skip
        assert (await step).status_code in (200, 201)
    [key] = (await http.get("/v1/services/empty/keys", headers=admin)).json()
    off = await http.patch(f"/v1/services/empty/keys/{key['id']}", headers=admin,
                           json={"active": False})  # fmt: skip
    assert off.status_code == 200, off.text
    return {"client": created["client_token"]}


def api_totals(lines: list[tuple[str, str]]) -> Counter[str]:
    """The API's summary lines added up: `... 5 (ok 3, invalid token 2)`."""
    total: Counter[str] = Counter()
    for _, text in lines:
        if "deliveries in the last" in text:
            for part in text[text.index("(") + 1 : -1].split(", "):
                name, n = part.rsplit(" ", 1)
                total[name] += int(n)
    return total


def job_totals(lines: list[tuple[str, str]]) -> Counter[str]:
    """The worker's summary lines added up: `webhooks 3 delivered, 0 retrying, ...; 4
    events pumped; 1 sweep, 0 keys expired`."""
    total: Counter[str] = Counter()
    for _, text in lines:
        if "jobs in the last" in text:
            body = text.split(": ", 2)[2].removeprefix("webhooks ")
            for part in re.split(r"; |, ", body):
                n, name = part.split(" ", 1)
                total[re.sub(r"^(event|sweep|key)\b", r"\1s", name)] += int(n)
    return total


def kinds(lines: list[tuple[str, str]], expected: dict[str, re.Pattern[str]]) -> list[str]:
    """The kind of each INFO-or-above line; a line of no expected kind fails the test."""
    found = []
    for level, text in lines:
        if not level:
            continue  # not a log line (none is expected, but a note from the CLI would be)
        kind = next((k for k, pattern in expected.items() if pattern.match(text)), None)
        assert kind is not None, f"unexpected {level} line: {text}"
        found.append(kind)
    return found


async def test_info_shows_start_stop_summaries_and_failures_only(tmp_path, master_key_b64):
    good = await Receiver().start()
    bad = await Receiver(respond=lambda _: 503).start()
    try:
        async with service(tmp_path, master_key_b64, "INFO") as (api, worker, http, valkey):
            a = await tenant_with_webhook(http, "alpha", good.url)
            b = await tenant_with_webhook(http, "beta", bad.url)
            statuses = Counter()
            for token, service_, times in (
                (a["client"], "svc", 5),  # 3 within the limit, then 2 x 429
                (a["client"], "empty", 1),  # 503 no active keys
                (b["client"], "svc", 1),  # its webhook fails twice: failed for good
                ("krc_nosuchtenant_0123456789", "svc", 1),  # 403 invalid token
            ):
                for _ in range(times):
                    response = await http.get("/v1/next", params={"service": service_,
                                                                  "token": token})  # fmt: skip
                    statuses[response.status_code] += 1
            assert statuses == {200: 4, 429: 2, 503: 1, 403: 1}

            expected_api = {"ok": 4, "service daily limit reached": 2, "no active keys": 1,
                            "invalid token": 1}  # fmt: skip
            await wait_until(lambda: api_totals(api.lines()) == expected_api,
                             "the API's summaries never added up", api)  # fmt: skip
            await wait_until(
                lambda: (lambda t: (t["delivered"], t["failed"], t["sweeps"] >= 2))(
                    job_totals(worker.lines())
                ) == (3, 1, True),
                "the worker's summaries never showed 3 delivered, 1 failed, 2 sweeps", worker,
            )  # fmt: skip

            # an outage: many failed requests, polls and reconnects, two lines each process
            valkey.stop()
            for _ in range(OUTAGE_REQUESTS):
                down = await http.get("/v1/next", params={"service": "svc", "token": a["client"]})
                assert down.status_code == 503
                await asyncio.sleep(0.05)  # spread over several reconnect attempts
            await wait_until(lambda: "the store is unreachable" in worker.log.read_text(),
                             "the worker never noticed the outage", worker)  # fmt: skip
            valkey.start()  # same port, same data (AOF)
            # the API answers from the store again (no event: the worker's counts stay); it
            # reconnects at most 0.2 s after its last failed attempt: 503s until then
            expected_api["store unavailable"] = OUTAGE_REQUESTS
            deadline = time.monotonic() + 20
            while (back := await http.get(
                "/v1/next", params={"service": "empty", "token": a["client"]}
            )).json() != {"error": "no active keys"}:  # fmt: skip
                assert back.json() == {"error": "store unavailable"}
                assert time.monotonic() < deadline, "the API never reconnected"
                expected_api["store unavailable"] += 1
                await asyncio.sleep(0.05)
            expected_api["no active keys"] += 1
            await wait_until(
                lambda: api_totals(api.lines()) == expected_api,
                "the API's summaries never added up after the outage", api,
            )  # fmt: skip
            await wait_until(lambda: "reachable again" in worker.log.read_text(),
                             "the worker never noticed the recovery", worker)  # fmt: skip
            await wait_until(lambda: "answers again" in kinds(api.lines(), API_KINDS),
                             "the API never said it recovered", api)  # fmt: skip

        api_kinds = kinds(api.lines(), API_KINDS)
        assert api_kinds[0] == "start" and api_kinds[-1] == "stop", api_kinds
        outage = ("connection lost", "reconnects failing", "answering 503", "reconnected",
                  "answers again")  # fmt: skip
        assert Counter(k for k in api_kinds if k in outage) == dict.fromkeys(outage, 1)
        assert api_totals(api.lines()) == expected_api  # the stop added nothing

        worker_kinds = kinds(worker.lines(), WORKER_KINDS)
        assert worker_kinds[0] == "start" and worker_kinds[-1] == "stop", worker_kinds
        assert worker_kinds.count("failed webhook") == 1, worker_kinds
        assert (worker_kinds.count("outage"), worker_kinds.count("recovery")) == (1, 1)
        jobs = job_totals(worker.lines())
        assert (jobs["delivered"], jobs["failed"], jobs["retrying"]) == (3, 1, 1), jobs
        assert jobs["events pumped"] == 4, jobs
        # nothing of a request, a job or a sweep at INFO, in either process
        everything = api.log.read_text() + worker.log.read_text()
        for routine in ("→", "←", "deliver_event", "sweep_time_services", "Application startup"):
            assert routine not in everything
        assert "Traceback" not in everything
    finally:
        await good.close()
        await bad.close()


async def test_debug_shows_each_job_and_sweep(tmp_path, master_key_b64):
    good = await Receiver().start()
    try:
        async with service(tmp_path, master_key_b64, "DEBUG") as (api, worker, http, _):
            a = await tenant_with_webhook(http, "alpha", good.url)
            ok = await http.get("/v1/next", params={"service": "svc", "token": a["client"]})
            assert ok.status_code == 200
            await good.wait_for(1)

            def job_lines() -> list[str]:
                return [t for level, t in worker.lines() if level == "DEBUG" and "arq.worker" in t]

            await wait_until(
                lambda: any("deliver_event" in t and "←" in t for t in job_lines())
                and any("sweep_time_services" in t and "←" in t for t in job_lines()),
                "no per-job DEBUG line for the delivery and the sweep", worker,
            )  # fmt: skip
        api_debug = [t for level, t in api.lines() if level == "DEBUG"]
        assert any("Application startup complete." in t for t in api_debug), api_debug
        # relabelled, not duplicated: arq's own INFO never shows
        assert not [t for level, t in worker.lines() if level == "INFO" and "arq." in t]
    finally:
        await good.close()
