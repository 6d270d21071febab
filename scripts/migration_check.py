"""Follow docs/migration.md against a running instance, as a tenant moving over would.

    python scripts/migration_check.py --url https://localhost:8443 --ca deploy/tls/ca.pem

The guide's steps are taken from the page itself: every fenced block right after an
`<!-- check: KIND -->` line is

- `file NAME`: written to NAME in the work directory (the export);
- `run`: run with bash (`set -euo pipefail`) in the work directory; the variables it
  exports reach the blocks after it;
- `client`: one of the hosted guide's snippets (curl, Python requests, Node fetch), run
  as written; what it answers must be the imported key, masked, as the guide shows it.

`keys.example.com` becomes the host of --url, and YOUR_TENANT_CLIENT_TOKEN the tenant's
client token: nothing else of a snippet changes. `rotator` commands reach the store of
the instance through the ROTATOR_* settings in this process's environment, and the
operator token is ROTATOR_ADMIN_TOKEN. The CA file (--ca, for a self-signed certificate)
is trusted through CURL_CA_BUNDLE, REQUESTS_CA_BUNDLE and NODE_EXTRA_CA_CERTS, as the
guide tells users to. Exit status 0 when every step passed; the first failing step is
named otherwise. Run by tests/integration/test_migration_guide.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "migration.md"

DOC_HOST = "keys.example.com"
DOC_TOKEN = "YOUR_TENANT_CLIENT_TOKEN"
EXPECTED = {
    # the export's first openai key (manual policy: delivered first), as the guide shows it
    "service": "openai",
    "key_label": "Primary",
    "masked": True,
    "policy": "manual",
    "limits": {"max_daily_requests": 10000},
}
EXPECTED_KEY_END = "zzZZ"
CHECK = re.compile(
    r"^<!-- check: (?P<kind>[\w-]+)(?: (?P<arg>[^>]*?))? -->\n```(?P<lang>\w*)\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


@dataclass(frozen=True)
class Block:
    kind: str
    arg: str
    lang: str
    body: str
    line: int


class StepFailed(Exception):
    pass


def blocks(text: str) -> list[Block]:
    found = [
        Block(m["kind"], m["arg"] or "", m["lang"], m["body"], text.count("\n", 0, m.start()) + 1)
        for m in CHECK.finditer(text)
    ]
    marked = text.count("<!-- check:")
    if len(found) != marked:
        raise StepFailed(f"{marked} check markers but {len(found)} blocks right after them")
    return found


class Guide:
    """The state of one run: the work directory and the variables the steps exported."""

    def __init__(self, url: str, ca: Path | None, workdir: Path) -> None:
        self.url = url.rstrip("/")
        self.host = urlsplit(self.url).netloc
        self.ca = ca
        self.workdir = workdir
        self.env = dict(os.environ)
        # `rotator` and `python3` of this interpreter first (its venv has requests)
        bindir = str(Path(sys.executable).parent)
        self.env["PATH"] = bindir + os.pathsep + self.env.get("PATH", "")
        if ca is not None:
            for name in ("CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"):
                self.env[name] = str(ca)
        # the hosted service's tokens: opaque strings as its guide's demo token
        self.env.setdefault("HOSTED_CLIENT_TOKEN", "hosted" + secrets.token_urlsafe(24))
        self.env.setdefault("HOSTED_APP_TOKEN", "hostedapp" + secrets.token_urlsafe(24))

    def text(self, block: Block) -> str:
        return block.body.replace(DOC_HOST, self.host)

    # --- kinds of block -------------------------------------------------------------------
    def file(self, block: Block) -> None:
        path = self.workdir / block.arg
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds secrets
        with os.fdopen(fd, "w") as out:
            out.write(self.text(block))

    def run(self, block: Block) -> str:
        dump = self.workdir / ".env.after"
        script = f"set -euo pipefail\n{self.text(block)}\nenv -0 > {dump}\n"
        done = subprocess.run(
            ["bash", "-c", script], cwd=self.workdir, env=self.env,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            raise StepFailed(f"exit {done.returncode}\n{done.stderr.strip()}")
        for item in dump.read_text().split("\0"):
            name, sep, value = item.partition("=")
            if sep:
                self.env[name] = value
        dump.unlink()
        return done.stdout

    def client(self, block: Block) -> dict:
        code = self.text(block).replace(DOC_TOKEN, self.env["HOSTED_CLIENT_TOKEN"])
        if block.lang == "sh":
            command = ["bash", "-c", code]
        elif block.lang == "python":
            command = [sys.executable, "-c", code + "\nimport json\nprint(json.dumps(data))\n"]
        elif block.lang == "js":
            if shutil.which("node") is None:
                raise StepFailed("node is not installed")
            command = ["node", "--input-type=module", "-e",
                       code + "\nconsole.log(JSON.stringify(data));\n"]  # fmt: skip
        else:
            raise StepFailed(f"no way to run a {block.lang!r} client snippet")
        done = subprocess.run(
            command, cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            raise StepFailed(f"exit {done.returncode}\n{done.stderr.strip()}")
        try:
            data = json.loads(done.stdout)
        except json.JSONDecodeError:
            raise StepFailed(f"not JSON: {done.stdout[:200]!r}") from None
        wrong = {k: data.get(k) for k, v in EXPECTED.items() if data.get(k) != v}
        key = str(data.get("key", ""))
        if wrong or not key.endswith(EXPECTED_KEY_END) or "AAAAAAAA" in key:
            raise StepFailed(f"unexpected answer: {wrong or 'key ' + key!r}")
        return data


def follow(guide: Guide, text: str) -> list[str]:
    """Run every checked block in order; one line per step done."""
    done = []
    for block in blocks(text):
        where = f"docs/migration.md line {block.line} ({block.kind} {block.arg}".strip() + ")"
        try:
            if block.kind == "file":
                guide.file(block)
            elif block.kind == "run":
                guide.run(block)
            elif block.kind == "client":
                guide.client(block)
            else:
                raise StepFailed(f"unknown check kind {block.kind!r}")
        except (StepFailed, OSError, subprocess.TimeoutExpired) as exc:
            raise StepFailed(f"{where}: {exc}") from None
        done.append(f"ok {where}")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the instance, e.g. https://localhost")
    parser.add_argument("--ca", type=Path, help="a CA file to trust (make dev-cert's ca.pem)")
    parser.add_argument("--guide", type=Path, default=GUIDE)
    parser.add_argument("--workdir", type=Path, help="default: a temporary directory")
    args = parser.parse_args(argv)
    if "ROTATOR_ADMIN_TOKEN" not in os.environ:
        print("migration check: set ROTATOR_ADMIN_TOKEN (the operator token)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="migration-check-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        guide = Guide(args.url, args.ca, workdir)
        try:
            for line in follow(guide, args.guide.read_text()):
                print(line, flush=True)
        except StepFailed as exc:
            print(f"migration check FAILED at {exc}", file=sys.stderr)
            return 1
    print("migration check: every step of docs/migration.md passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
