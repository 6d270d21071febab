"""Fixtures shared by the integration tests (the session-wide ones are in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.integration.cli_support import base_env


@pytest.fixture
def cli_env(valkey, master_key_b64, tmp_path, redis) -> dict[str, str]:
    """The test Valkey, flushed (the `redis` fixture), as ROTATOR_REDIS_URL."""
    return base_env(
        ROTATOR_REDIS_URL=valkey.url,
        ROTATOR_MASTER_KEY=master_key_b64,
        ROTATOR_DATA_DIR=str(tmp_path),
    )
