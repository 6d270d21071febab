"""What the OpenAPI document says about errors: one Error schema, and each route's statuses.

Every error the API sends is `{"error": message, "field"?: name, ...}` (rotator/api/errors.py);
Litestar would document its own `{status_code, detail, extra}` instead, and only for
400. A route declares its errors with `responses=errors(...)`: the statuses every
management route can answer (400 for malformed input, 401, 503) are always in, so none
is forgotten, and each route adds what its handler and store function can raise. tests/integration/
test_openapi_conformance.py (schemathesis) checks the document against the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Operation, RequestBody
from msgspec import UNSET, UnsetType


class RowError(msgspec.Struct, kw_only=True):
    """One refused row of an import."""

    row: int
    field: str
    problem: str


class Error(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Every error body. Clients match on `error` (the delivery messages are a contract)."""

    error: str
    field: str | UnsetType = UNSET
    """The request field at fault: a validation error's, or a taken imported token's (409)."""
    index: int | UnsetType = UNSET
    """Which entry of a list holds that field, counting from 0 (a bulk add's `keys`)."""
    rows: list[RowError] | UnsetType = UNSET
    """An import's refused rows (`POST /v1/import`): each by its number, from 1."""
    limit: Literal["service", "app", "key"] | UnsetType = UNSET
    """Which daily limit refused a delivery (429 `service daily limit reached`); `key`: every
    key the policy could pick is at its own limit."""
    retry_after: int | UnsetType = UNSET
    """With `limit`: seconds to the end of the UTC day, when the daily counters start again
    (as the Retry-After header)."""


BAD_INPUT = 400
UNAUTHORIZED = 401
FORBIDDEN = 403
NOT_FOUND = 404
CONFLICT = 409
TOO_LARGE = 413
TOO_MANY = 429
UNAVAILABLE = 503

_DESCRIPTIONS = {
    BAD_INPUT: "Invalid input: a path, query or body parameter (`field` names it), or a body "
    "that is not JSON or nests too deep",
    UNAUTHORIZED: "Missing or wrong token (the same answer whatever was wrong)",
    NOT_FOUND: "No such resource for this tenant (another tenant's are never visible)",
    CONFLICT: "Already exists, or changed concurrently (retry); a value one field gave that "
    "another tenant or app holds (an imported token): `field` names it",
    TOO_LARGE: "Request body over 1 MiB",
    UNAVAILABLE: "The store (Valkey/Redis) is unreachable or too slow: "
    '`{"error": "store unavailable"}`, with Retry-After (seconds); retry then',
}


def error_spec(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=Error, description=description, generate_examples=False)


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """`responses=` of a management route: 400, 401 and 503, and the given statuses."""
    wanted = sorted({BAD_INPUT, UNAUTHORIZED, UNAVAILABLE, *statuses})
    return {status: error_spec(_DESCRIPTIONS[status]) for status in wanted}


BODY = (TOO_LARGE,)
"""What any route with a JSON body can answer besides its own errors."""


@dataclass
class OptionalBodyOperation(Operation):
    """A route whose JSON body may be left out (`data: JSONBody[X | None] = None`): Litestar
    documents every body as required; this says it is not."""

    def __post_init__(self) -> None:
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False
