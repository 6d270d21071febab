"""A fake rotator for the client's unit tests: an httpx MockTransport answering /v1/next and
/v1/report as SPEC §1 and §7 say, recording every request."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx

TOKEN = "krc_0123456789abcdef_tokentokentokentoken"
BASE = "http://rotator.test"


def delivery(key_id: int, secret: str, *, service: str = "openai") -> dict:
    return {
        "service": service,
        "key_label": f"key {key_id}",
        "key": secret,
        "masked": False,
        "policy": "usage",
        "limits": {"max_daily_requests": 10000},
        "meta": {"key_id": key_id, "usage_today": 1},
    }


@dataclass
class FakeRotator:
    """Hands out keys 1, 2, 3, … in turn (secrets `sk-key-1`, …); `answers` queues canned
    answers to /v1/next taken before any key; reports answer 202 unless `report_status`."""

    keys: int = 3
    answers: list[httpx.Response] = field(default_factory=list)
    report_status: int = 202
    requests: list[httpx.Request] = field(default_factory=list)
    reports: list[dict] = field(default_factory=list)
    _next: int = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/v1/next":
            if self.answers:
                return self.answers.pop(0)
            key_id = self._next % self.keys + 1
            self._next += 1
            return httpx.Response(200, json=delivery(key_id, f"sk-key-{key_id}"))
        if request.url.path == "/v1/report" and request.method == "POST":
            body = json.loads(request.content)
            self.reports.append(body)
            if self.report_status != 202:
                return httpx.Response(self.report_status, json={"error": "store unavailable"})
            state = "cooling_down" if body["status"] == 429 else "active"
            return httpx.Response(202, json={"state": state, "cooldown_until": None})
        return httpx.Response(404, json={"error": "not found"})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


class ProviderError(Exception):
    """Shaped like the OpenAI and Anthropic SDKs' APIStatusError (duck typing only)."""

    def __init__(self, status_code: int, headers: dict | None = None, body: object = None):
        super().__init__(f"provider said {status_code}")
        self.status_code = status_code
        self.response = httpx.Response(status_code, headers=headers or {})
        self.body = body
