"""The client's examples run: the README's OpenAI and Anthropic examples against a fake
rotator and fake `openai`/`anthropic` modules (the SDKs are not installed: the fakes
have the SDKs' shapes where the examples and `classify` touch them), and every Python
block of docs/client.md compiles."""

from __future__ import annotations

import ast
import sys
import textwrap
import types
from pathlib import Path

import httpx
import pytest

from rotator import client as kr
from tests.docs.markdown import FENCE, ROOT
from tests.unit.client_support import FakeRotator


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(line of the fence, code) of each ```python block."""
    lines, found, i = path.read_text().splitlines(), [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not FENCE.match(lines[end]):
            end += 1
        if opening["info"] == "python":
            found.append((i + 1, textwrap.dedent("\n".join(lines[i + 1 : end]))))
        i = end + 1
    return found


def readme_example(sdk: str) -> str:
    blocks = [code for _, code in python_blocks(ROOT / "README.md") if f"from {sdk} import" in code]
    assert len(blocks) == 1, f"one README example imports {sdk}"
    return blocks[0]


class StatusError(Exception):
    """Shaped like both SDKs' APIStatusError."""

    def __init__(self, status: int, headers: dict, body: dict) -> None:
        super().__init__(f"Error code: {status}")
        self.status_code = status
        self.response = httpx.Response(status, headers=headers)
        self.body = body


def fake_openai(used: list[str]) -> types.ModuleType:
    class Completions:
        def __init__(self, key: str) -> None:
            self.key = key

        def create(self, *, model: str, messages: list) -> object:
            used.append(self.key)
            if self.key == "sk-key-1":  # the first key is rate limited
                raise StatusError(429, {"retry-after": "20"}, {"code": "rate_limit_exceeded"})
            message = types.SimpleNamespace(content="Hello back")
            return types.SimpleNamespace(choices=[types.SimpleNamespace(message=message)])

    class OpenAI:
        def __init__(self, *, api_key: str, max_retries: int = 2) -> None:
            assert max_retries == 0, "the SDK must not retry with the same key"
            self.max_retries = max_retries
            self.chat = types.SimpleNamespace(completions=Completions(api_key))

        def with_options(self, *, api_key: str) -> OpenAI:
            return OpenAI(api_key=api_key, max_retries=self.max_retries)

    return types.SimpleNamespace(OpenAI=OpenAI)  # type: ignore[return-value]


def fake_anthropic(used: list[str]) -> types.ModuleType:
    class Messages:
        def __init__(self, key: str) -> None:
            self.key = key

        async def create(self, *, model: str, max_tokens: int, messages: list) -> object:
            used.append(self.key)
            if self.key == "sk-key-1":  # the first key meets an overloaded provider
                body = {"type": "error", "error": {"type": "overloaded_error"}}
                raise StatusError(529, {}, body)
            return types.SimpleNamespace(content=[types.SimpleNamespace(text="Hello back")])

    class AsyncAnthropic:
        def __init__(self, *, api_key: str, max_retries: int = 2) -> None:
            assert max_retries == 0, "the SDK must not retry with the same key"
            self.max_retries = max_retries
            self.messages = Messages(api_key)

        def with_options(self, *, api_key: str) -> AsyncAnthropic:
            return AsyncAnthropic(api_key=api_key, max_retries=self.max_retries)

    return types.SimpleNamespace(AsyncAnthropic=AsyncAnthropic)  # type: ignore[return-value]


@pytest.fixture
def rotator(monkeypatch):
    """Every Client and AsyncClient the example makes talks to one fake rotator."""
    fake = FakeRotator()
    for cls in (kr.Client, kr.AsyncClient):
        original = cls.__init__

        def init(self, base_url, token, *, _original=original, **kw):
            _original(self, base_url, token, transport=fake.transport(), **kw)

        monkeypatch.setattr(cls, "__init__", init)
    monkeypatch.setenv("CLIENT_TOKEN", "krc_0123456789abcdef_tokentokentokentoken")
    return fake


@pytest.mark.parametrize(
    ("sdk", "fake", "service", "status", "reported"),
    [
        ("openai", fake_openai, "openai", 429, {"retry_after": 20, "error": "rate_limit_exceeded"}),
        ("anthropic", fake_anthropic, "anthropic", 529, {"error": "overloaded_error"}),
    ],
)
def test_readme_example_runs(sdk, fake, service, status, reported, rotator, monkeypatch, capsys):
    used: list[str] = []
    monkeypatch.setitem(sys.modules, sdk, fake(used))
    exec(compile(readme_example(sdk), f"README.md ({sdk} example)", "exec"), {})
    assert capsys.readouterr().out == "Hello back\n"
    assert used == ["sk-key-1", "sk-key-2"]  # refused by the provider, then another key
    assert rotator.reports == [{"service": service, "key_id": 1, "status": status, **reported}]
    assert {r.url.params["service"] for r in rotator.requests if r.url.path == "/v1/next"} == {
        service
    }


@pytest.mark.parametrize(
    ("line", "code"), python_blocks(ROOT / "docs" / "client.md"), ids=lambda v: str(v)[:20]
)
def test_docs_client_blocks_compile(line, code):
    compile(code, f"docs/client.md:{line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
