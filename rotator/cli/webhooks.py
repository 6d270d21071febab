"""`rotator webhook ...`: a tenant's webhook delivery log, a test event, and a local
receiver that shows what a webhook sends and whether its signature verifies."""

from __future__ import annotations

import argparse
from typing import Any

from rotator.cli import output
from rotator.cli.common import CliError, read_secret
from rotator.cli.framework import TENANT, Command, Context, arg
from rotator.cli.values import positive_int
from rotator.domain.records import DeliveryPage
from rotator.store import webhooks
from rotator.store.test_event import send_test_event


async def _deliveries(ctx: Context, args: argparse.Namespace) -> Any:
    return await ctx.call(
        webhooks.deliveries, await ctx.tenant(args.tenant), limit=args.limit, cursor=args.cursor
    )


def _deliveries_table(page: DeliveryPage) -> str:
    text = output.table(page.deliveries)
    if page.next_cursor is not None:
        text += f"\n(older: --cursor {page.next_cursor})"
    return text


async def _test(ctx: Context, args: argparse.Namespace) -> Any:
    return await ctx.call(send_test_event, await ctx.tenant(args.tenant))


async def _listen(ctx: Context, args: argparse.Namespace) -> int:
    from rotator.cli.webhook_listen import listen
    from workers import signing

    if args.secret == "-":
        args.secret = read_secret("webhook secret (whsec_...): ")
    if args.secret is not None:
        try:
            signing.secret_key(args.secret)
        except signing.BadSecret as exc:
            raise CliError(f"--secret: {exc}") from None
    try:
        await listen(args.host, args.port, args.secret, args.fail_first, quiet=args.quiet)
    except OSError as exc:  # the port is taken, or the address is not this host's
        where = f"{args.host}:{args.port}"
        raise CliError(f"--port: cannot listen on {where}: {exc.strerror or exc}") from None
    return 0  # never reached: Ctrl-C ends it (exit 130, as for any command)


def _port(text: str) -> int:
    port = positive_int(text)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port")
    return port


LISTEN_EPILOG = """\
Point a tenant's webhook at http://127.0.0.1:PORT/hook (loopback URLs need
ROTATOR_WEBHOOK_ALLOW_PRIVATE=1 on the service), then `rotator webhook test TENANT`.
Each delivery is printed with its webhook-id, timestamp, body and `signature: VALID`
or `INVALID` (checked with --secret, the tenant's whsec_... webhook_secret)."""


COMMANDS = [
    Command(
        "webhook", "deliveries", "recent webhook delivery attempts, newest first", _deliveries,
        args=(
            TENANT,
            arg("--limit", type=positive_int, default=50, help="entries (default 50)"),
            arg("--cursor", type=positive_int, help="next_cursor of the previous page"),
        ),
        human=_deliveries_table,
        api=("GET /v1/webhooks/deliveries",),
    ),
    Command("webhook", "test", "send a webhook.test event to the tenant's webhook", _test,
            args=(TENANT,), api=("POST /v1/webhooks/test",)),
    Command(
        "webhook", "listen", "a local webhook receiver: prints each delivery and checks its "
        "signature", _listen,
        args=(
            arg("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"),
            arg("--port", type=_port, default=9000, help="port to listen on (default 9000)"),
            arg("--secret", help="the tenant's whsec_... webhook secret, or - to read it from "
                "stdin (kept out of `ps`): each signature is checked"),
            arg("--fail-first", type=int, default=0, metavar="N",
                help="answer 503 to the first N attempts of each event, to watch retries"),
            arg("--quiet", action="store_true",
                help="print only a count every 1000 deliveries (load tests)"),
        ),
        epilog=LISTEN_EPILOG, store=False,
    ),
]  # fmt: skip
