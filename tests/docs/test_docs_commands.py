"""Every command the documentation shows is run, against a real `rotator run`.

The fenced `sh` blocks of README.md and docs/*.md run in order, one file at a time, in
bash (`set -euo pipefail`), against one `rotator run` (embedded Valkey, API, worker) on a
free port with a temporary data dir, as a reader who typed `make run` would:

- `http://127.0.0.1:8080` becomes the instance's address; `rotator` is the venv's;
- placeholders are filled as the docs say a reader fills them: `$ROTATOR_ADMIN_TOKEN`
  (the operator token), `$DEMO_TOKEN` (the demo client token `rotator run` printed),
  `$KEY` (the master key), and `$ADMIN_TOKEN`, `$CLIENT_TOKEN`, `$APP_TOKEN` from the
  last answer of an earlier block that showed one; variables a block sets carry on to
  the file's next blocks;
- every command must exit 0 and every `curl` must get a 2xx (`--fail-with-body`);
- where a block shows an answer (`# {"service": ...}` comment lines), its output must
  hold a JSON object with every field the answer shows.

Webhook URLs are accepted without resolving their host (ROTATOR_WEBHOOK_ALLOW_PRIVATE=1:
a test machine may have no DNS, and the docs' receiver runs on loopback).

Blocks marked `<!-- docs-test: skip (reason) -->` are not run; the marker needs a reason.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rotator.embedded import free_port
from tests import system_packages
from tests.docs.markdown import DOCS, ROOT, Block, markers, sh_blocks
from tests.integration.cli_support import base_env

pytestmark = pytest.mark.timeout(300)

DOCUMENTED = "127.0.0.1:8080"
OPERATOR_TOKEN = "op-secret-0123456789abcdef"
"""The operator token of the instance: the one docs/api.md's "Try it locally" sets."""
BLOCK_TIMEOUT_S = 120

PREAMBLE = """\
set -euo pipefail
set -a                       # what a block sets, the next block sees
curl() { command curl --fail-with-body --show-error "$@"; }
"""
CAPTURED = {"kta_": "ADMIN_TOKEN", "krc_": "CLIENT_TOKEN", "kra_": "APP_TOKEN"}
TOKEN = re.compile(r"\b(kta_|krc_|kra_)[0-9a-f]{16}_[A-Za-z0-9_-]+")
SHOWN_FIELD = re.compile(r'"(\w+)"\s*:')
ANSWER = re.compile(r"#\s+\{")
"""The first line of an answer a block shows: `# {"service": ...`."""


@dataclass
class Instance:
    address: str
    env: dict[str, str]
    workdir: Path


@pytest.fixture(scope="module")
def instance(tmp_path_factory) -> Iterator[Instance]:
    system_packages.require("curl", "curl")
    base = tmp_path_factory.mktemp("docs")
    workdir = base / "work"
    workdir.mkdir()
    (workdir / ".venv").symlink_to(ROOT / ".venv")  # `.venv/bin/...` as from the checkout
    port = free_port()
    env = base_env(
        ROTATOR_DATA_DIR=str(base / "var"),
        ROTATOR_PORT=str(port),
        ROTATOR_ADMIN_TOKEN=OPERATOR_TOKEN,
        ROTATOR_WEBHOOK_ALLOW_PRIVATE="1",
        PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    )
    log = base / "run.log"
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, "-m", "rotator.cli", "run"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as run,
    ):
        try:
            banner = ""
            for line in run.stdout:  # printed once /healthz answers
                banner += line
                if "v1/next" in line:
                    break
            demo = re.search(r"demo client token: +(\S+)", banner)
            assert demo, banner + log.read_text()
            key = (base / "var" / "master.key").read_text().strip()
            yield Instance(
                f"127.0.0.1:{port}",
                {**env, "DEMO_TOKEN": demo[1], "KEY": key},
                workdir,
            )
        finally:
            run.terminate()
            run.wait(timeout=30)


def shown_fields(text: str) -> set[str]:
    """The JSON fields a block shows as its answer, in `# {...}` comment lines."""
    shown = []
    in_answer = False
    for line in text.splitlines():
        comment = line.strip()
        if ANSWER.match(comment):
            in_answer = True
        elif not comment.startswith("#  "):
            in_answer = False
        if in_answer:
            shown.append(comment)
    return set(SHOWN_FIELD.findall("\n".join(shown)))


def output_fields(output: str) -> set[str]:
    """Every field name of every JSON object in `output` (answers printed back to back)."""
    decoder = json.JSONDecoder()
    fields: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            fields.update(value)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    i = 0
    while (i := output.find("{", i)) != -1:
        try:
            value, end = decoder.raw_decode(output, i)
        except ValueError:
            i += 1
            continue
        walk(value)
        i = end
    return fields


def run_block(block: Block, env: dict[str, str], instance: Instance) -> dict[str, str]:
    """Run `block` with `env`; return the environment the next block starts from."""
    state = instance.workdir / ".state"
    script = (
        PREAMBLE + block.text.replace(DOCUMENTED, instance.address) + (f'\nenv -0 > "{state}"\n')
    )
    done = subprocess.run(
        ["bash", "-c", script],
        env=env,
        cwd=instance.workdir,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, (
        f"{block.where}: exit {done.returncode}\n--- block\n{block.text}\n--- stdout\n"
        f"{done.stdout}\n--- stderr\n{done.stderr}"
    )
    missing = shown_fields(block.text) - output_fields(done.stdout)
    assert not missing, f"{block.where}: the answer lacks the fields it shows: {missing}"
    after = dict(entry.split("=", 1) for entry in state.read_text().split("\0") if "=" in entry)
    for match in TOKEN.finditer(done.stdout):
        after[CAPTURED[match[1]]] = match[0]
    return after


RUN_ELSEWHERE = {
    # pages whose commands need the repository, Docker or port 443, and have their own runner
    "docs/migration.md": "scripts/migration_check.py runs every block in order, over https, "
    "on single node and cluster (tests/integration/test_migration_guide.py)",
    "docs/https.md": "tests/integration/test_https.py runs make dev-cert's certificate with "
    "the shipped nginx.conf and rotator run over https, with the page's curl",
}
HERE = [path for path in DOCS if str(path.relative_to(ROOT)) not in RUN_ELSEWHERE]
FILES = [path for path in HERE if any(b.skip is None for b in sh_blocks(path))]


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_commands_of(path: Path, instance: Instance):
    env = dict(instance.env)
    for block in sh_blocks(path):
        if block.skip is None:
            env = run_block(block, env, instance)


def test_every_skip_says_why_and_every_marker_is_read():
    for path in DOCS:
        read = {b.line - 1 for b in sh_blocks(path) if b.skip is not None}
        for number, line in markers(path):
            assert number in read or any(
                b.skip and abs(b.line - number) <= 2 for b in sh_blocks(path)
            ), f"{path.relative_to(ROOT)}:{number}: a marker no sh block follows: {line}"
        for block in sh_blocks(path):
            assert block.skip is None or block.skip, f"{block.where}: skip without a reason"


def test_most_commands_run():
    """The skipped blocks stay the few that cannot run here."""
    blocks = [b for path in HERE for b in sh_blocks(path)]
    skipped = [b.where for b in blocks if b.skip is not None]
    assert len(blocks) >= 20 and len(skipped) <= 6, skipped
