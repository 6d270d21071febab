"""The decisions of `call` (a key, the provider call, a report, maybe another key), written
once for the sync and the async client.

`plan` is the loop as a generator that never does I/O itself: it yields the step it wants
next (a key, the provider call, a report) and is sent the step's result, or thrown the
exception the step raised. Each client's `call` only performs the steps, with or without
`await` (sync_client.py, async_client.py), so the retry rules cannot drift apart.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, NamedTuple

from rotator.client.errors import RotatorError
from rotator.client.outcome import ProviderOutcome
from rotator.client.records import Key

log = logging.getLogger("rotator.client")

OK = ProviderOutcome(status=200)
"""A success `classify` could not read (e.g. the SDK's own result object)."""


class NextKey(NamedTuple):
    """Step: get a key (`next_key`); sends back a Key, or throws its RotatorError."""


class Run(NamedTuple):
    """Step: the caller's provider call with `key`; sends back its result or throws its
    exception."""

    key: str


class Report(NamedTuple):
    """Step: report `outcome` of key `key_id`, quietly (a failed report is logged)."""

    key_id: int
    outcome: ProviderOutcome


Step = NextKey | Run | Report


def check_attempts(attempts: int) -> None:
    if not isinstance(attempts, int) or attempts < 1:
        raise ValueError("attempts: at least 1")


class Plan:
    """`plan` driven by a client: `step` is the step to perform next; `send` its result or
    `throw` its exception; `done` and `result` once the loop has finished (`result` raises
    what the loop raised)."""

    def __init__(self, attempts: int, classify: Any, report_success: bool) -> None:
        check_attempts(attempts)
        self._steps = plan(attempts, classify, report_success)
        self.done = False
        self.result: Any = None
        self.step: Step = next(self._steps)

    def send(self, value: Any) -> None:
        self._advance(self._steps.send, value)

    def throw(self, exc: Exception) -> None:
        self._advance(self._steps.throw, exc)

    def _advance(self, resume: Any, value: Any) -> None:
        try:
            self.step = resume(value)
        except StopIteration as finished:
            self.done, self.result = True, finished.value


def plan(attempts: int, classify: Any, report_success: bool) -> Generator[Step, Any, Any]:
    """`call`'s loop, step by step (see the module docstring); returns what `call` returns."""
    last: Failure | None = None
    for _ in range(attempts):
        try:
            key: Key = yield NextKey()
        except RotatorError as refusal:
            if last is None:
                raise
            return last.give_up(refusal)
        try:
            result = yield Run(key.key)
        except Exception as exc:
            outcome = classify(exc)
            if outcome is None:
                raise
            yield Report(key.key_id, outcome)
            if not outcome.retryable:
                raise
            last = Failure(outcome, exc=exc)
            continue
        outcome = classify(result)
        if outcome is None or not outcome.failed:
            if report_success and (outcome is None or outcome.ok):
                yield Report(key.key_id, outcome or OK)
            return result
        yield Report(key.key_id, outcome)
        if not outcome.retryable:
            return result
        last = Failure(outcome, result=result)
    assert last is not None
    return last.give_up()


@dataclass
class Failure:
    """The provider's last failed answer: what the caller gets when no attempt succeeds."""

    outcome: ProviderOutcome
    exc: Exception | None = None
    result: Any = None

    def give_up(self, refusal: RotatorError | None = None) -> Any:
        """Raise the provider's exception (or return its failed response) as the call gave
        it: the caller's own handling of provider errors keeps working. When the rotator
        had no other key to try, its answer is attached as a note."""
        if self.exc is not None:
            if refusal is not None:
                self.exc.add_note(f"keyrotator: no other key to try: {refusal}")
            raise self.exc
        return self.result


def report_failed(service: str, key_id: int, exc: RotatorError) -> None:
    # best effort: the provider's answer matters more than the report. The message is the
    # rotator's `error` string, which never holds a token or a key.
    log.warning("report on key %s of %r not recorded: %s", key_id, service, exc)
