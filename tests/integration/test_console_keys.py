"""The console's key pages over HTTP: bulk add with per-line errors (secrets never shown back),
moving keys, what the page says about the time policy (state, expiry, when keys run out), and
the service's limit warning field."""

from __future__ import annotations

import re

import pytest

from rotator.domain.clock import FakeClock
from tests.integration.console_support import field_errors, post_form, sign_in
from tests.integration.management import deliver, new_key, new_service, new_tenant

pytestmark = pytest.mark.backends("single", "cluster")

SECRETS = [f"sk-proj-page-{i}-abcdefghijklmnopqrstuv" for i in range(3)]
HTMX = {"hx-request": "true", "hx-target": "keys"}


async def api_keys(client, t) -> list[dict]:
    return (await client.get("/v1/services/openai/keys", headers=t.auth)).json()


def order_on(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<li class="key[^"]*" id="key-(\d+)"', page)]


def current_on(page: str) -> int:
    """The id of the key the page badges as current (one only)."""
    items = re.findall(r'id="key-(\d+)">(.*?)</li>', page, re.DOTALL)
    (found,) = [int(i) for i, body in items if '<span class="badge">current</span>' in body]
    return found


async def test_bulk_add_from_the_page(client):
    t = await new_tenant(client)
    await new_service(client, t, policy="manual")
    await sign_in(client, t.admin_token)
    page = await client.get("/app/services/openai")
    assert 'id="keys"' in page.text and "Add many keys" in page.text
    text = f"# a comment\n{SECRETS[0]}\n\n{SECRETS[1]}\tBackup\n{SECRETS[2]},Spare,300\n"
    r = await post_form(client, "/app/services/openai/keys/bulk", {"keys": text})
    assert r.status_code == 303 and r.headers["location"].endswith("done=keys-added#keys")
    listed = await api_keys(client, t)
    assert [k["label"] for k in listed] == [f"Key {listed[0]['id']}", "Backup", "Spare"]
    assert listed[2]["max_daily_requests"] == 300
    page = await client.get("/app/services/openai?done=keys-added")
    assert "Keys added" in page.text and not any(s in page.text for s in SECRETS)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (f"{SECRETS[0]}\n\n{SECRETS[1]}\tB\tlots\n", "Line 3: Write the daily limit"),
        (f"{SECRETS[0]}\n{SECRETS[1]}\tB\t0\n", "Line 2: Enter a positive whole number"),
        (f"{SECRETS[0]}\tA\t\u00b2\n", "Line 1: Write the daily limit"),  # not int()'s
        (f"{SECRETS[0]}\tA\t-3\n", "Line 1: Enter a positive whole number"),
        (f"{SECRETS[0]},a,b,c\n", "Line 1: Too many fields"),
        (f"{SECRETS[0]}\n\tBackup\t500\n", "Line 2: Paste the provider key"),
        (f"{SECRETS[0]}\n{SECRETS[1]}\n{SECRETS[0]}\tAgain\n", "Line 3: This key is already"),
        ("# only a comment\n", "Paste at least one key"),
    ],
)
async def test_a_bad_line_adds_nothing_and_is_named_next_to_the_box(client, text, words):
    t = await new_tenant(client)
    await new_service(client, t)
    await sign_in(client, t.admin_token)
    r = await post_form(client, "/app/services/openai/keys/bulk", {"keys": text})
    assert r.status_code == 400
    assert field_errors(r)["keys"].startswith(words)
    assert 'aria-invalid="true" aria-describedby="keys-hint keys-error"' in r.text
    assert not any(s in r.text for s in SECRETS)  # the pasted keys are never sent back
    assert await api_keys(client, t) == []


async def test_move_buttons_reorder_and_keep_the_current_key(client):
    t = await new_tenant(client)
    await new_service(client, t, policy="manual")
    a, b, c = [(await new_key(client, t, secret=s, label=f"k{i}"))["id"] for i, s in
               enumerate(SECRETS)]  # fmt: skip
    await sign_in(client, t.admin_token)
    page = (await client.get("/app/services/openai")).text
    assert order_on(page) == [a, b, c]
    # the first key has no "to front" button, the last no "to end" one
    assert page.count("Move to front") == 2 and page.count("Move to end") == 2
    r = await post_form(client, f"/app/services/openai/keys/{c}/move", {"to": "front"},
                        headers=HTMX)  # fmt: skip
    assert r.status_code == 200 and "<html" not in r.text and "Key moved" in r.text
    assert order_on(r.text) == [c, a, b]
    assert current_on(r.text) == a
    r = await post_form(client, f"/app/services/openai/keys/{a}/move", {"to": "end"})
    assert r.status_code == 303 and r.headers["location"].endswith("done=key-moved#keys")
    assert [k["id"] for k in await api_keys(client, t)] == [c, b, a]
    assert (await deliver(client, t.client_token)).json()["meta"]["key_id"] == a
    r = await post_form(client, f"/app/services/openai/keys/{a}/move", {"to": "sideways"})
    assert r.status_code == 400


async def test_the_time_policy_is_explained_on_the_page(client, clock: FakeClock):
    t = await new_tenant(client)
    await new_service(client, t, policy="time", key_ttl_minutes=10)
    a, b = [(await new_key(client, t, secret=s))["id"] for s in SECRETS[:2]]
    await sign_in(client, t.admin_token)
    page = (await client.get("/app/services/openai")).text
    assert "Keys run out at <strong>2026-03-01 12:20 UTC</strong>" in page
    assert page.count("Not started: its 10 minutes start at its first delivery") == 2
    await deliver(client, t.client_token)
    page = (await client.get("/app/services/openai")).text
    assert "Expires 2026-03-01 12:10 UTC" in page
    clock.advance(minutes=10)
    page = (await client.get("/app/services/openai")).text
    assert "Expired 2026-03-01 12:10 UTC" in page and ">expired</span>" in page
    assert "1 usable of 2" in page and "Keys run out at <strong>2026-03-01 12:20 UTC" in page
    # Restart: the expired key gets a new lifetime from its next delivery
    assert 'value="1">\n          <button type="submit" class="secondary">Restart' in page
    r = await post_form(client, f"/app/services/openai/keys/{a}", {"active": "1"})
    assert r.status_code == 303
    listed = await api_keys(client, t)
    assert (listed[0]["state"], listed[0]["expires_at"]) == ("active", None)
    assert current_on((await client.get("/app/services/openai")).text) == b
    assert (await deliver(client, t.client_token)).json()["meta"]["key_id"] == b
    clock.advance(minutes=10)
    assert (await deliver(client, t.client_token)).json()["meta"]["key_id"] == a  # anew
    clock.advance(minutes=10)
    page = (await client.get("/app/services/openai")).text
    assert "No usable key" in page and "0 usable of 2" in page
    assert (await deliver(client, t.client_token)).status_code == 503


async def test_the_limit_warning_field(client):
    t = await new_tenant(client)
    await sign_in(client, t.admin_token)
    form = await client.get("/app/new-service")
    assert 'name="limit_warning_percent"' in form.text and 'value="80"' in form.text
    r = await post_form(client, "/app/new-service", {"slug": "openai", "policy": "usage",
                        "max_daily_requests": "100", "limit_warning_percent": "100"})  # fmt: skip
    assert r.status_code == 400
    assert "between 1 and 99" in field_errors(r)["limit_warning_percent"]
    r = await post_form(client, "/app/new-service", {"slug": "openai", "policy": "usage",
                        "max_daily_requests": "100", "limit_warning_percent": "60"})  # fmt: skip
    assert r.status_code == 303
    page = (await client.get("/app/services/openai")).text
    assert "100, warning at 60%" in page
    edit = await client.get("/app/services/openai/edit")
    assert re.search(r'id="limit_warning_percent" name="limit_warning_percent" [^>]*value="60"',
                     edit.text)  # fmt: skip
    r = await post_form(client, "/app/services/openai/edit", {"policy": "usage",
                        "max_daily_requests": "100", "limit_warning_percent": ""})  # fmt: skip
    assert r.status_code == 303
    service = (await client.get("/v1/services/openai", headers=t.auth)).json()
    assert service["limit_warning_percent"] is None
