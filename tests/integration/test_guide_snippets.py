"""The hosted service's guide (shared/seed/api-guide.txt): its own snippets, host changed only."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from rotator.cli.processes import GUIDE_DEMO_TOKEN
from rotator.store import tenants
from rotator.store.connection import Durability
from tests import system_packages
from tests.live import env_for, live_api
from tests.lua import seed

SECRET = "sk-proj-guideguideguideguideguidezzZZ"


@pytest.fixture
async def live(valkey, redis, settings, master_key_b64):
    """A tenant whose client token is the guide's demo token (imported, as a tenant moving
    over keeps the token its clients send): the snippets run with a hosted token."""
    t = await seed.tenant(redis)
    await tenants.issue_client_token(redis, Durability(), t.tenant, GUIDE_DEMO_TOKEN)
    await seed.service(redis, t, "openai", policy="manual", max_daily=10000)
    await seed.key(redis, settings.keyring, t, "openai", SECRET, label="Primary")
    with live_api(env_for(valkey.url, master_key_b64)) as base:
        yield base, GUIDE_DEMO_TOKEN, t


def check_masked(data: dict) -> None:
    assert data["service"] == "openai" and data["key_label"] == "Primary"
    assert data["masked"] is True and data["key"].startswith("sk-") and data["key"].endswith("zzZZ")
    assert SECRET not in data["key"]
    assert data["policy"] == "manual" and data["limits"] == {"max_daily_requests": 10000}
    assert isinstance(data["meta"]["key_id"], int) and data["meta"]["usage_today"] >= 1


def test_curl_snippet(live):
    curl = system_packages.require("curl", "curl")
    base, token, _ = live
    url = f"{base}/keyrotator/api/next.php?service=openai&token={token}&mask=1"
    out = subprocess.run([curl, "-s", url], capture_output=True, check=True, text=True).stdout
    check_masked(json.loads(out))


def test_python_requests_snippet(live):
    base, token, _ = live
    code = textwrap.dedent(f"""
        import json, requests
        r = requests.get("{base}/keyrotator/api/next.php", params={{"service":"openai","token":"{token}","mask":"1"}})
        data = r.json()
        api_key = data["key"]
        print(json.dumps(data))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, text=True)
    check_masked(json.loads(out.stdout))


@pytest.mark.timeout(300)  # installing nodejs may take minutes on a fresh machine
def test_node_fetch_snippet(live):
    node = system_packages.require("node", "nodejs")
    base, token, _ = live
    code = textwrap.dedent(f"""
        const res = await fetch("{base}/keyrotator/api/next.php?service=openai&token={token}&mask=1");
        const data = await res.json();
        const apiKey = data.key; // masked if mask=1 (recommended)
        console.log(JSON.stringify(data));
    """)
    out = subprocess.run(
        [node, "--input-type=module", "-e", code], capture_output=True, check=True, text=True
    )
    check_masked(json.loads(out.stdout))


def test_guide_error_bodies(live):
    import httpx

    base, token, _ = live
    url = base + "/keyrotator/api/next.php"
    cases = [
        ({"service": "openai"}, 400, "missing token or service"),
        ({"service": "openai", "token": "nope"}, 403, "invalid token"),
        ({"service": "nope", "token": token}, 404, "unknown service"),
    ]
    for params, status, error in cases:
        r = httpx.get(url, params=params)
        assert (r.status_code, r.json()) == (status, {"error": error})
