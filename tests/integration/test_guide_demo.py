"""The hosted guide's "Try the demo" line against `rotator run` (#17 item 2): its demo tenant
accepts the guide's demo token, so the line works with only the host changed, over https with
the dev certificate, and the demo stays masked and throttled."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rotator.cli.processes import GUIDE_DEMO_TOKEN
from rotator.embedded import free_port
from tests import system_packages
from tests.integration.cli_support import base_env
from tests.integration.https_support import dev_certificate
from tests.integration.test_run_lifecycle import rotator_run

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

HOSTED_HOST = "botinbinary.com"
DEMO_LINE = (
    'curl -s "https://botinbinary.com/keyrotator/api/next.php?service=openai'
    '&token=52yseGC525k55YpyHUeAdoYrb77WYJ037sPHhQ&mask=1"'
)
"""The guide's line (shared/seed/api-guide.txt, "Try the demo"), verbatim."""


def test_the_constant_is_the_guides_token():
    assert f"token={GUIDE_DEMO_TOKEN}&" in DEMO_LINE


@pytest.mark.timeout(120)
def test_the_guides_demo_line_works_with_only_the_host_changed(tmp_path):
    curl = system_packages.require("curl", "curl")
    certificate = dev_certificate(tmp_path / "tls")
    port = free_port()
    env = base_env(
        ROTATOR_DATA_DIR=str(tmp_path / "var"), ROTATOR_PORT=str(port),
        ROTATOR_TLS_CERT_FILE=str(certificate.cert), ROTATOR_TLS_KEY_FILE=str(certificate.key),
        ROTATOR_DEMO_BURST="3",
    )  # fmt: skip
    line = DEMO_LINE.replace(HOSTED_HOST, f"localhost:{port}")
    assert line.replace(f"localhost:{port}", HOSTED_HOST) == DEMO_LINE  # nothing else changed
    shell = {
        "PATH": f"{curl.rsplit('/', 1)[0]}:/usr/bin:/bin",
        "CURL_CA_BUNDLE": str(certificate.ca),
    }

    def run_line(text: str) -> dict:
        done = subprocess.run(
            ["sh", "-c", text], capture_output=True, text=True, check=True, env=shell
        )
        return json.loads(done.stdout)

    with rotator_run(tmp_path, env) as run:
        assert f"demo client token: {GUIDE_DEMO_TOKEN}" in run.banner
        data = run_line(line)
        assert data["service"] == "openai" and data["masked"] is True, data
        assert data["key"].startswith("sk-") and "•" in data["key"]
        # masked even when the client asks for the key in clear
        assert run_line(line.replace("&mask=1", ""))["masked"] is True
        # and throttled per client address: a burst of 3, then one a second
        answers = [run_line(line) for _ in range(4)]
        assert {"error": "demo rate limit"} in answers, answers
