"""docs/migration.md, followed end to end by scripts/migration_check.py on a fresh instance
behind the shipped nginx over https (a `make dev-cert` certificate), on a single node and
on a cluster; and the guide's client snippets are the hosted guide's, host changed only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.cli_support import rotator
from tests.integration.https_support import https_stack
from tests.integration.test_multiprocess import nginx_binary  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "migration_check.py"
GUIDE = (ROOT / "docs" / "migration.md").read_text()

# The hosted service's API guide (shared/seed/api-guide.txt), its three client snippets
HOSTED_HOST = "botinbinary.com"
HOSTED_SNIPPETS = [
    'curl -s "https://botinbinary.com/keyrotator/api/next.php?service=openai&token='
    'YOUR_TENANT_CLIENT_TOKEN&mask=1"',
    'import requests\nr = requests.get("https://botinbinary.com/keyrotator/api/next.php", '
    'params={"service":"openai","token":"YOUR_TENANT_CLIENT_TOKEN","mask":"1"})\n'
    'data = r.json()\napi_key = data["key"]',
    'const res = await fetch("https://botinbinary.com/keyrotator/api/next.php?service=openai'
    '&token=YOUR_TENANT_CLIENT_TOKEN&mask=1");\nconst data = await res.json();\n'
    "const apiKey = data.key; // masked if mask=1 (recommended)",
]


def test_the_guides_client_snippets_are_the_hosted_ones_with_the_host_changed():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import migration_check
    finally:
        sys.path.remove(str(SCRIPT.parent))
    clients = [b.body.rstrip("\n") for b in migration_check.blocks(GUIDE) if b.kind == "client"]
    assert clients == [s.replace(HOSTED_HOST, migration_check.DOC_HOST) for s in HOSTED_SNIPPETS]


@pytest.mark.timeout(240)
@pytest.mark.backends("single", "cluster")
def test_the_migration_guide_works_end_to_end_over_https(
    nginx_binary,  # noqa: F811
    settings,
    master_key_b64,
    tmp_path,
    redis,
):
    with https_stack(nginx_binary, settings, master_key_b64, tmp_path / "stack") as stack:
        work = tmp_path / "work"
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--url", stack.https_url,
             "--ca", str(stack.certificate.ca), "--workdir", str(work)],
            env=stack.env, capture_output=True, text=True, timeout=200,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "every step of docs/migration.md passed" in done.stdout
        steps = done.stdout.splitlines()
        assert sum(line.startswith("ok ") and "(client" in line for line in steps) == 3
        # steps 1 and 4 gave the instance the hosted tokens, with which the clients ran
        assert all(line.startswith("ok ") for line in steps[:-1]), steps
        assert "PENDING" not in done.stdout + done.stderr
        # the guide deleted the export (shred -u), and the keys are in the store, sealed
        assert not (work / "export.csv").exists()
        listed = rotator("key", "list", "acme", "openai", "--json", env=stack.env)
        assert [k["label"] for k in json.loads(listed.stdout)] == ["Primary", "Backup"]
        assert "AAAAAAAA" not in done.stdout + done.stderr + listed.stdout
