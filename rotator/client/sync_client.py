"""`Client`: the rotator from synchronous code, over one httpx connection pool."""

from __future__ import annotations

from collections.abc import Callable
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


class Client(ClientBase):
    """Keys from a keyrotator server: `next_key`, `report`, and `call`, which does both
    around the caller's provider call. One client holds one connection pool: create it
    once and share it (it is thread-safe, as httpx.Client is); `close()` or `with` ends it.
    See ClientBase for the arguments."""

    _http_class = httpx.Client

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def next_key(self, service: str, mask: bool = False) -> Key:
        """The key to use now for `service` (`GET /v1/next`); raises the RotatorError the
        error table names."""
        return answers.key(
            self._send("GET", wire.NEXT_PATH, params=wire.next_params(service, mask))
        )

    def report(
        self,
        service: str,
        key_id: int,
        status: int,
        retry_after_s: int | None = None,
        error: str | None = None,
    ) -> ReportResult:
        """Tell the rotator what the provider answered with this key (`POST /v1/report`):
        its HTTP status, its Retry-After (sent as `retry_after`) and its error type."""
        body = wire.report_body(service, key_id, status, retry_after_s, error)
        return answers.report(
            self._send("POST", wire.REPORT_PATH, content=body, headers=wire.JSON_HEADERS)
        )

    def call(
        self,
        service: str,
        fn: Callable[[str], T],
        *,
        attempts: int = 3,
        classify: Classify = classify,
        report_success: bool | None = None,
    ) -> T:
        """`fn(key)` with a key of `service`: its result on success. On a 429, 401/403,
        5xx or timeout (outcome.ProviderOutcome.retryable) the outcome is reported and
        `fn` runs again with a new key, up to `attempts` times in all; after that the
        last failure is raised (or returned, if `fn` returns failed responses). Any other
        provider failure is reported and raised at once; an exception `classify` does not
        know propagates unreported. A failed report never hides the provider's answer."""
        success = self.report_success if report_success is None else report_success
        calls = Plan(attempts, classify, success)
        while not calls.done:
            try:
                found = self._perform(service, fn, calls.step)
            except Exception as exc:
                calls.throw(exc)
            else:
                calls.send(found)
        return calls.result

    def _perform(self, service: str, fn: Callable[[str], Any], step: Step) -> Any:
        """One step of `call`'s plan (retrying.py)."""
        match step:
            case Run(key):
                return fn(key)
            case NextKey():
                return self.next_key(service)
            case Report(key_id, outcome):
                return self._report_quietly(service, key_id, outcome)

    def _report_quietly(self, service: str, key_id: int, outcome: ProviderOutcome) -> None:
        body = wire.outcome_body(service, key_id, outcome)
        try:
            answers.report(
                self._send("POST", wire.REPORT_PATH, content=body, headers=wire.JSON_HEADERS)
            )
        except RotatorError as exc:
            report_failed(service, key_id, exc)

    def _send(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            return self._http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise Unreachable(wire.unreachable(exc)) from exc
