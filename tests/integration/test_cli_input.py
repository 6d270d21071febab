"""What `rotator` reads, run as a user runs it (a subprocess on the test Valkey): input that is
not UTF-8, on stdin or on the command line, is one line naming where it came from, exit 1,
nothing written; a byte order mark before a secret is dropped wherever the secret is read."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from tests.integration.cli_support import rotator
from tests.integration.management import deliver

NOT_UTF8 = b"sk-proj-\xff\xfeinvalid-utf8-1234\n"
SECRET = "sk-proj-bom-key-12345678"
BOM = b"\xef\xbb\xbf"
TOKEN = "acme-hosted-client-token-0123456789"


def setup(cli_env) -> dict:
    tenant = json.loads(rotator("tenant", "create", "acme", "--json", env=cli_env).stdout)
    done = rotator("service", "create", "acme", "openai", "--policy", "manual", env=cli_env)
    assert done.returncode == 0, done.stderr
    return tenant


def last_write(cli_env) -> str:
    """The newest audit record's id: every write of a command records one."""
    page = json.loads(rotator("audit", "--limit", "1", "--json", env=cli_env).stdout)
    return page["records"][0]["id"]


def refused(result, source: str) -> None:
    assert result.returncode == 1, result.stderr
    assert result.stderr == f"rotator: {source}: not UTF-8 text\n"  # one line, no traceback
    assert result.stdout == ""


def listed(cli_env, *args: str) -> list:
    done = rotator(*args, "--json", env=cli_env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def nothing_written(cli_env, before: str) -> None:
    assert [t["name"] for t in listed(cli_env, "tenant", "list")] == ["acme"]
    assert [s["slug"] for s in listed(cli_env, "service", "list", "acme")] == ["openai"]
    assert listed(cli_env, "key", "list", "acme", "openai") == []
    assert listed(cli_env, "app", "list", "acme") == []
    assert last_write(cli_env) == before


@pytest.mark.parametrize(
    "args",
    [
        ("key", "add", "acme", "openai", "--label", "x"),
        ("key", "add-file", "acme", "openai", "-"),
        ("import", "acme", "-"),
        ("tenant", "client-token", "acme", "--token-file", "-"),  # was: "must be 20 to 200"
        ("tenant", "update", "acme", "--webhook-secret-stdin"),
        ("app", "create", "acme", "backend", "--token-file", "-"),
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_stdin_that_is_not_utf8_is_refused_and_nothing_written(cli_env, args):
    setup(cli_env)
    before = last_write(cli_env)
    refused(rotator(*args, env=cli_env, stdin=NOT_UTF8), "stdin")
    nothing_written(cli_env, before)


@pytest.mark.parametrize(
    ("args", "source"),
    [
        # Python reads these bytes of argv as lone surrogates (surrogateescape)
        (("tenant", "create", "na\udcffme"), "NAME"),
        (("service", "create", "acme", "s\udcff", "--policy", "usage"), "SLUG"),
        (("key", "add", "acme", "openai", "--label", "l\udcff"), "--label"),
        (("key", "add", "ac\udcffme", "openai", "--label", "x"), "TENANT"),
        (("tenant", "update", "acme", "--allow", "10.0.0.0/8", "--allow", "1\udcff"), "--allow"),
        (("app", "create", "acme", "b\udcffackend"), "NAME"),
    ],
    ids=["tenant-name", "slug", "label", "tenant", "allow", "app-name"],
)
def test_an_argument_that_is_not_utf8_is_refused_naming_it(cli_env, args, source):
    setup(cli_env)
    before = last_write(cli_env)
    refused(rotator(*args, env=cli_env, stdin=SECRET + "\n"), source)
    nothing_written(cli_env, before)


@pytest.mark.parametrize(
    "args",
    [
        ("key", "add", "acme", "openai", "--label", "x"),
        ("tenant", "update", "acme", "--webhook-secret-stdin"),
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_a_secret_of_two_lines_on_stdin_is_refused_naming_stdin(cli_env, args):
    setup(cli_env)
    before = last_write(cli_env)
    done = rotator(*args, env=cli_env, stdin=f"{SECRET}\nwhsec_second-line\n")
    assert done.returncode == 1, done.stderr
    assert done.stderr == "rotator: stdin: more than one line; pipe in one secret, on one line\n"
    nothing_written(cli_env, before)


def test_a_file_argument_is_a_path_which_may_be_any_bytes(cli_env, tmp_path):
    setup(cli_env)
    path = tmp_path / "keys-\udcff.txt"  # a legal file name that is not UTF-8
    path.write_text(SECRET + "\n")
    done = rotator("key", "add-file", "acme", "openai", str(path), env=cli_env)
    assert done.returncode == 0, done.stderr


async def test_a_bom_is_dropped_from_stdin_as_from_a_file(cli_env, client, tmp_path):
    tenant = setup(cli_env)
    piped = rotator("key", "add", "acme", "openai", "--label", "bom", "--json", env=cli_env,
                    stdin=BOM + SECRET.encode() + b"\n")  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    path = tmp_path / "keys.txt"
    path.write_bytes(BOM + SECRET.encode() + b"\n")
    # the same secret either way: the file's is refused as the key the service holds
    from_file = rotator("key", "add-file", "acme", "openai", str(path), "--json", env=cli_env)
    assert from_file.returncode == 1
    assert "already in this service (key " in from_file.stderr, from_file.stderr
    masked = [k["key_masked"] for k in listed(cli_env, "key", "list", "acme", "openai")]
    assert masked == ["sk-proj-••••••••••••5678"]  # the provider's prefix shows: no BOM
    r = await deliver(client, tenant["client_token"])
    assert r.json()["key"] == SECRET  # what a client is handed: no BOM


async def test_a_bom_is_dropped_from_a_token_on_stdin(cli_env, client):
    setup(cli_env)
    rotator("key", "add", "acme", "openai", "--label", "k", env=cli_env, stdin=SECRET)
    done = rotator("tenant", "client-token", "acme", "--token-file", "-", env=cli_env,
                   stdin=BOM + TOKEN.encode() + b"\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (await deliver(client, TOKEN)).json()["key"] == SECRET  # the token works as given


def test_a_secret_read_with_stdin_closed_is_one_line(cli_env):
    """`rotator key add ... 0<&-`: Python starts with no sys.stdin at all."""
    setup(cli_env)
    before = last_write(cli_env)
    command = [sys.executable, "-m", "rotator.cli", "key", "add", "acme", "openai", "--label", "x"]
    done = subprocess.run(
        command, env=cli_env, capture_output=True, text=True, timeout=30,
        preexec_fn=lambda: os.close(0),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr == "rotator: stdin: closed; pipe the input in, or name a file\n"
    nothing_written(cli_env, before)


def at_a_terminal(args: list[str], env: dict[str, str], typed: bytes) -> tuple[int, str]:
    """`rotator ARGS` with a terminal as its stdin and controlling tty (the hidden prompt),
    `typed` typed at it: (exit status, everything it wrote to the terminal)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin, stdout, stderr and /dev/tty are the pty
        os.execve(sys.executable, [sys.executable, "-m", "rotator.cli", *args], env)
    shown = b""
    deadline = time.monotonic() + 20
    while b"hidden" not in shown and time.monotonic() < deadline:  # the prompt
        if select.select([fd], [], [], 1)[0]:
            shown += os.read(fd, 4096)
    os.write(fd, typed)
    while True:  # until the child closes the terminal
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child's side is closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode("utf-8", "replace")


def test_a_secret_typed_at_the_prompt_follows_the_same_rules(cli_env):
    setup(cli_env)
    before = last_write(cli_env)
    args = ["key", "add", "acme", "openai", "--label", "typed"]
    status, shown = at_a_terminal(args, cli_env, NOT_UTF8)
    assert "provider key (input hidden): " in shown and status == 1, shown
    assert "rotator: stdin: not UTF-8 text" in shown and "Traceback" not in shown
    nothing_written(cli_env, before)
    status, shown = at_a_terminal(args, cli_env, BOM + SECRET.encode() + b"\n")
    assert status == 0, shown
    assert SECRET not in shown  # a hidden prompt: not echoed
    masked = [k["key_masked"] for k in listed(cli_env, "key", "list", "acme", "openai")]
    assert masked == ["sk-proj-••••••••••••5678"]  # the BOM dropped: the prefix is seen
