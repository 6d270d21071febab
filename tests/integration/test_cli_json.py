"""`rotator ... --json` prints exactly the API's JSON, for every command.

Writes: two twin tenants get the same sequence of changes, one through the CLI (a
subprocess), one through the API; the answers must be equal once what differs by nature is
replaced (the tenant's id, tokens and secrets, times: the CLI runs on the wall clock, the
test app on a fake one). Key and app ids come from a per-tenant counter, so the twins'
ids match. Reads: the CLI's output for the CLI twin, byte for byte the API's answer for it.

A command missing from these tables fails the last test, so a new command brings its
check with it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rotator.cli import MANAGEMENT_COMMANDS
from tests.integration.cli_support import rotator
from tests.integration.management import OPERATOR, SECRET

COMMANDS = MANAGEMENT_COMMANDS
SECRET2 = "sk-proj-second-0123456789abcdefghijklmn"
SECRET3 = "sk-ant-third-0123456789abcdefghijklmnop"
HOOK = "http://127.0.0.1:9/hook"

# (CLI arguments after TENANT's position is filled, stdin, API method, path, body)
# "{t}" is the twin's tenant id; keys and apps share the tenant's id counter (keys 1-3,
# apps 4-5); the tenant admin's token goes with every API call but the
# operator's (/v1/admin/...), which go with the operator token.
WRITES: list[tuple[tuple[str, ...], str | None, str, str, Any]] = [
    (("tenant", "update", "{t}", "--name", "Twin Ltd", "--allow", "192.0.2.0/24",
      "--webhook-url", HOOK), None,
     "PATCH", "/v1/tenant", {"name": "Twin Ltd", "ip_allowlist": ["192.0.2.0/24"],
                             "webhook_url": HOOK}),
    (("tenant", "client-token", "{t}"), None, "POST", "/v1/tenant/client-token", None),
    (("service", "create", "{t}", "openai", "--policy", "manual", "--max-daily", "10"), None,
     "POST", "/v1/services", {"slug": "openai", "policy": "manual", "max_daily_requests": 10}),
    (("service", "create", "{t}", "spare", "--policy", "usage"), None,
     "POST", "/v1/services", {"slug": "spare", "policy": "usage"}),
    (("service", "update", "{t}", "openai", "--max-daily", "20", "--warn-percent", "50"), None,
     "PATCH", "/v1/services/openai", {"max_daily_requests": 20, "limit_warning_percent": 50}),
    (("service", "update", "{t}", "openai", "--cooldown-seconds", "30", "--quota-reset-utc",
      "07:30", "--failure-threshold", "default"), None,
     "PATCH", "/v1/services/openai", {"cooldown_seconds": 30, "quota_reset_utc": "07:30",
                                      "failure_threshold": None}),
    (("key", "add", "{t}", "openai", "--label", "Primary", "--max-daily", "5"), SECRET,
     "POST", "/v1/services/openai/keys",
     {"label": "Primary", "secret": SECRET, "max_daily_requests": 5}),
    (("key", "add-file", "{t}", "openai", "-"), f"{SECRET2}\n{SECRET3}\tBackup\n",
     "POST", "/v1/services/openai/keys/bulk",
     {"keys": [{"secret": SECRET2}, {"secret": SECRET3, "label": "Backup"}]}),
    (("key", "update", "{t}", "openai", "1", "--label", "First", "--max-daily", "none"), None,
     "PATCH", "/v1/services/openai/keys/1", {"label": "First", "max_daily_requests": None}),
    (("key", "disable", "{t}", "openai", "2"), None,
     "PATCH", "/v1/services/openai/keys/2", {"active": False}),
    (("key", "enable", "{t}", "openai", "2"), None,
     "PATCH", "/v1/services/openai/keys/2", {"active": True}),
    (("key", "move", "{t}", "openai", "1", "--to", "end"), None,
     "POST", "/v1/services/openai/keys/1/move", {"to": "end"}),
    (("service", "rotate", "{t}", "openai"), None, "POST", "/v1/services/openai/rotate", None),
    (("key", "delete", "{t}", "openai", "3"), None, "DELETE", "/v1/services/openai/keys/3", None),
    (("service", "delete", "{t}", "spare"), None, "DELETE", "/v1/services/spare", None),
    (("app", "create", "{t}", "web", "--allow", "10.0.0.0/8", "--max-daily", "5"), None,
     "POST", "/v1/apps", {"name": "web", "ip_allowlist": ["10.0.0.0/8"],
                          "max_daily_requests": 5}),
    (("app", "create", "{t}", "batch"), None, "POST", "/v1/apps", {"name": "batch"}),
    (("app", "update", "{t}", "4", "--name", "web2", "--allow-any", "--max-daily", "none"),
     None, "PATCH", "/v1/apps/4", {"name": "web2", "ip_allowlist": [],
                                   "max_daily_requests": None}),
    (("app", "suspend", "{t}", "4"), None, "PATCH", "/v1/apps/4", {"suspended": True}),
    (("app", "resume", "{t}", "4"), None, "PATCH", "/v1/apps/4", {"suspended": False}),
    (("app", "token", "{t}", "4"), None, "POST", "/v1/apps/4/token", None),
    (("app", "delete", "{t}", "5"), None, "DELETE", "/v1/apps/5", None),
    (("webhook", "test", "{t}"), None, "POST", "/v1/webhooks/test", None),
    (("tenant", "rename", "{t}", "twin-cli"), None, "PATCH", "/v1/admin/tenants/{t}",
     {"name": "twin-api"}),
    (("tenant", "suspend", "{t}"), None, "PATCH", "/v1/admin/tenants/{t}", {"suspended": True}),
    (("tenant", "resume", "{t}"), None, "PATCH", "/v1/admin/tenants/{t}", {"suspended": False}),
    (("tenant", "admin-token", "{t}"), None, "POST", "/v1/admin/tenants/{t}/admin-token", None),
]  # fmt: skip

# the CLI twin's reads, compared byte for byte with the API's answer for it
READS: list[tuple[tuple[str, ...], str]] = [
    (("tenant", "list"), "/v1/admin/tenants"),
    (("tenant", "info", "{t}"), "/v1/admin/tenants/{t}"),
    (("tenant", "show", "{t}"), "/v1/tenant"),
    (("service", "list", "{t}"), "/v1/services"),
    (("service", "show", "{t}", "openai"), "/v1/services/openai"),
    (("key", "list", "{t}", "openai"), "/v1/services/openai/keys"),
    (("app", "list", "{t}"), "/v1/apps"),
    (("app", "show", "{t}", "4"), "/v1/apps/4"),
    (("webhook", "deliveries", "{t}", "--limit", "5"), "/v1/webhooks/deliveries?limit=5"),
    (("audit", "--tenant", "{t}", "--limit", "5"), "/v1/audit?tenant={t}&limit=5"),
]
CLOCKED_READS: list[tuple[tuple[str, ...], str]] = [
    # dated by the caller's clock: equal once dates are set aside
    (("service", "usage", "{t}", "openai", "--days", "3"), "/v1/services/openai/usage?days=3"),
]
LAST: list[tuple[tuple[str, ...], str, str]] = [
    (
        ("tenant", "delete", "{t}", "--confirm", "{t}"),
        "DELETE",
        "/v1/admin/tenants/{t}?confirm={t}",
    ),
]

VARIABLE = [
    (re.compile(r"\bk(ta|rc|ra)_[A-Za-z0-9_-]+"), r"<k\1 token>"),
    (re.compile(r"\bevt_[0-9a-f]+_\d+-\d+"), "<event id>"),  # a stream id: Redis TIME
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=]+"), "<whsec>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"), "<time>"),
    (re.compile(r"\d{4}-\d\d-\d\d"), "<date>"),
    (re.compile(r"\btwin-(cli|api)\b"), "<twin>"),  # tenant names are unique
]


def normal(text: str, tenant: str) -> Any:
    """`text` with what differs between twins by nature replaced."""
    for pattern, replacement in VARIABLE:
        text = pattern.sub(replacement, text)
    text = text.replace(tenant, "<tenant>")
    return json.loads(text) if text.strip() else None


def fill(parts: tuple[str, ...] | str, tenant: str) -> Any:
    if isinstance(parts, str):
        return parts.replace("{t}", tenant)
    return tuple(p.replace("{t}", tenant) for p in parts)


def cli_json(args: tuple[str, ...], env: dict[str, str], stdin: str | None = None) -> str:
    done = rotator(*args, "--json", env=env, stdin=stdin)
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout


async def api_call(client, method: str, path: str, body: Any, admin: str) -> str:
    auth = OPERATOR if path.startswith("/v1/admin/") else {"Authorization": f"Bearer {admin}"}
    r = await client.request(method, path, json=body, headers=auth)
    assert r.status_code < 300, (method, path, r.status_code, r.text)
    return r.text


async def test_every_command_prints_the_apis_json(cli_env, client):
    env = {**cli_env, "ROTATOR_WEBHOOK_ALLOW_PRIVATE": "1"}
    by_cli = json.loads(cli_json(("tenant", "create", "twin-cli"), env))
    r = await client.post("/v1/admin/tenants", json={"name": "twin-api"}, headers=OPERATOR)
    by_api = r.json()
    assert normal(json.dumps(by_cli), by_cli["id"]) == normal(r.text, by_api["id"])
    cli_admin, api_admin = by_cli["admin_token"], by_api["admin_token"]

    for args, stdin, method, path, body in WRITES:
        shown = cli_json(fill(args, by_cli["id"]), env, stdin)
        answer = await api_call(client, method, fill(path, by_api["id"]), body, api_admin)
        assert normal(shown, by_cli["id"]) == normal(answer, by_api["id"]), args
        if args[:2] == ("tenant", "admin-token"):
            cli_admin, api_admin = (
                json.loads(shown)["admin_token"],
                json.loads(answer)["admin_token"],
            )

    for args, path in READS:
        shown = cli_json(fill(args, by_cli["id"]), env)
        answer = await api_call(client, "GET", fill(path, by_cli["id"]), None, cli_admin)
        assert shown.strip() == answer, args
    for args, path in CLOCKED_READS:
        shown = cli_json(fill(args, by_cli["id"]), env)
        answer = await api_call(client, "GET", fill(path, by_cli["id"]), None, cli_admin)
        assert normal(shown, by_cli["id"]) == normal(answer, by_cli["id"]), args

    for args, method, path in LAST:
        shown = cli_json(fill(args, by_cli["id"]), env)
        answer = await api_call(client, method, fill(path, by_api["id"]), None, api_admin)
        assert normal(shown, by_cli["id"]) == normal(answer, by_api["id"]), args


def test_every_command_is_checked_here():
    checked = {
        args[:2]
        for args in [
            ("tenant", "create"),
            ("", "import"),  # test_import.py::test_the_api_imports_and_answers_as_the_cli
            ("", "audit"),  # in READS (a top-level command: no group)
            *(w[0] for w in WRITES),
            *(r[0] for r in READS + CLOCKED_READS),
            *(last[0] for last in LAST),
        ]
    }
    every = {(c.group, c.name) for c in COMMANDS}
    assert every - checked == set(), "commands whose --json no test compares with the API"
