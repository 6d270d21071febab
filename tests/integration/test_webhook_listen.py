"""`rotator webhook listen`, run as a user runs it: a real process printing each delivery
and whether its signature verifies, answering 503 to first attempts with --fail-first."""

from __future__ import annotations

import base64
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from rotator.embedded import free_port
from tests.integration.cli_support import base_env, rotator
from workers import signing

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
BODY = json.dumps({"type": "webhook.test", "data": {"tenant": "t1"}}).encode()


def listener(*args: str, stdin: str | None = None) -> Iterator[tuple[subprocess.Popen, str]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotator.cli", "webhook", "listen", "--port", str(port), *args],
        env=base_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if stdin is not None:
        proc.stdin.write(stdin)
    proc.stdin.close()
    first = proc.stdout.readline()
    assert first.startswith(f"listening on http://127.0.0.1:{port}/hook"), (
        first + proc.stderr.read()
    )
    try:
        yield proc, f"http://127.0.0.1:{port}/hook"
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


@pytest.fixture
def checking() -> Iterator[tuple[subprocess.Popen, str]]:
    yield from listener("--secret", SECRET, "--fail-first", "1")


def read_delivery(proc: subprocess.Popen) -> dict[str, str]:
    """The header lines of the next printed delivery (the previous one's body skipped)."""
    head = proc.stdout.readline()
    while not head.startswith("--- "):
        assert head, "the listener ended"
        head = proc.stdout.readline()
    shown = {"status": head.rsplit("-> ", 1)[1].strip()}
    while len(shown) < 4:
        name, _, value = proc.stdout.readline().partition(": ")
        shown[name] = value.strip()
    return shown


def post(url: str, headers: dict[str, str]) -> int:
    return httpx.post(url, content=BODY, headers=headers, timeout=10).status_code


def test_prints_each_delivery_with_its_signature_verdict(checking):
    proc, url = checking
    good = signing.headers(SECRET, "msg_1", int(time.time()), BODY)
    # --fail-first 1: the event's first attempt is refused, its retry accepted
    assert post(url, good) == 503
    first = read_delivery(proc)
    assert first == {
        "status": "503",
        "webhook-id": "msg_1",
        "webhook-timestamp": good["webhook-timestamp"],
        "signature": "VALID",
    }
    assert post(url, good) == 200
    assert read_delivery(proc)["status"] == "200"
    forged = signing.headers("whsec_" + base64.b64encode(b"x" * 32).decode(), "msg_2",
                             int(time.time()), BODY)  # fmt: skip
    assert post(url, forged) == 503
    assert read_delivery(proc)["signature"] == "INVALID"


def test_a_signature_header_that_is_not_ascii_is_invalid_not_a_crash(checking):
    proc, url = checking
    headers = signing.headers(SECRET, "msg_3", int(time.time()), BODY)
    # a header's bytes are the sender's: Latin-1 letters are not a valid signature
    headers["webhook-signature"] = "v1,sïgnature é".encode("latin-1")  # type: ignore[assignment]
    assert post(url, headers) == 503
    assert read_delivery(proc)["signature"] == "INVALID"


def test_what_a_sender_wrote_is_printed_without_terminal_controls(checking):
    proc, url = checking
    # an escape sequence that would erase the line and print a forged verdict
    forged = "\x1b[2K\rsignature: VALID"
    headers = signing.headers(SECRET, "msg_4\x1b[1A", int(time.time()), BODY)
    body = f"not json {forged}\u202e".encode()
    r = httpx.post(url, content=body, headers=headers, timeout=10)
    assert r.status_code == 503
    shown = read_delivery(proc)
    assert shown["webhook-id"] == "msg_4\\x1b[1A"
    assert shown["signature"] == "INVALID"
    assert proc.stdout.readline() == "not json \\x1b[2K\\rsignature: VALID\\u202e\n"


def test_ctrl_c_stops_it(checking):
    proc, _ = checking
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 130
    assert "Traceback" not in proc.stderr.read()  # Ctrl-C is how it ends, not a crash


def test_the_secret_can_come_from_stdin_and_the_plural_group_works():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotator.cli", "webhooks", "listen", "--port", str(port),
         "--secret", "-"],
        env=base_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        proc.stdin.write(SECRET + "\n")
        proc.stdin.close()
        assert proc.stdout.readline().startswith("listening on ")
        url = f"http://127.0.0.1:{port}/hook"
        assert post(url, signing.headers(SECRET, "msg_3", int(time.time()), BODY)) == 200
        assert read_delivery(proc)["signature"] == "VALID"
    finally:
        stop(proc)


def test_a_bad_secret_or_port_is_refused_in_one_line():
    bad = rotator("webhook", "listen", "--secret", "not-a-secret", env=base_env())
    assert bad.returncode == 1
    assert bad.stderr.startswith("rotator: --secret: webhook secret is not whsec_"), bad.stderr
    port = rotator("webhook", "listen", "--port", "70000", env=base_env())
    assert port.returncode == 1 and "70000 is not a TCP port" in port.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        refused = rotator("webhook", "listen", "--port", str(busy), env=base_env())
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"rotator: --port: cannot listen on 127.0.0.1:{busy}: ")
