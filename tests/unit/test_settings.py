"""Settings from ROTATOR_* variables: parsed, validated, each error naming its variable."""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import os
from pathlib import Path

import pytest

from rotator.crypto import KeyRing
from rotator.settings import MASTER_KEY_FILE, Settings, SettingsError


def b64key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_defaults_from_an_empty_environment(tmp_path):
    s = Settings.from_env({}, data_dir=tmp_path)
    assert (s.host, s.port, s.workers, s.log_level) == ("127.0.0.1", 8080, 1, "INFO")
    assert s.redis_url is None and s.embedded
    assert s.master_key is None and s.admin_token is None
    assert s.webhook_allow_private is False and s.trusted_proxies == ()


def test_every_variable_is_read():
    key = b64key()
    env = {
        "ROTATOR_REDIS_URL": "redis://db:6380/2",
        "ROTATOR_DATA_DIR": "/srv/rotator",
        "ROTATOR_MASTER_KEY": f"a:{key}",
        "ROTATOR_ADMIN_TOKEN": "operator-token-0123456789",
        "ROTATOR_HOST": "0.0.0.0",
        "ROTATOR_PORT": "9000",
        "ROTATOR_WORKERS": "4",
        "ROTATOR_TRUSTED_PROXIES": "10.0.0.0/8, ::1",
        "ROTATOR_WEBHOOK_ALLOW_PRIVATE": "yes",
        "ROTATOR_LOG_LEVEL": "debug",
        "ROTATOR_DEMO_RATE_PER_MIN": "30",
        "ROTATOR_WEBHOOK_TIMEOUT_S": "2.5",
    }
    s = Settings.from_env(env)
    assert s.redis_url == "redis://db:6380/2" and not s.embedded
    assert s.data_dir == Path("/srv/rotator")
    assert s.keyring.primary_id == "a"
    assert (s.admin_token, s.host, s.port, s.workers) == (
        "operator-token-0123456789",
        "0.0.0.0",
        9000,
        4,
    )
    assert s.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert s.webhook_allow_private is True
    assert s.log_level == "DEBUG" and s.demo_rate_per_min == 30 and s.webhook_timeout_s == 2.5


def test_blank_values_mean_unset():
    s = Settings.from_env({"ROTATOR_PORT": "  ", "ROTATOR_REDIS_URL": ""})
    assert s.port == 8080 and s.redis_url is None


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("MASTER_KEY", "not-base64!", "base64"),
        ("MASTER_KEY", base64.b64encode(b"short").decode(), "5 bytes"),
        ("PORT", "eighty", "not an integer"),
        ("PORT", "70000", "not a TCP port"),
        ("WORKERS", "0", "at least 1"),
        ("REDIS_URL", "http://localhost:6379", "redis://"),
        ("QUEUE_URL", "localhost", "redis://"),
        ("TRUSTED_PROXIES", "10.0.0.0/33", "10.0.0.0/33"),
        ("WEBHOOK_ALLOW_PRIVATE", "maybe", "boolean"),
        ("LOG_LEVEL", "LOUD", "log level"),
        ("DEMO_BURST", "0", "at least 1"),
        ("DEMO_RATE_PER_MIN", "60001", "at most 60000"),
        ("WEBHOOK_TIMEOUT_S", "-1", "positive"),
        ("LOG_SUMMARY_S", "-1", "at least 0 (0 = none)"),
        ("SESSION_MAX_HOURS", "0", "at least 1"),
        ("WEBHOOK_TIMEOUT_S", "soon", "not a number"),
        ("REDIS_CLUSTER", "1", "REDIS_URL"),
    ],
)
def test_bad_values_name_their_variable(tmp_path, name, value, problem):
    with pytest.raises(SettingsError) as err:
        Settings.from_env({f"ROTATOR_{name}": value}, data_dir=tmp_path)
    message = str(err.value)
    assert message.startswith(f"ROTATOR_{name}: ")
    assert problem in message
    assert err.value.name == f"ROTATOR_{name}"
    assert "\n" not in message


@pytest.mark.parametrize(
    "token",
    [
        "op-secret",
        "x" * 19,
        "twenty characters with spaces",
        "operator-token\t0123456789",
        "operator-token\u200b0123456789",  # zero-width space: invisible when pasted
        "operator-tökén-0123456789",  # a header carries bytes: no client would send it right
        "kta_acme_0123456789abcdef",  # the API would take it for a tenant's admin token
    ],
)
def test_a_weak_operator_token_is_refused_without_being_shown(tmp_path, token):
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"ROTATOR_ADMIN_TOKEN": token}, data_dir=tmp_path)
    message = str(err.value)
    assert message.startswith("ROTATOR_ADMIN_TOKEN: must be at least 20 characters")
    assert "secrets.token_urlsafe(32)" in message  # how to make a good one
    assert token not in message


@pytest.mark.parametrize(
    # the second is of the shape `rotator run` generates when none is set (token_urlsafe(32));
    # a fixed one, so every xdist worker collects the same test ids
    "token",
    ["x" * 20, "Z2q-6U0tGvkonU_6eqCyK3XJUvCWv6SaZQoz1ZqCSjA", "Tr0ub4dor&3!correct~horse"],
)
def test_a_long_operator_token_is_taken_as_given(tmp_path, token):
    assert Settings.from_env({"ROTATOR_ADMIN_TOKEN": token}, data_dir=tmp_path).admin_token == token


def test_master_key_file_in_the_data_dir(tmp_path):
    key = b64key()
    (tmp_path / MASTER_KEY_FILE).write_text(key + "\n")
    from_file = Settings.from_env({"ROTATOR_DATA_DIR": str(tmp_path)})
    assert from_file.keyring.keys[0][1] == base64.b64decode(key)
    # the environment wins over the file
    other = b64key()
    env = {"ROTATOR_DATA_DIR": str(tmp_path), "ROTATOR_MASTER_KEY": other}
    assert Settings.from_env(env).keyring.keys[0][1] == base64.b64decode(other)


def test_a_corrupt_master_key_file_names_the_setting_and_the_file(tmp_path):
    path = tmp_path / MASTER_KEY_FILE
    for text, problem in (
        ("garbage!!", "not base64"),
        (base64.b64encode(b"x" * 16).decode(), "16"),
    ):
        path.write_text(text)
        with pytest.raises(SettingsError) as exc:
            Settings.from_env({}, data_dir=tmp_path)
        message = str(exc.value)
        assert message.startswith(f"ROTATOR_MASTER_KEY: not set, and {path.resolve()} holds no key")
        assert problem in message


def test_keyring_without_master_key_names_the_setting(tmp_path):
    s = Settings.from_env({}, data_dir=tmp_path)
    with pytest.raises(SettingsError, match=r"^ROTATOR_MASTER_KEY: not set"):
        _ = s.keyring


def test_overrides_beat_the_environment(tmp_path):
    ring = KeyRing.parse(b64key())
    s = Settings.from_env({"ROTATOR_PORT": "9000"}, port=9100, master_key=ring, data_dir=tmp_path)
    assert s.port == 9100 and s.keyring is ring


def test_describe_lists_every_setting_with_default_and_doc():
    rows = Settings.describe()
    names = [name for name, _, _ in rows]
    assert names == [f"ROTATOR_{f.name.upper()}" for f in dataclasses.fields(Settings)]
    table = {name: (default, doc) for name, default, doc in rows}
    assert table["ROTATOR_PORT"][0] == "8080"
    assert table["ROTATOR_HOST"][0] == "127.0.0.1"
    assert table["ROTATOR_DATA_DIR"][0] == "var"
    assert table["ROTATOR_WEBHOOK_ALLOW_PRIVATE"][0] == "0"
    assert table["ROTATOR_REDIS_URL"][0] == "-"
    assert all(doc for _, doc in table.values())


def test_every_setting_is_declared_with_setting():
    """A field added without setting(...) would have no parser or bounds: from_env would
    fail on it with a KeyError instead of reading its variable."""
    for f in dataclasses.fields(Settings):
        assert {"doc", "parse", "at_least", "at_most", "check"} <= set(f.metadata), f.name


def test_a_misspelled_variable_is_named_with_the_setting_it_may_mean(caplog, tmp_path):
    env = {
        "ROTATOR_PORTT": "9000",
        "ROTATOR_NOTHING_LIKE_IT": "1",
        "ROTATOR_PUBLIC_PORT": "443",  # docker compose's, not ours: no warning
        "ROTATOR_DATA_DIR": str(tmp_path),
    }
    settings = Settings.from_env(env)
    assert settings.port == Settings.port  # ignored, as the warning says
    assert [r.getMessage() for r in caplog.records] == [
        "ROTATOR_NOTHING_LIKE_IT is not a setting and is ignored (rotator --help lists them)",
        "ROTATOR_PORTT is not a setting and is ignored; did you mean ROTATOR_PORT? "
        "(rotator --help lists them)",
    ]
