"""Request bodies: a size cap, and a nesting cap checked before anything decodes the JSON.

Both caps stand between a client and the decoder: a body is read only after the
route's guard has authenticated the caller (rotator/api/auth.py), never beyond
MAX_BODY_BYTES, and never decoded when its arrays and objects nest deeper than
MAX_JSON_DEPTH (msgspec's decoder recurses: a 1000-deep body would raise
RecursionError, a 500). Every refusal is a domain error, answered 400 or 413.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any

from litestar import Request
from litestar.exceptions import SerializationException

from rotator.domain.errors import InvalidBody

MAX_BODY_BYTES = 1024 * 1024
"""1 MiB: the largest management body today (an allowlist of 256 CIDRs) is under 20 kB;
bulk key upload (issue #11) is the one that may need more, on its own route."""
MAX_JSON_DEPTH = 32
"""Our bodies nest two levels (an object holding a list); 32 leaves room for any future
shape while staying far below the interpreter's recursion limit (1000)."""

# a JSON string, so brackets inside it do not count; an unterminated one runs to the end.
# `"?` can always match, so the pattern never backtracks: linear in the body's length
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1


def nesting_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (0 for a scalar), without
    decoding it. Works on any bytes: invalid JSON is the decoder's to refuse."""
    structure = _STRING.sub(b"", body).translate(None, _NOT_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, structure)), default=0)


def too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    # fewer opening brackets than the limit cannot nest deeper than it: every ordinary
    # body stops at the two counts, without the scan
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    return nesting_depth(body) > limit


class ApiRequest(Request):
    """Litestar's Request whose `json()` (what `JSONBody` parameters are decoded from)
    refuses a body nested too deep, and answers a malformed one with a 400 naming it."""

    async def json(self) -> Any:
        body = await self.body()  # RequestEntityTooLarge (413) past MAX_BODY_BYTES
        if too_deep(body):
            raise InvalidBody(f"request body: JSON nested deeper than {MAX_JSON_DEPTH} levels")
        try:
            return await super().json()
        except SerializationException as exc:
            raise InvalidBody(f"request body: not valid JSON ({exc})") from None
