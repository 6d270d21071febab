"""Key health: what a client's report of the provider's answer does to a key.

scripts/lua/report.lua decides, atomically, with the per-service settings below (each falls
back to its default here, sent to the script as an argument, so the defaults have one owner);
scripts/lua/next_key.lua skips the keys it cooled down or disabled. docs/rotation.md states
the rules for users; this module states them once for Python (listings, checks, the model):

- 2xx: the key's failure count is cleared, and an open circuit breaker is closed;
- 429: the key cools down for the provider's `retry_after` (capped at
  `max_cooldown_seconds`), else for `cooldown_seconds`;
- a quota error (QUOTA_ERRORS, whatever the status): it cools down until the provider's day
  resets (`quota_reset_utc`, 00:00 UTC unless set);
- 401 or 403: the key is disabled (`disabled_reason` says why) until a person enables it;
- 5xx, or status 0 (no response: a timeout, a refused connection): counted; the
  `failure_threshold`th failure within `failure_window_seconds` opens the circuit breaker:
  the key cools down for `breaker_cooldown_seconds`, doubled at each consecutive opening
  (capped at `max_cooldown_seconds`). After it the breaker is half-open: the key is delivered
  again, one more failure opens it again (with the doubled cooldown), a 2xx closes it;
- anything else (other 1xx-4xx): counted in usage, no change to the key.

A demo tenant's reports are counted and answered, but change no key: its token is public.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import msgspec

from rotator.domain.errors import InvalidField

QUOTA_ERRORS = (
    "insufficient_quota",  # OpenAI: the account's credit or monthly budget is used up
    "quota_exceeded",
    "billing_hard_limit_reached",  # OpenAI, older accounts
    "resource_exhausted",  # Google (RESOURCE_EXHAUSTED), lower-cased by the client
    "credit_balance_too_low",  # Anthropic's billing error, as its SDKs name it
)
"""`error` values that mean the key's quota for the provider's day is spent: such a report
cools the key down until `quota_reset_utc`, whatever its status. Compared lower-cased."""

ReportClass = Literal["2xx", "429", "4xx", "5xx", "none", "other"]
REPORT_CLASSES: tuple[ReportClass, ...] = ("2xx", "429", "4xx", "5xx", "none", "other")
"""How usage history counts reports: by the provider's status class (`429` apart from the
other 4xx; `none`: status 0, no response; `other`: 1xx and 3xx)."""

NO_RESPONSE = 0
"""The `status` a client reports when the provider gave no answer (timeout, connection)."""


class HealthSettings(msgspec.Struct, frozen=True, kw_only=True):
    """A service's health settings (each a field of the service hash; absent = default)."""

    cooldown_seconds: int = 60
    """A 429 without `retry_after` cools the key down this long."""
    max_cooldown_seconds: int = 3600
    """The longest cooldown a `retry_after` or the breaker's backoff can ask for."""
    quota_reset_utc: str = "00:00"
    """When the provider's day starts again (HH:MM, UTC): a quota error cools until then."""
    failure_threshold: int = 5
    """Failures (5xx or no response) within the window that open the circuit breaker."""
    failure_window_seconds: int = 60
    breaker_cooldown_seconds: int = 30
    """The first cooldown of an opened breaker; doubled at each consecutive opening."""


DEFAULTS = HealthSettings()

FIELDS: dict[str, str] = {
    "cooldown_seconds": "h_cd",
    "max_cooldown_seconds": "h_cdmax",
    "quota_reset_utc": "h_reset",
    "failure_threshold": "h_fn",
    "failure_window_seconds": "h_fw",
    "breaker_cooldown_seconds": "h_bc",
}
"""Each setting's field in the service hash (rotator/store/keys.py declares them). The quota
reset is stored as minutes after 00:00 UTC."""


class Described(NamedTuple):
    label: str
    """The setting's name for people (the console's field label)."""
    meaning: str
    """What it does, for the console's hint and the CLI's --help (no default: each adds it)."""


DESCRIBED: dict[str, Described] = {
    "cooldown_seconds": Described(
        "Cooldown after a 429, seconds",
        "how long a 429 report without retry_after cools the key down",
    ),
    "max_cooldown_seconds": Described(
        "Longest cooldown, seconds",
        "caps a retry_after and the circuit breaker's backoff",
    ),
    "quota_reset_utc": Described(
        "Quota resets at (HH:MM, UTC)",
        "when the provider's quota resets: a quota error (such as insufficient_quota) cools "
        "the key down until then",
    ),
    "failure_threshold": Described(
        "Failures that open the circuit breaker",
        "server errors or timeouts reported within the failure window that open the "
        "circuit breaker",
    ),
    "failure_window_seconds": Described(
        "Failure window, seconds", "how far back failures are counted"
    ),
    "breaker_cooldown_seconds": Described(
        "Breaker cooldown, seconds",
        "how long an opened breaker keeps the key out, doubled each time it opens again "
        "before a success",
    ),
}
"""Each setting in words, once for the console and the CLI (a test checks every setting
has them)."""

MAX_SECONDS = 7 * 86_400
"""No cooldown setting may exceed a week."""
MAX_THRESHOLD = 1000


def check_seconds(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SECONDS:
        raise InvalidField(name, f"must be a whole number of seconds from 1 to {MAX_SECONDS}")
    return value


def check_threshold(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_THRESHOLD:
        raise InvalidField("failure_threshold", f"must be between 1 and {MAX_THRESHOLD}")
    return value


def reset_minutes(value: object) -> int:
    """`HH:MM` (UTC) as minutes after midnight; InvalidField otherwise."""
    problem = "must be a UTC time of day as HH:MM (00:00 to 23:59)"
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        raise InvalidField("quota_reset_utc", problem)
    hours, minutes = value[:2], value[3:]
    if not (hours.isdigit() and minutes.isdigit() and hours.isascii() and minutes.isascii()):
        raise InvalidField("quota_reset_utc", problem)
    if int(hours) > 23 or int(minutes) > 59:
        raise InvalidField("quota_reset_utc", problem)
    return int(hours) * 60 + int(minutes)


def reset_text(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def check(name: str, value: object) -> str:
    """One setting checked, as the text stored in its field ('' for None: the default)."""
    if value is None:
        return ""
    if name == "quota_reset_utc":
        return str(reset_minutes(value))
    if name == "failure_threshold":
        return str(check_threshold(value))
    return str(check_seconds(name, value))


def field_pairs(values: dict[str, object]) -> list[str]:
    """The service hash's field/value pairs for the settings given (by name; None = back to
    the default), each checked: InvalidField names the first bad one."""
    pairs: list[str] = []
    for name, value in values.items():
        pairs += [FIELDS[name], check(name, value)]
    return pairs


def from_hash(read: dict[str, str | None]) -> HealthSettings:
    """The settings from the service hash's fields (by setting name; None = default)."""
    values: dict[str, object] = {}
    for name, raw in read.items():
        if raw in (None, ""):
            continue
        assert raw is not None
        values[name] = reset_text(int(raw)) if name == "quota_reset_utc" else int(raw)
    return HealthSettings(**values)  # type: ignore[arg-type]


def report_class(status: int) -> ReportClass:
    if status == NO_RESPONSE:
        return "none"
    if 200 <= status < 300:
        return "2xx"
    if status == 429:
        return "429"
    if 500 <= status < 600:
        return "5xx"
    if 400 <= status < 500:
        return "4xx"
    return "other"
