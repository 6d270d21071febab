"""Domain errors. The API maps each class to one HTTP status in one table (api/errors.py)."""

from __future__ import annotations

import msgspec


class RotatorError(Exception):
    """Base class; `message` is safe to show to a client (never holds a secret). A subclass
    gives its default message as a class keyword: `class NotFound(RotatorError,
    message="not found")`; an instance may carry a more precise one."""

    message = "error"

    def __init_subclass__(cls, message: str | None = None, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if message is not None:
            cls.message = message

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)


# --- delivery errors: their messages are a contract clients match on ------------------
class MissingParams(RotatorError, message="missing token or service"): ...


class InvalidToken(RotatorError, message="invalid token"): ...


class IpNotAllowed(RotatorError, message="ip not allowed"): ...


class UnknownService(RotatorError, message="unknown service"): ...


class DailyLimitReached(RotatorError, message="service daily limit reached"):
    """A daily limit refused the request; the message stays the hosted guide's whichever
    limit it was, `limit` says which."""

    def __init__(self, limit: str, retry_after_s: int) -> None:
        super().__init__()
        self.limit = limit
        """`service`, `app`, or `key` (every key the policy could pick is at its own limit)."""
        self.retry_after_s = retry_after_s
        """Seconds to the end of the UTC day, when the counters start again."""


class RateLimitReached(RotatorError, message="rate limit reached"):
    """A per-minute limit refused the request: the service's, or every key the policy could
    pick is at one of its own limits and a per-minute slot frees first."""

    def __init__(self, limit: str, retry_after_s: int) -> None:
        super().__init__()
        self.limit = limit
        """`service` or `key`."""
        self.retry_after_s = retry_after_s
        """Seconds until the first per-minute slot frees (rounded up, at least 1)."""


class DemoRateLimited(RotatorError, message="demo rate limit"):
    """A demo tenant's per-IP throttle refused the request."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__()
        self.retry_after_s = retry_after_s


class NoActiveKeys(RotatorError, message="no active keys"):
    """No key can be delivered. `retry_after_s` when some are only cooling down (key health):
    the seconds until the first recovers; None when none is active (a person must act)."""

    def __init__(self, retry_after_s: int | None = None) -> None:
        super().__init__()
        self.retry_after_s = retry_after_s


class KeyDecryptFailed(RotatorError, message="key decrypt failed"): ...


class StoreUnavailable(RotatorError, message="store unavailable"):
    """Redis/Valkey did not answer in time, or is unreachable."""


# --- management errors ---------------------------------------------------------------
class Unauthorized(RotatorError, message="invalid or missing admin token"): ...


class SigninThrottled(RotatorError, message="too many wrong tokens from this address"):
    """This address used up its budget of wrong operator tokens, which the console's
    sign-in and the operator API share (store/sessions.py): try again after retry_after_s."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__()
        self.retry_after_s = retry_after_s


class NotFound(RotatorError, message="not found"): ...


class Conflict(RotatorError, message="already exists"): ...


class FieldConflict(Conflict):
    """A value one input field gave is taken (an imported token another tenant holds):
    `field` names it, as InvalidField does, so the CLI can name its own flag."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field} {problem}")


class TenantSuspended(RotatorError, message="tenant suspended"):
    """A write by (or for) a suspended tenant: its admin token still reads, never writes."""


class InvalidField(RotatorError):
    """Bad input; names the field so a client can show it."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        """The message without the field's name (the CLI names its own flag instead)."""
        super().__init__(f"{field}: {problem}")


class InvalidEntry(InvalidField):
    """Bad input in one entry of a list (a bulk request): `index` says which, counting from
    0, so a client can point at it (the CLI and the console turn it into a line number)."""

    def __init__(self, list_field: str, index: int, field: str, problem: str) -> None:
        self.index = index
        super().__init__(field, problem)
        self.message = f"{list_field}[{index}].{field}: {problem}"
        self.args = (self.message,)


class InvalidBody(RotatorError):
    """A request body that is not acceptable as a whole (not JSON, nested too deep)."""


class RowProblem(msgspec.Struct, frozen=True, kw_only=True):
    """What is wrong with one row of an imported file, by the file's own row number and
    column name (never the row's content: it may hold a secret)."""

    row: int
    field: str
    problem: str


class InvalidRows(InvalidField):
    """An import refused as a whole, naming every bad row (first the cells that cannot be
    read, rotator/domain/import_file.py; once those are fixed, every row the store's rules
    refuse). The message lists the first MAX_SHOWN."""

    MAX_SHOWN = 20

    def __init__(self, problems: list[RowProblem]) -> None:
        self.problems = problems
        lines = [f"row {p.row}: {p.field}: {p.problem}" for p in problems[: self.MAX_SHOWN]]
        if len(problems) > self.MAX_SHOWN:
            lines.append(f"... and {len(problems) - self.MAX_SHOWN} more")
        super().__init__("rows", "\n".join(lines))
        self.message = (
            f"nothing imported: {len(problems)} problem{'s' if len(problems) != 1 else ''}\n"
            + "\n".join(lines)
        )
        self.args = (self.message,)


class ImportIncomplete(RotatorError):
    """An import failed midway (the store went away) and could not be fully undone: the
    message says what may remain, so nothing is left behind silently."""

    def __init__(self, message: str, *, store_unavailable: bool = False) -> None:
        super().__init__(message)
        self.store_unavailable = store_unavailable
        """Only the store being unavailable stopped the undo: the CLI exits 2, as for any
        store failure."""
