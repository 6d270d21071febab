"""https, as shipped: deploy/nginx.conf run for real with a `make dev-cert` certificate
(TLS, HSTS, http redirected to https but for health checks), and `rotator run` serving
https itself with ROTATOR_TLS_CERT_FILE / ROTATOR_TLS_KEY_FILE. Clients verify the
certificate against the dev CA, as the docs tell users to."""

from __future__ import annotations

import json
import re
import subprocess
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from rotator.client import Client
from rotator.client.errors import Unreachable
from rotator.embedded import free_port
from tests.conftest import OPERATOR_TOKEN
from tests.integration.cli_support import base_env, rotator
from tests.integration.console_support import csrf_of, set_cookie_headers
from tests.integration.https_support import HttpsStack, dev_certificate, https_stack, trusting
from tests.integration.test_multiprocess import nginx_binary  # noqa: F401  (a fixture)
from tests.integration.test_run_lifecycle import rotator_run

SECRET = "sk-proj-httpshttpshttpshttpszzZZ"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


@pytest.fixture
def stack(nginx_binary, settings, master_key_b64, tmp_path, redis):  # noqa: F811
    with https_stack(nginx_binary, settings, master_key_b64, tmp_path) as s:
        yield s


def tenant(stack: HttpsStack) -> dict:
    """A tenant with service openai and one key, made over https: its tokens."""
    with httpx.Client(base_url=stack.https_url, verify=trusting(stack.certificate.ca)) as http:
        r = http.post("/v1/admin/tenants", json={"name": "tls"}, headers=OPERATOR)
        assert r.status_code == 201, r.text
        created = r.json()
        admin = {"Authorization": f"Bearer {created['admin_token']}"}
        r = http.post("/v1/services", json={"slug": "openai", "policy": "manual"}, headers=admin)
        assert r.status_code == 201, r.text
        r = http.post(
            "/v1/services/openai/keys", json={"label": "Primary", "secret": SECRET}, headers=admin
        )
        assert r.status_code == 201, r.text
    return created


@pytest.mark.backends("single", "cluster")
def test_nginx_serves_the_guides_curl_over_verified_https_with_hsts(stack):
    token = tenant(stack)["client_token"]
    url = f"{stack.https_url}/keyrotator/api/next.php?service=openai&token={token}&mask=1"
    # the guide's line, verbatim but for the host; CURL_CA_BUNDLE trusts the dev CA
    env = {"PATH": "/usr/bin:/bin", "CURL_CA_BUNDLE": str(stack.certificate.ca)}
    out = subprocess.run(
        ["curl", "-s", "-D", "-", url], capture_output=True, text=True, env=env, check=True
    ).stdout
    head, _, body = out.partition("\n\n")  # text mode: \r\n reads as \n
    assert head.startswith("HTTP/1.1 200")
    assert re.search(r"(?im)^strict-transport-security: max-age=31536000$", head), head
    assert not re.search(r"(?im)^server: nginx/", head)  # no version for scanners
    data = json.loads(body)
    assert data["masked"] is True and data["key"].endswith("zzZZ") and SECRET not in body

    # without trusting the dev CA, the certificate is refused: verification is real
    untrusted = subprocess.run(["curl", "-s", url], capture_output=True, env={"PATH": "/usr/bin"})
    assert untrusted.returncode == 60  # "peer certificate cannot be authenticated"


def test_plain_http_is_redirected_except_health_checks(stack):
    with httpx.Client(base_url=stack.http_url, follow_redirects=False) as http:
        health = http.get("/healthz")
        assert health.status_code == 200  # answered on http: probes that speak no TLS
        for method, path in (
            ("GET", "/keyrotator/api/next.php?service=openai&token=abc&mask=1"),
            ("GET", "/app"),
            ("POST", "/v1/admin/tenants"),
        ):
            r = http.request(method, path, headers=OPERATOR)
            assert r.status_code == 308, (method, path)  # 308: a POST stays a POST
            host = stack.http_url.removeprefix("http://").partition(":")[0]
            assert r.headers["location"] == f"https://{host}{path}"
            assert "key" not in r.text  # the API never saw it
    with httpx.Client(verify=trusting(stack.certificate.ca)) as https:
        r = https.get(stack.https_url + "/healthz")
        assert r.status_code == 200 and "max-age=31536000" in r.headers["strict-transport-security"]
        # the API learns the request came over https (X-Forwarded-Proto from nginx): the
        # console's session cookie is Secure
        admin_token = tenant(stack)["admin_token"]
        page = https.get(stack.https_url + "/app/signin")
        signed_in = https.post(
            stack.https_url + "/app/signin",
            data={"token": admin_token, "_csrf_token": csrf_of(page)},
        )
        session = set_cookie_headers(signed_in, "kr_session")
        assert signed_in.status_code == 303 and session, signed_in.text
        assert "; secure" in session[0].lower()


@pytest.mark.timeout(120)
def test_rotator_run_serves_https_itself_with_the_dev_certificate(tmp_path):
    certificate = dev_certificate(tmp_path / "tls")
    port = free_port()
    env = base_env(
        ROTATOR_DATA_DIR=str(tmp_path / "var"), ROTATOR_PORT=str(port),
        ROTATOR_TLS_CERT_FILE=str(certificate.cert), ROTATOR_TLS_KEY_FILE=str(certificate.key),
    )  # fmt: skip
    with rotator_run(tmp_path, env) as run:
        # the banner's URLs are https, with how to trust the dev certificate
        assert f"keyrotator is up on https://127.0.0.1:{port}" in run.banner
        assert f"export CURL_CA_BUNDLE={certificate.ca.resolve()}" in run.banner
        assert run.demo_url.startswith(f"https://127.0.0.1:{port}/v1/next?")
        done = subprocess.run(
            ["curl", "-s", run.demo_url], capture_output=True, text=True, check=True,
            env={"PATH": "/usr/bin:/bin", "CURL_CA_BUNDLE": str(certificate.ca)},
        )  # fmt: skip
        assert json.loads(done.stdout)["masked"] is True
        with httpx.Client(verify=trusting(certificate.ca)) as https:
            assert https.get(f"https://localhost:{port}/healthz").status_code == 200
        # our Python client trusts the dev CA when told, and says why when it is not
        token = parse_qs(urlsplit(run.demo_url).query)["token"][0]
        base = f"https://localhost:{port}"
        with Client(base, token, verify=certificate.ca) as client:
            assert client.next_key("openai").masked is True
        with Client(base, token) as client, pytest.raises(Unreachable) as refused:
            client.next_key("openai")
        assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value), refused.value
        with pytest.raises(httpx.HTTPError):  # plain http to the https port is no answer
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    assert f"serving https://127.0.0.1:{port}" in run.log.read_text()


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"ROTATOR_TLS_CERT_FILE": "cert"}, "ROTATOR_TLS_KEY_FILE: required with "
                                            "ROTATOR_TLS_CERT_FILE"),
        ({"ROTATOR_TLS_KEY_FILE": "key"}, "ROTATOR_TLS_CERT_FILE: required with "
                                          "ROTATOR_TLS_KEY_FILE"),
        ({"ROTATOR_TLS_CERT_FILE": "nope.pem", "ROTATOR_TLS_KEY_FILE": "key"},
         "ROTATOR_TLS_CERT_FILE: nope.pem is not a readable file"),
        ({"ROTATOR_TLS_CERT_FILE": "ca", "ROTATOR_TLS_KEY_FILE": "key"},
         "ROTATOR_TLS_CERT_FILE: cannot use"),
    ],
)  # fmt: skip
def test_tls_settings_are_checked_at_start_with_one_line(tmp_path, given, message):
    certificate = dev_certificate(tmp_path)
    files = {"cert": certificate.cert, "key": certificate.key, "ca": certificate.ca}
    env = base_env(
        ROTATOR_DATA_DIR=str(tmp_path / "var"),
        **{name: str(files.get(value, value)) for name, value in given.items()},
    )
    r = rotator("run", env=env, timeout=30)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith(f"rotator: {message}"), r.stderr
    assert r.stderr.count("\n") == 1
    assert "PRIVATE KEY" not in r.stderr
