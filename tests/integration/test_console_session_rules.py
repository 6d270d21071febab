"""Console sessions and CSRF: a one-minute idle limit must
still keep a busy session alive, and a form posted from another site is refused even when
that site planted a CSRF cookie/token pair of its own (cookie tossing from a sibling host)."""

from __future__ import annotations

import dataclasses

import httpx

from rotator.api.app import create_app
from rotator.domain.clock import FakeClock
from tests.asgi import app_client
from tests.conftest import OPERATOR_TOKEN
from tests.integration.console_support import csrf_of, post_form, sign_in
from tests.integration.management import new_tenant


def signed_out(response: httpx.Response, path: str = "/app/signin") -> bool:
    return response.status_code == 303 and response.headers["location"] == path


async def test_a_one_minute_idle_limit_keeps_a_busy_session_alive(settings, redis, clock):
    """ROTATOR_SESSION_IDLE_MINUTES=1 is accepted (at_least=1); a session used every 30 s
    is never idle for a minute, so it must last until the absolute limit, not 60 s."""
    one_minute = dataclasses.replace(settings, session_idle_minutes=1)
    async with app_client(create_app(one_minute, clock=clock)) as c:
        t = await new_tenant(c)
        await sign_in(c, t.admin_token)
        await sign_in(c, OPERATOR_TOKEN, "/app/operator/signin")
        for _ in range(6):  # 3 minutes, a page every 30 s
            clock.advance(s=30)
            assert (await c.get("/app/services")).status_code == 200
            assert (await c.get("/app/operator")).status_code == 200
        clock.advance(s=60)  # now idle for a whole minute
        assert signed_out(await c.get("/app/services"))
        assert signed_out(await c.get("/app/operator"), "/app/operator/signin")


async def _planted_pair(client: httpx.AsyncClient, other: httpx.AsyncClient) -> str:
    """Give `client` the CSRF cookie of `other`'s browser (what a sibling host can set for
    the parent domain) and return the token that goes with it."""
    token = csrf_of(await other.get("/app/signin"))
    client.cookies.set("kr_csrf", other.cookies.get("kr_csrf", path="/app"), path="/app")
    return token


async def test_a_post_from_another_site_is_refused_whatever_csrf_pair_it_carries(
    client, settings, clock: FakeClock
):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    async with app_client(create_app(settings, clock=clock)) as attacker:
        token = await _planted_pair(client, attacker)
    for headers in (
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
        {"origin": "https://evil.example"},
    ):
        r = await client.post(
            "/app/settings/allowlist",
            data={"ip_allowlist": "203.0.113.7", "_csrf_token": token},
            headers=headers,
        )
        assert r.status_code == 403, headers
    tenant = (
        await client.get("/v1/tenant", headers={"Authorization": f"Bearer {t.admin_token}"})
    ).json()
    assert tenant["ip_allowlist"] == []
    # the console's own forms still post: same-origin, or a client that sends neither header
    r = await post_form(client, "/app/settings/allowlist", {"ip_allowlist": ""})
    assert r.status_code == 303
    r = await post_form(
        client,
        "/app/settings/allowlist",
        {"ip_allowlist": ""},
        headers={"sec-fetch-site": "same-origin", "origin": str(client.base_url).rstrip("/")},
    )
    assert r.status_code == 303


async def test_signing_in_again_ends_the_session_the_browser_held(client, redis):
    """A browser that signs in again (another tenant, or the same one) drops its old cookie:
    the session it named must end with it, not live on server-side until its idle limit."""
    first, second = await new_tenant(client), await new_tenant(client)
    await sign_in(client, first.admin_token)
    old = client.cookies.get("kr_session", path="/app")
    await sign_in(client, second.admin_token)
    replay = httpx.AsyncClient(transport=client._transport, base_url=client.base_url)
    async with replay:
        replay.cookies.set("kr_session", old, path="/app")
        assert signed_out(await replay.get("/app/services"))
    await sign_in(client, OPERATOR_TOKEN, "/app/operator/signin")
    old_operator = client.cookies.get("kr_operator", path="/app/operator")
    await sign_in(client, OPERATOR_TOKEN, "/app/operator/signin")
    replay = httpx.AsyncClient(transport=client._transport, base_url=client.base_url)
    async with replay:
        replay.cookies.set("kr_operator", old_operator, path="/app/operator")
        assert signed_out(await replay.get("/app/operator"), "/app/operator/signin")


async def test_a_malformed_origin_is_refused_not_a_500(client):
    """From a browser without Sec-Fetch-Site the Origin decides; one that does not parse
    is no origin of ours."""
    csrf = csrf_of(await client.get("/app/signin"))
    r = await client.post(
        "/app/signin",
        data={"token": "kta_x_y", "_csrf_token": csrf},
        headers={"origin": "http://[::1"},
    )
    assert r.status_code == 403
