"""The decisions of `call` (a key, the provider call, a report, maybe another key), shared
by the sync and the async client so the two loops differ only by `await`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from rotator.client.errors import RotatorError
from rotator.client.outcome import ProviderOutcome

log = logging.getLogger("rotator.client")


def check_attempts(attempts: int) -> None:
    if not isinstance(attempts, int) or attempts < 1:
        raise ValueError("attempts: at least 1")


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
