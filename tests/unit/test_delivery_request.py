"""The delivery handler's own query and header parsing equals what Litestar's gave it."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st
from litestar._parsers import parse_query_string
from litestar.datastructures import MultiDict

from rotator.api.delivery_request import QUERY_NAMES, DeliveryHeaders, query_values

# pieces a query string is made of: the names read, their encodings, separators, escapes
_PIECES = st.sampled_from(
    [
        "service", "token", "app_token", "mask", "%73ervice", "app%5Ftoken", "ma+sk", "mask+",
        "=", "&", "&&", ";", "+", "%", "%2", "%20", "%2B", "%26", "%3D", "%ff", "%C3%A9", "%zz",
        "openai", "krc_a_b", "1", "true", " ", "é", "\x00", "\u00ff",
    ]
)  # fmt: skip
QUERIES = st.lists(_PIECES | st.text(max_size=4), max_size=12).map("".join)


def litestar_values(raw: bytes) -> dict[str, str]:
    """What `request.query_params.get(name)` gave the `@get` handler, per name present; of
    `mask`, its first value that masks, if any does."""
    query = MultiDict(parse_query_string(raw))
    found = {name: query.get(name) for name in QUERY_NAMES if name in query}
    masking = [v for v in query.getall("mask", []) if v.lower() in ("1", "true", "yes", "on")]
    if masking:
        found["mask"] = masking[0]
    return found


@given(QUERIES)
@example("service=a&service=b&token=&token=x")
@example("%73ervice=op%65nai&token=a+b%2Bc")
@example("service=%ff%fe&mask")
@example("==&=x&service==")
@example("mask=0&mask=1&mask=TRUE")
def test_query_values_equal_litestars(text: str) -> None:
    raw = text.encode("utf-8")
    assert query_values(raw) == litestar_values(raw)


@given(st.binary(max_size=40))
def test_query_values_on_any_bytes(raw: bytes) -> None:
    assert query_values(raw) == litestar_values(raw)


def test_headers_one_pass_lines_joined_in_order() -> None:
    scope = {
        "headers": [
            (b"host", b"x"),
            (b"x-forwarded-for", b"10.0.0.1"),
            (b"authorization", b"Bearer abc"),
            (b"x-forwarded-for", b"8.8.8.8"),
            (b"x-request-id", b"\xe9id-0001"),
        ]
    }
    headers = DeliveryHeaders(scope)  # type: ignore[arg-type]
    assert headers.forwarded_for == "10.0.0.1,8.8.8.8"
    assert headers.bearer() == "abc"
    assert headers.request_id == "\xe9id-0001"  # latin-1: then refused by the id's pattern


def test_bearer_scheme_is_case_insensitive_and_others_are_not_tokens() -> None:
    def bearer(*values: bytes) -> str | None:
        return DeliveryHeaders({"headers": [(b"authorization", v) for v in values]}).bearer()  # type: ignore[arg-type]

    assert bearer(b"bEaReR  tok ") == "tok"
    assert bearer(b"Basic Zm9v") is None
    assert bearer() is None
    # two lines: one comma-joined value, which is no token (403, not the first line's token)
    assert bearer(b"Bearer a", b"Bearer b") == "a,Bearer b"
