"""Every management operation of the API exists in the CLI and in the console.

The API's OpenAPI document is the list of operations. Each CLI command declares the
operations it does (`Command.api`); the console's pages are mapped to them below. The
checks:

- every API operation has a CLI command, and every operation a command names exists;
- every flag of a command sets a field of one of its operations (a path or query
  parameter, or a property of the request body), so a refusal the store words with the
  API's field name can be said with the command's flag;
- every API operation has a console route, the route exists, and the console handler
  reaches the same store functions as the API handler (read from their code, following
  calls into helpers of the same module): the same function means the same rules.

How strong the console check is, and why: it proves the route exists and calls the rule,
not that the page shows every field (the console's HTTP and browser tests do that, per
page). A mapping by hand of each route is cheap to keep; driving every form from this
test would duplicate tests/integration/test_console_*.py.
"""

from __future__ import annotations

import ast
import base64
import inspect
import json
import os
import re
import textwrap
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from litestar.serialization import encode_json

from rotator.api.app import create_app
from rotator.cli import MANAGEMENT_COMMANDS
from rotator.cli.framework import TENANT, Command
from rotator.crypto import KeyRing
from rotator.settings import Settings

COMMANDS: list[Command] = MANAGEMENT_COMMANDS

CLI_REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
NOT_MANAGEMENT = {
    "GET /v1/next": "the delivery call: a client app's, with a client token the CLI never "
    "holds (only hashes are stored); an operator's smoke test is the curl line in README.md",
    "GET /keyrotator/api/next.php": "the hosted guide's path for GET /v1/next",
    "GET /metrics": "read by Prometheus, not by people: the Grafana dashboard in deploy/ "
    "(docs/operations.md#metrics) is where an operator looks",
    "GET /readyz": "asked by a load balancer; `rotator worker --check` and the healthchecks "
    "in docker-compose.yml are the operator's probes",
    "HEAD /readyz": "GET /readyz for probes that send HEAD",
    "POST /v1/report": "a client app's report of what the provider answered a key it was "
    "delivered, with the same client or app token as GET /v1/next; a person sees its effect "
    "in key listings (`rotator key list`, the console) and enables a disabled key there",
}

CONSOLE: dict[str, tuple[str, ...]] = {
    # API operation: the console routes ("METHOD /path") doing it
    "POST /v1/admin/tenants": ("POST /app/operator/tenants",),
    "GET /v1/admin/tenants": ("GET /app/operator",),
    "GET /v1/admin/tenants/{tenant_id}": ("GET /app/operator/tenants/{tenant}",),
    "PATCH /v1/admin/tenants/{tenant_id}": (
        "POST /app/operator/tenants/{tenant}/rename",
        "POST /app/operator/tenants/{tenant}/suspend",
        "POST /app/operator/tenants/{tenant}/resume",
    ),
    "DELETE /v1/admin/tenants/{tenant_id}": ("POST /app/operator/tenants/{tenant}/delete",),
    "POST /v1/admin/tenants/{tenant_id}/admin-token": (
        "POST /app/operator/tenants/{tenant}/admin-token",
    ),
    "GET /v1/tenant": ("GET /app/settings",),
    "PATCH /v1/tenant": ("POST /app/settings/allowlist", "POST /app/settings/webhook"),
    "POST /v1/tenant/client-token": ("POST /app/settings/client-token",),
    "POST /v1/tenant/admin-token": ("POST /app/settings/admin-token",),
    "GET /v1/services": ("GET /app/services",),
    "POST /v1/services": ("POST /app/new-service",),
    "GET /v1/services/{slug}": ("GET /app/services/{slug}",),
    "PATCH /v1/services/{slug}": ("POST /app/services/{slug}/edit",),
    "DELETE /v1/services/{slug}": ("POST /app/services/{slug}/delete",),
    "POST /v1/services/{slug}/rotate": ("POST /app/services/{slug}/rotate",),
    "GET /v1/services/{slug}/usage": ("GET /app/services/{slug}",),
    "GET /v1/services/{slug}/keys": ("GET /app/services/{slug}",),
    "POST /v1/services/{slug}/keys": ("POST /app/services/{slug}/keys",),
    "POST /v1/services/{slug}/keys/bulk": ("POST /app/services/{slug}/keys/bulk",),
    "PATCH /v1/services/{slug}/keys/{key_id}": ("POST /app/services/{slug}/keys/{key_id}",),
    "DELETE /v1/services/{slug}/keys/{key_id}": ("POST /app/services/{slug}/keys/{key_id}/delete",),
    "POST /v1/services/{slug}/keys/{key_id}/move": (
        "POST /app/services/{slug}/keys/{key_id}/move",
    ),
    "GET /v1/apps": ("GET /app/apps",),
    "POST /v1/apps": ("POST /app/apps",),
    "GET /v1/apps/{app_id}": ("GET /app/apps/{app_id}",),
    "PATCH /v1/apps/{app_id}": (
        "POST /app/apps/{app_id}",
        "POST /app/apps/{app_id}/suspend",
        "POST /app/apps/{app_id}/resume",
    ),
    "DELETE /v1/apps/{app_id}": ("POST /app/apps/{app_id}/delete",),
    "POST /v1/apps/{app_id}/token": ("POST /app/apps/{app_id}/token",),
    "GET /v1/webhooks/deliveries": ("GET /app/settings/deliveries",),
    "POST /v1/webhooks/test": ("POST /app/settings/webhook/test",),
    "POST /v1/import": ("POST /app/import",),
    "GET /v1/audit": ("GET /app/activity", "GET /app/operator/activity"),
}

CLI_ONLY_FIELDS = {
    # (command, the arg's store field): why it names no field of the API's request
    ("key add-file", "file"): "the file's lines become the request's `keys` list",
    ("import", "file"): "the file's rows become the request's `rows` list",
}
TENANT_ARG = "tenant"
"""Every command's TENANT: the path's tenant_id for the operator, the token's tenant for a
tenant admin (the API takes it from the token, the CLI from this argument)."""


@pytest.fixture(scope="module")
def app() -> Any:
    ring = KeyRing.parse(base64.b64encode(os.urandom(32)).decode())
    return create_app(Settings(redis_url="redis://127.0.0.1:1", master_key=ring))


@pytest.fixture(scope="module")
def document(app) -> dict[str, Any]:
    return json.loads(encode_json(app.openapi_schema.to_schema()))


@pytest.fixture(scope="module")
def operations(document) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": op
        for path, ops in document["paths"].items()
        for method, op in ops.items()
    }


@pytest.fixture(scope="module")
def handlers(app) -> dict[str, Callable[..., Any]]:
    """ "METHOD /path" of every route of the app (API and console): its handler function."""
    found = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            for method in handler.http_methods:
                if method != "OPTIONS":
                    # "{slug:str}" -> "{slug}", as the OpenAPI document spells it
                    found[f"{method} {TYPED.sub('}', route.path)}"] = handler.fn
    return found


TYPED = re.compile(r":\w+}")
"""A path parameter's type in a route's path, `{slug:str}`: the document has `{slug}`."""


def management(operations: dict[str, Any]) -> set[str]:
    return set(operations) - set(NOT_MANAGEMENT)


def test_every_api_operation_has_a_cli_command(operations):
    declared = {op for command in COMMANDS for op in command.api}
    missing = management(operations) - declared
    assert not missing, f"API operations without a CLI command: {sorted(missing)}"


def test_every_command_names_real_operations(operations):
    for command in COMMANDS:
        assert command.api, f"{command.title} declares no API operation"
        for op in command.api:
            assert op in operations, f"{command.title}: no operation {op}"


def request_fields(document: dict[str, Any], op: dict[str, Any]) -> set[str]:
    """The names an operation takes: its parameters and its body's properties."""
    names = {p["name"] for p in op.get("parameters", ())}
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    schema = body.get("schema", {})
    # an optional body (`X | None`) is oneOf X or null
    schema = next((s for s in schema.get("oneOf", ()) if "$ref" in s), schema)
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return names | set(schema.get("properties", {}))


def test_every_flag_sets_a_field_of_its_operation(document, operations):
    """A flag's store field is a field of the API's request, so the store's refusal of
    that field (InvalidField) is said with this flag (`Command.flag_of`)."""
    for command in COMMANDS:
        name = command.title
        fields = set().union(*(request_fields(document, operations[op]) for op in command.api))
        for a in command.args:
            if a.store_field == TENANT_ARG or (name, a.store_field) in CLI_ONLY_FIELDS:
                continue
            assert a.store_field in fields, (
                f"{name} {a.shown}: sets {a.store_field!r}, which none of {command.api} "
                f"takes ({sorted(fields)})"
            )


def test_every_command_for_a_tenant_takes_its_id_or_name():
    """TENANT (resolved by `Context.tenant`: an id or a unique name) comes first in every
    command but those that act on no existing tenant (`audit` reads every tenant's log, one
    tenant's with --tenant)."""
    no_tenant = {("tenant", "create"), ("tenant", "list"), ("", "audit")}
    for command in COMMANDS:
        if (command.group, command.name) in no_tenant:
            assert TENANT not in command.args
        else:
            assert command.args[0] is TENANT, command.title


def test_the_cli_reference_lists_every_operations_command():
    """docs/cli.md's table "API operation | command" is what the commands declare."""
    by_operation: dict[str, list[str]] = {}
    for command in COMMANDS:
        for op in command.api:
            by_operation.setdefault(op, []).append(command.title)
    expected = [
        f"| `{op}` | " + ", ".join(f"`{name}`" for name in names) + " |"
        for op, names in by_operation.items()
    ]
    rows = [line for line in CLI_REFERENCE.read_text().splitlines() if line.startswith("| `")]
    assert rows == expected, "regenerate the table of docs/cli.md:\n" + "\n".join(expected)


def test_a_refusal_names_the_flag_not_the_api_field():
    by_name = {f"{c.group} {c.name}": c for c in COMMANDS}
    assert by_name["service create"].flag_of("max_daily_requests") == "--max-daily"
    assert by_name["service update"].flag_of("key_ttl_minutes") == "--ttl-minutes"
    assert by_name["app update"].flag_of("ip_allowlist") == "--allow"
    assert by_name["tenant update"].flag_of("webhook_secret") == "--webhook-secret-stdin"
    assert by_name["service create"].flag_of("slug") == "SLUG"


def store_calls(fn: Callable[..., Any], seen: set[str] | None = None) -> set[str]:
    """The rotator.store functions `fn` calls (directly or through StoreContext.call), itself
    or through functions of its own module (page helpers), as "module.function"."""
    seen = set() if seen is None else seen
    fn = inspect.unwrap(fn)
    if fn.__qualname__ in seen:
        return set()
    seen.add(fn.__qualname__)
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    found: set[str] = set()
    scope = fn.__globals__
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        called = node.func
        if isinstance(called, ast.Attribute) and called.attr == "call" and node.args:
            called = node.args[0]  # StoreContext.call(store_function, ...)
        target: Any = None
        if isinstance(called, ast.Attribute) and isinstance(called.value, ast.Name):
            owner = scope.get(called.value.id)
            if isinstance(owner, types.ModuleType):
                target = getattr(owner, called.attr, None)
        elif isinstance(called, ast.Name):
            target = scope.get(called.id)
        if not isinstance(target, types.FunctionType):
            continue
        module = target.__module__
        if module.startswith("rotator.store."):
            found.add(f"{module}.{target.__name__}")
        elif module == fn.__module__:
            found |= store_calls(target, seen)
    return found


def test_every_api_operation_has_a_console_route(operations):
    missing = management(operations) - set(CONSOLE)
    assert not missing, f"API operations without a console route: {sorted(missing)}"
    stale = set(CONSOLE) - set(operations)
    assert not stale, f"console map names operations the API lacks: {sorted(stale)}"


@pytest.mark.parametrize("operation", sorted(CONSOLE))
def test_the_console_calls_the_store_function_the_api_calls(operation, handlers):
    api = store_calls(handlers[operation])
    assert api, f"{operation}: its handler calls no store function"
    reached: set[str] = set()
    for route in CONSOLE[operation]:
        assert route in handlers, f"{operation}: the console has no route {route}"
        reached |= store_calls(handlers[route])
    assert api <= reached, f"{operation}: the console does not call {sorted(api - reached)}"
