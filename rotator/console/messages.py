"""Store errors in words a person understands, in one table.

The store's messages are written for API clients ("slug: 1-64 characters of a-z, …").
The console shows them next to the field they name; where a message is terse or speaks
in API field names, this table gives the console's wording. Anything not listed is
shown as the store wrote it (with its first letter capitalised), so a new rule in the
store still reaches the user, in API words at worst.
"""

from __future__ import annotations

from rotator.console.forms import FormErrors
from rotator.domain.errors import FieldConflict, InvalidField, RotatorError
from rotator.domain.key_file import InvalidLine

TOKEN_FORM = (
    "Paste the whole token: 20 to 200 characters of A-Z, a-z, 0-9, '-' or '_'. Leave the "
    "field empty to get a new token instead."
)
OUR_TOKEN = (
    "This is a token issued here (krc_…, kra_…), not one to keep from the hosted service: "
    "leave the field empty to get a new one."
)
TOKEN_IN_USE = "Another tenant or app already uses this token: each token belongs to one."

FRIENDLY: dict[tuple[str, str], str] = {
    # (field, the start of the store's problem text) -> what the console says
    ("slug", "1-64 characters"): "Use 1 to 64 characters: lowercase letters, digits, '-' or "
    "'_', starting with a letter or a digit (for example openai).",
    ("slug", "service already exists"): "You already have a service with this slug.",
    ("policy", "must be one of"): "Choose one of the rotation policies.",
    ("key_ttl_minutes", "required for the time policy"): "The time policy needs a key "
    "lifetime: how many minutes each key is used before the next one takes over.",
    ("key_ttl_minutes", "only a time policy"): "Only the time policy uses a key lifetime: "
    "leave this empty for the other policies.",
    ("key_ttl_minutes", "must be between"): "Enter a lifetime between 1 minute and 10 years.",
    ("max_daily_requests", "must be between"): "Enter a positive whole number, or leave it "
    "empty for no limit.",
    ("max_daily_requests", "must be a positive"): "Enter a positive whole number, or leave "
    "it empty for no limit.",
    ("max_daily_requests", "must be a whole number"): "Write the daily limit as a whole "
    "number, or leave it out.",
    ("limit_warning_percent", "must be between"): "Enter a percentage between 1 and 99, or "
    "leave it empty for no warning.",
    ("label", "must not be empty"): "Give the key a label, for example Primary.",
    ("keys", "must hold"): "Paste at most 1,000 keys at a time.",
    ("keys", "paste at least one"): "Paste at least one key, one a line.",
    ("line", "at most 3 fields"): "Too many fields: a line holds the key, then optionally a "
    "label and a daily limit, separated by a tab or by commas.",
    ("name", "must not be empty"): "Enter a name.",
    ("secret", "must not be empty"): "Paste the provider key (for example sk-…).",
    ("secret", "must not contain control"): "The key contains line breaks or other control "
    "characters: paste it on one line.",
    ("secret", "the same secret as an earlier"): "This key is already in the list above: "
    "paste each key once.",
    ("webhook_url", "must be an http"): "Enter an address starting with https:// (or http://).",
    ("webhook_url", "has no host"): "The address needs a host name, like "
    "https://example.com/hooks.",
    ("webhook_url", "must not contain credentials"): "Remove the user name and password "
    "from the address: deliveries are signed, and your receiver checks the signature with "
    "the webhook secret.",
    ("webhook_url", "must not contain spaces"): "The address must not contain spaces or "
    "line breaks.",
    ("webhook_url", "must not contain control"): "The address contains control characters: "
    "type it on one line.",
    ("webhook_url", "at most"): "Use an address of at most 2,048 characters.",
    ("webhook_events", "needs a webhook_url"): "Set a webhook URL first.",
    ("rotate", "rotate applies to manual"): "Only a service with the manual policy is "
    "rotated by hand; the other policies pick keys by themselves.",
    ("rotate", "no active keys"): "There is no active key to rotate to: enable or add a key.",
    ("client_token", "must be 20 to 200"): TOKEN_FORM,
    ("client_token", "may hold only"): TOKEN_FORM,
    ("client_token", "has the form"): OUR_TOKEN,
    ("client_token", "client_token is already in use"): TOKEN_IN_USE,
    ("name", "name already used by tenant"): "Another tenant has this name: choose another "
    "(the command line finds tenants by name).",
    ("app_token", "must be 20 to 200"): TOKEN_FORM,
    ("app_token", "may hold only"): TOKEN_FORM,
    ("app_token", "has the form"): OUR_TOKEN,
    ("app_token", "app_token is already in use"): TOKEN_IN_USE,
    ("confirm", "must repeat"): "Type the tenant's id exactly as shown, to confirm.",
}


def problem_of(exc: InvalidField) -> str:
    return exc.message.split(": ", 1)[1] if ": " in exc.message else exc.message


def friendly(field: str, problem: str) -> str:
    for (known_field, start), words in FRIENDLY.items():
        if known_field == field and problem.startswith(start):
            return words
    text = problem.strip()
    if not text:
        return "This value is not accepted."
    # the store's words as a sentence: a capital first, a full stop last
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def field_error(exc: RotatorError, default_field: str) -> tuple[str, str]:
    """(field, friendly message) of an error a form submission raised."""
    if isinstance(exc, InvalidField):
        return exc.field, friendly(exc.field, problem_of(exc))
    if isinstance(exc, FieldConflict):
        return exc.field, friendly(exc.field, exc.message)
    return default_field, friendly(default_field, exc.message)


def form_errors(exc: RotatorError, default_field: str) -> FormErrors:
    """A refused submission as its form shows it: next to the field, in the console's words."""
    return FormErrors(*field_error(exc, default_field))


def bulk_error(exc: InvalidField) -> str:
    """A refused bulk add in words: the line to fix, then what is wrong with it."""
    words = friendly(exc.field, exc.problem)
    if isinstance(exc, InvalidLine):
        return f"Line {exc.number}: {words} Nothing was added."
    return words
