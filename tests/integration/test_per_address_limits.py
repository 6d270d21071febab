"""What is counted per client address (the console's sign-in throttle, the demo throttle,
the audit log's address), behind a trusted proxy: the address is read from every
X-Forwarded-For line, an IPv6 client is counted by its /64, and sign-ins sent at once
cannot all be checked."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress

import httpx
import pytest

from rotator.api.app import create_app
from rotator.store import sessions
from tests.asgi import AppClient, app_client
from tests.conftest import OPERATOR_TOKEN
from tests.integration.console_support import csrf_of
from tests.integration.management import new_key, new_service, new_tenant

pytestmark = pytest.mark.backends("single", "cluster")


@pytest.fixture
async def proxied(settings, redis, clock):
    """The app behind a proxy on 127.0.0.1 (the test client's address)."""
    behind = dataclasses.replace(settings, trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))
    async with app_client(create_app(behind, clock=clock)) as client:
        yield client


async def sign_in(client: AppClient, token: str, *forwarded: str) -> httpx.Response:
    """A sign-in whose X-Forwarded-For has one line per address in `forwarded`, as a proxy
    that adds its own line (HAProxy's `option forwardfor`) sends it."""
    csrf = csrf_of(await client.get("/app/signin"))
    headers = [("x-forwarded-for", address) for address in forwarded]
    return await client.post(
        "/app/signin", data={"token": token, "_csrf_token": csrf}, headers=headers
    )


async def test_the_proxys_own_line_names_the_client_not_the_first(proxied):
    t = await new_tenant(proxied)
    # the client writes the first line; the proxy adds the address it saw
    statuses = [
        (await sign_in(proxied, f"kta_{t.id}_wrong", f"198.51.100.{n}", "203.0.113.9")).status_code
        for n in range(sessions.SIGNIN_MAX_FAILURES + 2)
    ]
    assert statuses == [401] * (sessions.SIGNIN_MAX_FAILURES - 1) + [429] * 3
    # the audit log names the same address, whatever the client's own line says
    r = await proxied.patch(
        "/v1/tenant",
        json={"name": "renamed"},
        headers=[
            ("authorization", f"Bearer {t.admin_token}"),
            ("x-forwarded-for", "10.66.66.66"),
            ("x-forwarded-for", "203.0.113.50"),
        ],
    )
    assert r.status_code == 200
    audit = (await proxied.get("/v1/audit", headers=t.auth)).json()["records"]
    assert audit[0]["action"] == "update_tenant" and audit[0]["address"] == "203.0.113.50"


async def test_sign_ins_sent_at_once_are_checked_no_more_than_the_window_allows(proxied):
    t = await new_tenant(proxied)
    wrong = [sign_in(proxied, f"kta_{t.id}_guess{n}", "203.0.113.9") for n in range(40)]
    answers = await asyncio.gather(*wrong, sign_in(proxied, t.admin_token, "203.0.113.9"))
    # each attempt is counted before its token is compared: the others are refused unread
    checked = [r.status_code for r in answers if r.status_code != 429]
    assert len(checked) <= sessions.SIGNIN_MAX_FAILURES, [r.status_code for r in answers]


async def test_a_successful_sign_in_uses_up_nothing(proxied):
    t = await new_tenant(proxied)
    for _ in range(sessions.SIGNIN_MAX_FAILURES + 5):
        r = await sign_in(proxied, t.admin_token, "203.0.113.9")
        assert r.status_code == 303
    for _ in range(sessions.SIGNIN_MAX_FAILURES - 1):
        assert (await sign_in(proxied, "kta_wrong", "203.0.113.9")).status_code == 401


async def test_an_ipv6_client_is_counted_by_its_64(proxied):
    t = await new_tenant(proxied)
    for n in range(sessions.SIGNIN_MAX_FAILURES):
        await sign_in(proxied, "kta_wrong", f"2001:db8:1:2::{n + 1:x}")
    # another address of the same /64 shares its budget; the next /64 has its own
    assert (await sign_in(proxied, t.admin_token, "2001:db8:1:2:ffff::9")).status_code == 429
    assert (await sign_in(proxied, t.admin_token, "2001:db8:1:3::1")).status_code == 303
    # an IPv4 address and its IPv4-mapped IPv6 form are one client
    for _ in range(sessions.SIGNIN_MAX_FAILURES):
        await sign_in(proxied, "kta_wrong", "203.0.113.7")
    assert (await sign_in(proxied, t.admin_token, "::ffff:203.0.113.7")).status_code == 429
    # the operator's sign-in shares the budget
    csrf = csrf_of(await proxied.get("/app/operator/signin"))
    r = await proxied.post(
        "/app/operator/signin",
        data={"token": OPERATOR_TOKEN, "_csrf_token": csrf},
        headers={"x-forwarded-for": "2001:db8:1:2::abcd"},
    )
    assert r.status_code == 429


@pytest.mark.parametrize(
    ("attacker", "same", "other"),
    [
        ("203.0.113.9:50001", "203.0.113.9:50002", "198.51.100.7:50001"),
        ("[2001:db8:1::1]:443", "2001:db8:1::2", "[2001:db8:2::2]:443"),
        ("unknown", "unknown", "_hidden"),  # no IP: counted by their text
    ],
)
async def test_hops_with_ports_or_without_an_ip_have_budgets_of_their_own(
    proxied, attacker, same, other
):
    t = await new_tenant(proxied)
    for _ in range(sessions.SIGNIN_MAX_FAILURES):
        await sign_in(proxied, f"kta_{t.id}_wrong", attacker)
    assert (await sign_in(proxied, t.admin_token, same)).status_code == 429
    assert (await sign_in(proxied, t.admin_token, other)).status_code == 303


async def test_the_demo_throttle_counts_an_ipv6_client_by_its_64(proxied, settings):
    t = await new_tenant(proxied, demo=True)
    await new_service(proxied, t)
    await new_key(proxied, t)

    async def deliver(address: str) -> int:
        r = await proxied.get(
            "/v1/next",
            params={"service": "openai", "token": t.client_token},
            headers={"x-forwarded-for": address},
        )
        return r.status_code

    burst = [await deliver(f"2001:db8:7:7::{n + 1:x}") for n in range(settings.demo_burst)]
    assert burst == [200] * settings.demo_burst
    assert await deliver("2001:db8:7:7:abcd::1") == 429  # the same /64
    assert await deliver("2001:db8:7:8::1") == 200  # the next one


async def operator_call(client: AppClient, token: str, address: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}", "x-forwarded-for": address}
    return await client.get("/v1/admin/tenants", headers=headers)


async def test_the_operator_api_spends_the_sign_in_budget(proxied):
    """The operator token opens every tenant and a person may choose it: the API must not
    be a faster way to guess it than the console's sign-in form."""
    wrong = [
        (await operator_call(proxied, f"guess-{n}", "203.0.113.9")).status_code
        for n in range(sessions.SIGNIN_MAX_FAILURES + 1)
    ]
    assert wrong == [401] * (sessions.SIGNIN_MAX_FAILURES - 1) + [429] * 2
    # past the budget the right token is refused too, with when to try again
    r = await operator_call(proxied, OPERATOR_TOKEN, "203.0.113.9")
    assert (r.status_code, r.json()) == (429, {"error": "too many wrong tokens from this address"})
    assert 0 < int(r.headers["retry-after"]) <= sessions.SIGNIN_WINDOW_MS // 1000
    # ... and so is the console's sign-in form: one budget
    assert (await sign_in(proxied, OPERATOR_TOKEN, "203.0.113.9")).status_code == 429
    # another address has its own
    assert (await operator_call(proxied, OPERATOR_TOKEN, "203.0.113.10")).status_code == 200


async def test_console_failures_count_against_the_operator_api(proxied):
    for _ in range(sessions.SIGNIN_MAX_FAILURES):
        await sign_in(proxied, "kta_wrong", "198.51.100.20")
    assert (await operator_call(proxied, OPERATOR_TOKEN, "198.51.100.20")).status_code == 429


async def test_right_operator_calls_and_tenant_tokens_spend_nothing(proxied):
    t = await new_tenant(proxied)
    for _ in range(sessions.SIGNIN_MAX_FAILURES + 5):
        assert (await operator_call(proxied, OPERATOR_TOKEN, "198.51.100.30")).status_code == 200
        # a tenant's admin token on a route the operator may call too is not a wrong guess
        r = await proxied.get(
            "/v1/audit",
            headers={
                "authorization": f"Bearer {t.admin_token}",
                "x-forwarded-for": "198.51.100.30",
            },
        )
        assert r.status_code == 200
    for _ in range(sessions.SIGNIN_MAX_FAILURES - 1):
        assert (await operator_call(proxied, "wrong", "198.51.100.30")).status_code == 401
    assert (await operator_call(proxied, OPERATOR_TOKEN, "198.51.100.30")).status_code == 200


async def operator_sign_in(client: AppClient, token: str, address: str) -> httpx.Response:
    csrf = csrf_of(await client.get("/app/operator/signin"))
    return await client.post(
        "/app/operator/signin",
        data={"token": token, "_csrf_token": csrf},
        headers={"x-forwarded-for": address},
    )


async def test_a_right_operator_token_takes_back_only_its_own_attempt(proxied):
    """As a console sign-in that succeeds: the failures before it still count, through the
    API or the form, and a success from another address forgives none of them."""
    address = "198.51.100.40"
    for n in range(sessions.SIGNIN_MAX_FAILURES - 1):
        guess = operator_call if n % 2 else operator_sign_in
        assert (await guess(proxied, f"guess-{n}", address)).status_code == 401
    assert (await operator_call(proxied, OPERATOR_TOKEN, address)).status_code == 200
    assert (await operator_sign_in(proxied, OPERATOR_TOKEN, address)).status_code == 303
    assert (await operator_call(proxied, OPERATOR_TOKEN, "198.51.100.41")).status_code == 200
    # the tenth failure, as the console's tenth, uses up the window
    assert (await operator_call(proxied, "guess-last", address)).status_code == 429
    assert (await operator_sign_in(proxied, OPERATOR_TOKEN, address)).status_code == 429


async def test_operator_guesses_sent_at_once_are_checked_no_more_than_the_window_allows(proxied):
    guesses = [operator_call(proxied, f"guess-{n}", "203.0.113.11") for n in range(40)]
    answers = await asyncio.gather(*guesses, operator_call(proxied, OPERATOR_TOKEN, "203.0.113.11"))
    checked = [r.status_code for r in answers if r.status_code != 429]
    assert len(checked) <= sessions.SIGNIN_MAX_FAILURES, [r.status_code for r in answers]


async def test_a_wrong_token_on_the_audit_log_is_an_operator_guess(proxied):
    """GET /v1/audit takes the operator token too: a token that is no tenant's is a guess."""
    headers = {"authorization": "Bearer guess", "x-forwarded-for": "203.0.113.12"}
    statuses = [
        (await proxied.get("/v1/audit", headers=headers)).status_code
        for _ in range(sessions.SIGNIN_MAX_FAILURES)
    ]
    assert statuses == [401] * (sessions.SIGNIN_MAX_FAILURES - 1) + [429]
    assert (await operator_call(proxied, OPERATOR_TOKEN, "203.0.113.12")).status_code == 429


async def test_operator_calls_sent_at_once_use_up_nothing(proxied):
    """A script may call the operator API in parallel: a right token is not a guess, so
    such calls neither refuse each other nor leave the address locked out."""
    calls = [operator_call(proxied, OPERATOR_TOKEN, "198.51.100.60") for _ in range(30)]
    assert {r.status_code for r in await asyncio.gather(*calls)} == {200}
    for n in range(sessions.SIGNIN_MAX_FAILURES - 1):
        assert (await operator_call(proxied, f"guess-{n}", "198.51.100.60")).status_code == 401
    assert (await operator_call(proxied, OPERATOR_TOKEN, "198.51.100.60")).status_code == 200


async def test_a_tenant_token_on_an_operator_route_is_no_guess(proxied):
    """A tenant's token (ours: kta_, krc_) can never be the operator's (settings refuse one
    of that shape): sent to /v1/admin/* by mistake, it is a 401 that spends nothing."""
    t = await new_tenant(proxied)
    for token in [t.admin_token, t.client_token] * sessions.SIGNIN_MAX_FAILURES:
        assert (await operator_call(proxied, token, "198.51.100.40")).status_code == 401
    assert (await operator_call(proxied, OPERATOR_TOKEN, "198.51.100.40")).status_code == 200
    for _ in range(sessions.SIGNIN_MAX_FAILURES - 1):
        assert (await operator_call(proxied, "wrong", "198.51.100.40")).status_code == 401
