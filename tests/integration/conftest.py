"""Fixtures shared by the integration tests (the session-wide ones are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rotator.embedded import EmbeddedValkey
from tests.integration.cli_support import base_env


@pytest.fixture
def cli_env(valkey, master_key_b64, tmp_path, redis) -> dict[str, str]:
    """The test Valkey, flushed (the `redis` fixture), as ROTATOR_REDIS_URL."""
    return base_env(
        ROTATOR_REDIS_URL=valkey.url,
        ROTATOR_MASTER_KEY=master_key_b64,
        ROTATOR_DATA_DIR=str(tmp_path),
    )


@pytest.fixture
def own_valkey(tmp_path) -> Iterator[EmbeddedValkey]:
    """A Valkey of the test's own, for what would disturb the session's shared one (made to
    refuse: tests/integration/refusing_store.py)."""
    server = EmbeddedValkey(tmp_path / "own", appendonly=False)
    server.start()
    yield server
    server.stop()
