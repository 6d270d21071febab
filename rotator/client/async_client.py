"""`AsyncClient`: the rotator from asyncio code, over one httpx connection pool; the twin of
`Client` (sync_client.py), line for line but for `await`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from rotator.client import answers, wire
from rotator.client.base import ClientBase
from rotator.client.errors import RotatorError, Unreachable
from rotator.client.outcome import ProviderOutcome, classify
from rotator.client.records import Key, ReportResult
from rotator.client.retrying import NextKey, Plan, Report, Run, Step, report_failed

T = TypeVar("T")
Classify = Callable[[object], ProviderOutcome | None]


class AsyncClient(ClientBase):
    """Keys from a keyrotator server, for asyncio: as `Client`, with coroutines. One client
    holds one connection pool: create it once per event loop and share it among tasks;
    `await close()` or `async with` ends it.
    See ClientBase for the arguments."""

    _http_class = httpx.AsyncClient

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def next_key(self, service: str, mask: bool = False) -> Key:
        """As Client.next_key."""
        return answers.key(
            await self._send("GET", wire.NEXT_PATH, params=wire.next_params(service, mask))
        )

    async def report(
        self,
        service: str,
        key_id: int,
        status: int,
        retry_after_s: int | None = None,
        error: str | None = None,
    ) -> ReportResult:
        """As Client.report."""
        body = wire.report_body(service, key_id, status, retry_after_s, error)
        return answers.report(
            await self._send("POST", wire.REPORT_PATH, content=body, headers=wire.JSON_HEADERS)
        )

    async def call(
        self,
        service: str,
        fn: Callable[[str], Awaitable[T]],
        *,
        attempts: int = 3,
        classify: Classify = classify,
        report_success: bool | None = None,
    ) -> T:
        """As Client.call, with `await fn(key)`."""
        success = self.report_success if report_success is None else report_success
        calls = Plan(attempts, classify, success)
        while not calls.done:
            try:
                found = await self._perform(service, fn, calls.step)
            except Exception as exc:
                calls.throw(exc)
            else:
                calls.send(found)
        return calls.result

    async def _perform(self, service: str, fn: Callable[[str], Any], step: Step) -> Any:
        """One step of `call`'s plan (retrying.py)."""
        match step:
            case Run(key):
                return await fn(key)
            case NextKey():
                return await self.next_key(service)
            case Report(key_id, outcome):
                return await self._report_quietly(service, key_id, outcome)

    async def _report_quietly(self, service: str, key_id: int, outcome: ProviderOutcome) -> None:
        body = wire.outcome_body(service, key_id, outcome)
        try:
            answers.report(
                await self._send("POST", wire.REPORT_PATH, content=body, headers=wire.JSON_HEADERS)
            )
        except RotatorError as exc:
            report_failed(service, key_id, exc)

    async def _send(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            return await self._http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise Unreachable(wire.unreachable(exc)) from exc
