"""Masking: a short recognisable prefix (`sk-`, `sk-proj-`) and the last 4 characters.

Everything between is `•`. The prefix is one a provider puts on every key it issues
(`KNOWN_PREFIXES`, the longest that fits): anything else may be secret, so a key without one
shows its last 4 characters only. Short keys reveal less: the suffix only when at least 8
characters stay hidden, the prefix only when at least 8 stay hidden besides it.
"""

from __future__ import annotations

from collections.abc import Iterable

BULLET = "•"
SHOWN_TAIL = 4
"""How many of a key's last characters its masked form shows (fewer for a short key)."""
KNOWN_PREFIXES = (
    # OpenAI, Anthropic, OpenRouter
    "sk-proj-", "sk-svcacct-", "sk-admin-", "sk-ant-", "sk-or-v1-", "sk-",
    # Groq, xAI, Perplexity, Hugging Face, NVIDIA, Replicate, Google
    "gsk_", "xai-", "pplx-", "hf_", "nvapi-", "r8_", "AIza",
)  # fmt: skip
"""Longer first where one begins another (`sk-proj-` before `sk-`)."""
_MIN_HIDDEN = 8


def mask(key: str) -> str:
    prefix = next((p for p in KNOWN_PREFIXES if key.startswith(p)), "")
    suffix_len = SHOWN_TAIL
    if len(key) - len(prefix) - suffix_len < _MIN_HIDDEN:
        prefix = ""
    if len(key) - len(prefix) - suffix_len < _MIN_HIDDEN:
        suffix_len = 0
    hidden = len(key) - len(prefix) - suffix_len
    return prefix + BULLET * hidden + (key[-suffix_len:] if suffix_len else "")


def endings(secrets: Iterable[str]) -> set[str]:
    """How the masked form of a key equal to one of `secrets` ends: a bullet, then none up to
    all of its last SHOWN_TAIL characters. True of every form a version of `mask` stored (the
    prefixes it shows changed; the tail did not), so the duplicate check compares only keys
    whose masked form ends so (services.present_secrets, key_add.lua)."""
    return {
        BULLET + secret[len(secret) - n :]
        for secret in secrets
        for n in range(min(SHOWN_TAIL, len(secret)) + 1)
    }


def ends_in(masked: str, wanted: set[str]) -> bool:
    """Whether `masked` ends with one of `wanted` (from `endings`)."""
    return any(masked[-n - 1 :] in wanted for n in range(SHOWN_TAIL + 1))
