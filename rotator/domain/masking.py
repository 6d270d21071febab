"""Masking: a short recognisable prefix (`sk-`, `sk-proj-`) and the last 4 characters.

Everything between is `•`. The prefix is one a provider puts on every key it issues
(`KNOWN_PREFIXES`, the longest that fits): anything else may be secret, so a key without one
shows its last 4 characters only. Short keys reveal less: the suffix only when at least 8
characters stay hidden, the prefix only when at least 8 stay hidden besides it.
"""

from __future__ import annotations

BULLET = "•"
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
    suffix_len = 4
    if len(key) - len(prefix) - suffix_len < _MIN_HIDDEN:
        prefix = ""
    if len(key) - len(prefix) - suffix_len < _MIN_HIDDEN:
        suffix_len = 0
    hidden = len(key) - len(prefix) - suffix_len
    return prefix + BULLET * hidden + (key[-suffix_len:] if suffix_len else "")
