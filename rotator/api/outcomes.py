"""The delivery route's answers, counted for the API's summary line (rotator/tally.py).

The handler counts what it answers itself: its 200s (one increment) and its refusals
(each answer's `outcome` in api/delivery_answers.py, the same names `outcome()` gives).
What it does not answer, an unexpected exception, goes through the app's error table
(api/errors.py), so the route gets that same table with each entry wrapped to count
the answer as well; the other routes' errors are not counted as deliveries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request, Response

from rotator.domain import errors

Handler = Callable[[Request, Any], Response]


def counted(handlers: dict[Any, Handler]) -> dict[Any, Handler]:
    """`handlers` (exception class -> handler), each also counting what it answered."""
    return {key: _counting(handler) for key, handler in handlers.items()}


def _counting(handler: Handler) -> Handler:
    def handle(request: Request, exc: Any) -> Response:
        response = handler(request, exc)
        request.app.state.rotator.tally.add(outcome(exc, response.status_code))
        return response

    return handle


def outcome(exc: BaseException, status: int) -> str:
    """The refusal's name in the summary: the answer's own `error` string (a contract
    clients match on), else what the client saw."""
    if isinstance(exc, errors.RotatorError):
        return exc.message
    if status == 503:  # redis-py's connection errors, mapped in api/errors.py
        return errors.StoreUnavailable.message
    return f"HTTP {status}"
