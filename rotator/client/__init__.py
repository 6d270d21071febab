"""A Python client for keyrotator (docs/client.md): the key to use now, reports of what the
provider answered, and `call`, which gets a key, runs the provider call, reports and tries
another key when the provider refused this one.

    with Client("https://rotator.example", token) as rotator:
        key = rotator.next_key("openai")
"""

from rotator.client.async_client import AsyncClient
from rotator.client.errors import (
    DailyLimitReached,
    DemoRateLimited,
    InvalidRequest,
    InvalidToken,
    IpNotAllowed,
    KeyDecryptFailed,
    LimitReached,
    MissingParams,
    NoActiveKeys,
    NotFound,
    RateLimitReached,
    RotatorError,
    ServerError,
    StoreUnavailable,
    UnexpectedAnswer,
    UnknownKey,
    UnknownService,
    Unreachable,
)
from rotator.client.outcome import ProviderOutcome, classify
from rotator.client.records import Key, KeyLimits, KeyMeta, ReportResult
from rotator.client.sync_client import Client

__all__ = [
    "AsyncClient",
    "Client",
    "DailyLimitReached",
    "DemoRateLimited",
    "InvalidRequest",
    "InvalidToken",
    "IpNotAllowed",
    "Key",
    "KeyDecryptFailed",
    "KeyLimits",
    "KeyMeta",
    "LimitReached",
    "MissingParams",
    "NoActiveKeys",
    "NotFound",
    "ProviderOutcome",
    "RateLimitReached",
    "ReportResult",
    "RotatorError",
    "ServerError",
    "StoreUnavailable",
    "UnexpectedAnswer",
    "UnknownKey",
    "UnknownService",
    "Unreachable",
    "classify",
]
